"""The dashboard's dependency graph and timeline in headless Chromium, against a handler the caller
started and filled (scripts/check_dashboard.py checks the rest of the page; this reuses its helpers).

Expects (as tests/integration/dashboard.rs registers and sweeps them, one sweep run): a three-level
chain `web:shop` -> `api:orders` -> `db:orders-sql` whose leaf answers 503, `web:shop` depending
softly on a healthy `cache:sessions`, and a healthy two-service cycle `loop:ping` <-> `loop:pong`.
Checks, in the page: the nodes, the edges (soft dashed, cycle edges marked), each node's colour and
written status, the blocking chain drawn heavy and said as text when a node gets keyboard focus,
the cycle listed, the timeline newest first with the leaf's transition to unhealthy; then, from
Playwright routes answering discovery, data shaped like the registry's in the cases the chain does
not show (see `shapes`) and the cap (320 services: 300 drawn, and the page says so); then that the graph,
its chosen service and the timeline leave the page with the key (after "Forget key", a refused key,
and an answer for the previous key that arrives after "Forget key"). Saves a screenshot.

Usage: check_dashboard_graph.py <base URL> <admin key> <screenshot.png>
"""

import json
import re
import sys
import tempfile

from playwright.sync_api import expect, sync_playwright

from check_dashboard import ARGS, PAGE_TEXT, SHOWN, assert_forgotten, refused_fetches_only, use_key

CHAIN = ["web:shop", "api:orders", "db:orders-sql"]
NODES = {"web:shop": "unhealthy", "api:orders": "unhealthy", "db:orders-sql": "unhealthy",
         "cache:sessions": "healthy", "loop:ping": "healthy", "loop:pong": "healthy"}
EDGES = {("web:shop", "api:orders"): "required blocking", ("api:orders", "db:orders-sql"): "required blocking",
         ("web:shop", "cache:sessions"): "soft", ("loop:ping", "loop:pong"): "required cycle",
         ("loop:pong", "loop:ping"): "required cycle"}
# The page's colours in the light scheme headless Chromium uses (dashboard.css: --ok, --bad and
# --fill-ok, --fill-bad); a node on a cycle has the cycle's outline (--cycle) instead.
STROKE = {"healthy": "rgb(19, 115, 51)", "unhealthy": "rgb(179, 38, 30)", "cycle": "rgb(132, 48, 206)"}
FILL = {"healthy": "rgb(230, 244, 234)", "unhealthy": "rgb(252, 232, 230)"}

GRAPH = """() => ({
  nodes: [...document.querySelectorAll("#graph g.node")].map((g) => ({
    key: g.dataset.key, status: g.dataset.status, cls: g.getAttribute("class"),
    label: g.querySelector(".node-status").textContent,
    stroke: getComputedStyle(g.querySelector("rect")).stroke,
    fill: getComputedStyle(g.querySelector("rect")).fill,
    aria: g.getAttribute("aria-label")})),
  edges: [...document.querySelectorAll("#graph path.edge")].map((p) => ({
    from: p.dataset.from, to: p.dataset.to, cls: p.getAttribute("class"),
    dash: getComputedStyle(p).strokeDasharray})),
  title: document.querySelector("#graph-svg title") && document.querySelector("#graph-svg title").textContent,
  desc: document.querySelector("#graph-svg desc") && document.querySelector("#graph-svg desc").textContent,
})"""

# What of the admin key's data the graph and the timeline show (beside what SHOWN collects).
GRAPH_SHOWN = """() => {
  const out = [];
  for (const g of document.querySelectorAll("#graph g.node")) out.push(g.dataset.key);
  for (const li of document.querySelectorAll("#timeline li")) {
    for (const s of li.querySelectorAll(".subject, .reason, time")) out.push(s.textContent);
  }
  out.push(document.querySelector("#graph-detail").textContent);
  return out.filter((v) => v && v !== "—");
}"""


# Every edge that passes over a box other than its two ends (sampled every 4 px along the path).
CROSSINGS = """() => {
  const boxes = [...document.querySelectorAll("#graph g.node")].map((g) => {
    const [x, y] = /translate\\(([\\d.]+),([\\d.]+)\\)/.exec(g.getAttribute("transform")).slice(1).map(Number);
    const r = g.querySelector("rect");
    return { key: g.dataset.key, x, y, w: Number(r.getAttribute("width")), h: Number(r.getAttribute("height")) };
  });
  const over = [];
  for (const p of document.querySelectorAll("#graph path.edge")) {
    const length = p.getTotalLength();
    search: for (let t = 0; t <= length; t += 4) {
      const at = p.getPointAtLength(t);
      for (const b of boxes) {
        if (b.key !== p.dataset.from && b.key !== p.dataset.to && at.x > b.x + 1 && at.x < b.x + b.w - 1 &&
            at.y > b.y + 1 && at.y < b.y + b.h - 1) {
          over.push(p.dataset.from + ">" + p.dataset.to + " over " + b.key);
          break search;
        }
      }
    }
  }
  return over;
}"""


def synthetic(count):
    """Discovery's answer for `count` services in a line, each depending on the one before."""
    services = [{"serviceType": "gen", "serviceName": f"s{i:03}", "endpoint": "http://127.0.0.1:9/",
                 "healthStatus": {"status": "healthy"}, "effectiveStatus": "healthy", "blockedBy": [],
                 "dependsOn": [f"gen:s{i - 1:03}"] if i else []} for i in range(count)]
    return json.dumps({"services": services})


def check_graph(page):
    graph = page.evaluate(GRAPH)
    assert graph["title"] == "Dependency graph", graph["title"]
    assert "6 services, 5 dependencies" in graph["desc"] and "1 cycle" in graph["desc"], graph["desc"]
    nodes = {n["key"]: n for n in graph["nodes"]}
    assert set(nodes) == set(NODES), sorted(nodes)
    for key, status in NODES.items():
        n = nodes[key]
        assert n["status"] == status, (key, n)
        assert n["label"].startswith(status), (key, n["label"])  # written, not colour alone
        assert n["fill"] == FILL[status], (key, n["fill"])
        assert n["stroke"] == STROKE["cycle" if key.startswith("loop:") else status], (key, n["stroke"])
        assert status in n["aria"], (key, n["aria"])
    assert "blocked" in nodes["web:shop"]["cls"] and "blocked" in nodes["api:orders"]["cls"]
    assert "cause" in nodes["db:orders-sql"]["cls"], nodes["db:orders-sql"]
    assert "blocked by api:orders then db:orders-sql" in nodes["web:shop"]["aria"], nodes["web:shop"]["aria"]
    assert "on-cycle" in nodes["loop:ping"]["cls"] and "on-cycle" in nodes["loop:pong"]["cls"]
    edges = {(e["from"], e["to"]): e for e in graph["edges"]}
    assert set(edges) == set(EDGES), sorted(edges)
    for pair, want in EDGES.items():
        classes = set(edges[pair]["cls"].split())
        assert set(want.split()) <= classes, (pair, classes)
        assert ("blocking" in classes) == ("blocking" in want), (pair, classes)
        assert (edges[pair]["dash"] != "none") == ("soft" in want), (pair, edges[pair]["dash"])
    expect(page.locator("#graph-note .cycles")).to_have_text("Cycle: loop:ping \u2192 loop:pong \u2192 loop:ping")
    # web:shop's soft edge skips a column: it runs through a free slot there, not over api:orders.
    over = page.evaluate(CROSSINGS)
    assert not over, over


def check_keyboard(page):
    """Tab from "Refresh now" reaches the graph's nodes; focus on web:shop says its chain."""
    page.locator("#refresh").focus()
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset && document.activeElement.dataset.key") == "web:shop":
            break
    else:
        raise AssertionError("Tab never reached the node web:shop")
    detail = page.locator("#graph-detail")
    expect(detail).to_contain_text("Blocking chain: " + " \u2192 ".join(CHAIN))
    expect(detail).to_contain_text("the cause: db:orders-sql (unhealthy)")
    shop = page.locator("#graph g.node[data-key='web:shop']")
    expect(shop).to_have_attribute("aria-pressed", "true")
    for key in CHAIN[1:]:
        expect(page.locator(f"#graph g.node[data-key='{key}']")).to_have_class(
            re.compile(r"\bin-chain\b"))
    chosen = page.evaluate("""() => [...document.querySelectorAll("#graph path.edge.in-chain")]
        .map((p) => p.dataset.from + ">" + p.dataset.to).sort()""")
    assert chosen == ["api:orders>db:orders-sql", "web:shop>api:orders"], chosen
    # A focused node shows a visible focus mark: its box's outline colour and width change.
    ring = page.evaluate("getComputedStyle(document.activeElement.querySelector('rect')).strokeWidth")
    assert ring == "4px", ring
    page.keyboard.press("Escape")
    expect(detail).to_have_text("")
    expect(shop).to_have_attribute("aria-pressed", "false")


def check_timeline(page):
    items = page.locator("#timeline-list li")
    expect(items.first).to_be_visible()
    rows = page.evaluate("""() => [...document.querySelectorAll("#timeline-list li")].map((li) => ({
        time: li.querySelector("time").getAttribute("datetime"), subject: li.dataset.subject,
        change: li.querySelector(".change").textContent, reason: li.querySelector(".reason").textContent}))""")
    times = [r["time"] for r in rows]
    assert times == sorted(times, reverse=True), times  # newest first
    leaf = [r for r in rows if r["subject"].startswith("db:orders-sql") and r["change"].endswith("unhealthy")]
    assert leaf, rows
    assert "503" in leaf[0]["reason"], leaf[0]


def shapes():
    """Discovery's answer with the cases the registered chain does not show: a service with one of
    two instances down, a dependency nobody registered, one registered but not in the answer (a
    scoped key: the `dependencies` detail's status counts), an instance with no effectiveStatus (an
    older registry: its own verdict counts), one never checked, a soft dependency known only from
    the `dependencies` detail, and a three-service cycle."""
    def inst(t, n, own=None, eff=None, blocked=(), **more):
        s = {"serviceType": t, "serviceName": n, "endpoint": "http://127.0.0.1:9/", **more}
        if own:
            s["healthStatus"] = {"status": own}
        if eff:
            s["effectiveStatus"], s["blockedBy"] = eff, list(blocked)
        return s
    return json.dumps({"services": [
        inst("a", "x", "healthy", "healthy", instanceId="1"),
        inst("a", "x", "unhealthy", "unhealthy", instanceId="2"),
        inst("b", "y", "healthy", "healthy", dependsOn=[{"service": "ghost:z", "required": True}]),
        inst("c", "w", "unhealthy"),
        inst("d", "v", "healthy", "degraded", ["a:x"],
             dependencies=[{"service": "a:x", "required": False, "effectiveStatus": "degraded"}]),
        inst("u", "0"),
        inst("e", "e", "healthy", "unhealthy", ["hidden:h"], dependsOn=[{"service": "hidden:h", "required": True}],
             dependencies=[{"service": "hidden:h", "required": True, "status": "unhealthy"}]),
        inst("p", "1", "healthy", "healthy", dependsOn=["r:1"]),
        inst("q", "1", "healthy", "healthy", dependsOn=["p:1"]),
        inst("r", "1", "healthy", "healthy", dependsOn=["q:1"]),
    ]})


def check_shapes(page):
    """The drawing of data shaped like the registry's, through a route: statuses, the unregistered
    dependency, the soft blocking edge, the cycle's words, and every edge off a cycle pointing right."""
    page.route("**/api/ServiceDiscovery*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=shapes()))
    page.get_by_role("button", name="Refresh now").click()
    expect(page.locator("#graph g.node")).to_have_count(11)
    graph = page.evaluate(GRAPH)
    nodes = {n["key"]: n for n in graph["nodes"]}
    want = {"a:x": "degraded", "b:y": "healthy", "ghost:z": "unknown", "c:w": "unhealthy", "d:v": "degraded",
            "u:0": "unknown", "p:1": "healthy", "q:1": "healthy", "r:1": "healthy", "e:e": "unhealthy",
            "hidden:h": "unhealthy"}
    assert {k: n["status"] for k, n in nodes.items()} == want, nodes
    assert "1/2 instances healthy" in nodes["a:x"]["aria"], nodes["a:x"]
    assert nodes["a:x"]["fill"] == "rgb(254, 247, 224)", nodes["a:x"]  # --fill-warn
    assert nodes["u:0"]["fill"] == "rgb(241, 243, 244)", nodes["u:0"]  # --fill-none
    assert "unregistered" in nodes["ghost:z"]["cls"] and nodes["ghost:z"]["label"] == "not registered"
    assert "outside" in nodes["hidden:h"]["cls"] and "not in view" in nodes["hidden:h"]["label"], nodes["hidden:h"]
    edges = {(e["from"], e["to"]): set(e["cls"].split()) for e in graph["edges"]}
    assert edges[("d:v", "a:x")] >= {"soft", "blocking"}, edges
    assert "blocking" not in edges[("b:y", "ghost:z")], edges
    assert "blocking" in edges[("e:e", "hidden:h")], edges
    expect(page.locator("#graph-note .cycles")).to_have_text("Cycle: p:1 \u2192 r:1 \u2192 q:1 \u2192 p:1")
    leftward = page.evaluate("""() => {
      const x = (k) => Number(/translate\\((\\d+)/.exec(document.querySelector(
        `#graph g.node[data-key="${k}"]`).getAttribute("transform"))[1]);
      return [...document.querySelectorAll("#graph path.edge:not(.cycle)")]
        .filter((p) => x(p.dataset.from) >= x(p.dataset.to)).map((p) => p.dataset.from + ">" + p.dataset.to);
    }""")
    assert not leftward, leftward
    over = page.evaluate(CROSSINGS)
    assert not over, over
    page.unroute("**/api/ServiceDiscovery*")


def check_cap(page):
    """An answer of 320 services draws 300, says so, and the layout takes little time."""
    page.route("**/api/ServiceDiscovery*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=synthetic(320)))
    page.get_by_role("button", name="Refresh now").click()
    expect(page.locator("#graph g.node")).to_have_count(300)
    expect(page.locator("#graph-note")).to_contain_text("Showing 300 of 320 services")
    took = page.evaluate("""() => {
      const list = JSON.parse(%s).services, runs = [];
      for (let i = 0; i < 7; i++) {
        const t = performance.now();
        DashboardGraphView.draw(document.createElement("div"), document.createElement("p"),
          document.createElement("div"), DashboardGraphModel.build(list), null);
        runs.push(performance.now() - t);
      }
      return runs.sort((a, b) => a - b)[3];
    }""" % json.dumps(synthetic(320)))
    print(f"dashboard graph: model and drawing of 320 services (300 drawn), median of 7: {took:.1f} ms")
    page.unroute("**/api/ServiceDiscovery*")


def main(base, key, screenshot):
    problems = []
    with tempfile.TemporaryDirectory(prefix="dashboard-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=ARGS,
            viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        page = context.pages[0] if context.pages else context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        # The browser's own /favicon.ico request is answered 404 (the page has no icon); any other
        # 404 is a problem.
        missing = []
        page.on("response", lambda r: r.status == 404 and missing.append(r.url))
        response = page.goto(base + "/api/Dashboard")
        assert response.status == 200, response.status
        expect(page.locator("#status")).to_contain_text("authentication required")
        expect(page.locator("#graph g.node")).to_have_count(0)
        # The page's own words (a legend's "not registered", say) are no data: a reason that is only
        # such a word is not looked for after the key is gone.
        baseline = page.evaluate(PAGE_TEXT)
        use_key(page, key)
        expect(page.locator("#graph g.node")).to_have_count(len(NODES))
        expect(page.locator("#timeline-list li").first).to_be_visible()

        check_graph(page)
        check_timeline(page)
        # The last sweep's counts by effective status.
        expect(page.locator("#sweep-details")).to_contain_text("3 healthy, 0 degraded, 3 unhealthy, 0 unknown")
        # The cards say the effective status and the chain too.
        orders = page.locator("article[data-service=orders]")
        expect(orders.locator(".badge.effective")).to_have_text("unhealthy")
        expect(orders).to_contain_text("db:orders-sql")
        page.screenshot(path=screenshot, full_page=True)
        check_keyboard(page)
        shown = [v for v in page.evaluate(SHOWN) + page.evaluate(GRAPH_SHOWN) if v not in baseline]
        assert {"web:shop", "loop:pong", "db:orders-sql"} <= set(shown), shown

        # 400 % zoom: the graph scrolls inside its box; the page itself does not side-scroll.
        page.set_viewport_size({"width": 320, "height": 900})
        wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, f"{wide}px of horizontal scrolling at 320px"
        page.set_viewport_size({"width": 1280, "height": 900})

        check_shapes(page)
        check_cap(page)
        status = page.locator("#status")
        # The chosen service and everything drawn go with the key.
        use_key(page, key)
        expect(page.locator("#graph g.node")).to_have_count(len(NODES))
        page.locator("#graph g.node[data-key='api:orders']").focus()
        expect(page.locator("#graph-detail")).to_contain_text("Blocking chain")
        page.get_by_role("button", name="Forget key").click()
        expect(status).to_contain_text("authentication required")
        assert_forgotten(page, shown, '"Forget key"')
        use_key(page, key)
        expect(page.locator("#graph g.node")).to_have_count(len(NODES))
        expect(page.locator("#graph-detail")).to_have_text("")
        expect(page.locator("#graph g.node[aria-pressed=true]")).to_have_count(0)
        use_key(page, "not-a-registry-key-0123456789")
        expect(status).to_contain_text("not a known key")
        assert_forgotten(page, shown, "a refused key")

        # The sweep's answer (the timeline) for the admin key, held until after "Forget key".
        held = []
        page.route("**/api/Sweep*", lambda route: held.append(route)
                   if route.request.headers.get("authorization") == "Bearer " + key else route.continue_())
        use_key(page, key)
        for _ in range(500):
            if held:
                break
            page.wait_for_timeout(20)
        assert held, "the refresh for the admin key sent no sweep request"
        page.get_by_role("button", name="Forget key").click()
        for route in held:
            route.continue_()
        # The refresh without a key runs only once the held one ended: its 401 comes after it.
        expect(status).to_contain_text("authentication required")
        assert_forgotten(page, shown, 'a sweep answer for the previous key that came after "Forget key"')
        page.unroute("**/api/Sweep*")

        refused_fetches_only(problems)
        assert all(u.endswith("/favicon.ico") for u in missing), missing
        problems[:] = [p for p in problems if "status of 404" not in p]
        assert not problems, problems
        context.close()
    print(f"dashboard graph: ok; screenshot {screenshot}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
