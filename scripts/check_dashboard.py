"""The dashboard in headless Chromium, against a handler the caller started and filled.

Expects (as tests/integration/dashboard.rs registers and sweeps them): `dash-up` (type `web`,
instance `pod-1`, answering 200) and `dash-down` (type `api`, answering 503), one sweep run. Loads
the page with no key (discovery refuses it), enters the admin key, then checks what is shown, the
filters, the conditional refresh (If-None-Match, 304), the keyboard order, the layout at the width
400 % zoom leaves, and that the key stays out of every URL; saves a screenshot. Then that what the
admin key was shown leaves the page with it: after "Forget key", after a key the registry refuses,
after a 401 for a key accepted before (no key change), and when an answer for the previous key
arrives after "Forget key", no service name, instance, type, endpoint, error or timestamp of that
data is anywhere in the page (the dependency graph and the timeline included), and the last-sweep
box, the graph and the timeline are empty. The graph with dependencies and the timeline in detail:
scripts/check_dashboard_graph.py.

Usage: check_dashboard.py <base URL> <admin key> <screenshot.png>
"""

import sys
import tempfile

from playwright.sync_api import expect, sync_playwright

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Everything of the admin key's data that is specific to it: names, instances, types, endpoints,
# errors and timestamps of every card, the last sweep's times, the graph's services and the
# timeline's subjects, reasons and times.
SHOWN = """() => {
  const out = [];
  for (const c of document.querySelectorAll("article.card")) {
    out.push(c.dataset.service, c.querySelector("h4").textContent);
    for (const dt of c.querySelectorAll("dt")) {
      if (["endpoint", "error", "last check", "last heartbeat", "expires", "metadata"].includes(dt.textContent)) {
        out.push(dt.nextElementSibling.textContent);
      }
    }
  }
  for (const h of document.querySelectorAll("#services h3")) out.push(h.textContent);
  for (const dt of document.querySelectorAll("#sweep-details dt")) {
    if (["started", "finished"].includes(dt.textContent)) out.push(dt.nextElementSibling.textContent);
  }
  for (const g of document.querySelectorAll("#graph g.node")) out.push(g.dataset.key);
  for (const s of document.querySelectorAll("#timeline li :is(.subject, .reason, time)")) out.push(s.textContent);
  return out.filter((v) => v && v !== "—");
}"""

# The whole page as text: its markup (attributes included; the script's source left out), what it
# renders, and every field's value.
PAGE_TEXT = """() => {
  const copy = document.documentElement.cloneNode(true);
  for (const s of copy.querySelectorAll("script")) s.remove();
  const values = [...document.querySelectorAll("input, select, option")].map((e) => e.value);
  return [copy.outerHTML, document.body.innerText, ...values].join("\\n");
}"""


def refused_fetches_only(problems):
    """Drops the browser's own lines for fetches answered 401 (expected); keeps everything else."""
    problems[:] = [p for p in problems if "status of 401" not in p]


def assert_forgotten(page, shown, after):
    """Nothing of `shown` anywhere in the page; no card, count, type, last sweep, graph node, chosen
    service or transition."""
    expect(page.locator("article.card")).to_have_count(0)
    expect(page.locator("#sweep")).to_be_empty()
    expect(page.locator("#timeline")).to_be_empty()
    expect(page.locator("#graph svg")).to_have_count(0)
    expect(page.locator("#graph-detail")).to_have_text("")
    expect(page.locator("#graph-note")).to_be_empty()
    expect(page.locator("#shown-count")).to_have_text("")
    expect(page.locator("#filter-type option")).to_have_count(1)
    text = page.evaluate(PAGE_TEXT)
    left = [v for v in shown if v in text]
    assert not left, f"after {after}, the previous key's data is still in the page: {left}"


def use_key(page, key):
    page.get_by_label("API key or token").fill(key)
    page.get_by_role("button", name="Use key").click()


def main(base, key, screenshot):
    problems = []
    requests = []
    with tempfile.TemporaryDirectory(prefix="dashboard-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        page = context.pages[0] if context.pages else context.new_page()
        # A blocked inline script or style (the CSP) and any script error show up here.
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r))

        response = page.goto(base + "/api/Dashboard")
        assert response.status == 200, response.status
        assert "script-src 'sha256-" in response.headers["content-security-policy"]

        # No key yet: discovery's 401 is said, and nothing is listed.
        expect(page.locator("#status")).to_contain_text("authentication required")
        problems.clear()  # the browser logs the refused fetches themselves

        # Keyboard: the first Tab lands on the key field, by its label.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "key"
        page.get_by_label("API key or token").fill(key)
        page.keyboard.press("Enter")

        cards = page.locator("article.card")
        expect(cards).to_have_count(2)
        up = page.locator("article[data-service=dash-up]")
        down = page.locator("article[data-service=dash-down]")
        expect(up).to_contain_text("healthy")
        expect(up.locator(".badge.own")).to_have_text("healthy")
        expect(up).to_contain_text("pod-1")
        expect(up).to_contain_text("closed")
        expect(up).to_contain_text("600 s")
        expect(up).to_contain_text("250")
        expect(up).to_contain_text("blue")
        expect(up).to_contain_text('"zone":"1"')
        expect(down.locator(".badge.own")).to_have_text("unhealthy")
        # The graph: one node per service, coloured and labelled by status, no edges.
        expect(page.locator("#graph g.node")).to_have_count(2)
        expect(page.locator("#graph g.node[data-key='web:dash-up']")).to_have_attribute("data-status", "healthy")
        expect(page.locator("#graph g.node[data-key='api:dash-down'] .node-status")).to_contain_text("unhealthy")
        expect(page.locator("#graph path.edge")).to_have_count(0)
        expect(down).to_contain_text("HTTP 503")
        expect(down).to_contain_text("open")
        expect(down.locator("dd.error")).to_have_text("HTTP 503")
        # Grouped by type, in order.
        expect(page.locator("#services section h3")).to_have_text(["Type api", "Type web"])
        # The last sweep, shown to this admin key.
        expect(page.locator("#sweep-details")).to_contain_text("succeeded")
        shown = page.evaluate(SHOWN)
        assert {"dash-up", "dash-down", "HTTP 503", "Type api"} <= set(shown), shown
        assert sum(v.startswith("http://127.0.0.1:") for v in shown) == 2, shown

        # The key lives in sessionStorage, never in a URL.
        assert page.evaluate("sessionStorage.getItem('registry.key')") == key
        assert all(key not in r.url for r in requests), [r.url for r in requests]
        sent = [r for r in requests if "/api/ServiceDiscovery" in r.url]
        assert sent and sent[-1].headers.get("authorization") == "Bearer " + key

        # Filters: health, then name, then type.
        page.get_by_label("Health", exact=True).select_option("unhealthy")
        expect(cards).to_have_count(1)
        expect(cards.first).to_have_attribute("data-service", "dash-down")
        page.get_by_label("Health", exact=True).select_option("")
        page.get_by_label("Name contains", exact=True).fill("up")
        expect(cards).to_have_count(1)
        expect(cards.first).to_have_attribute("data-service", "dash-up")
        page.get_by_label("Name contains", exact=True).fill("")
        page.get_by_label("Type", exact=True).select_option("api")
        expect(cards).to_have_count(1)
        expect(cards.first).to_have_attribute("data-service", "dash-down")
        page.get_by_label("Type", exact=True).select_option("")
        expect(cards).to_have_count(2)

        # A refresh asks with If-None-Match and keeps what is shown on the 304.
        with page.expect_response(lambda r: "/api/ServiceDiscovery" in r.url) as info:
            page.get_by_role("button", name="Refresh now").click()
        answer = info.value
        assert answer.request.headers.get("if-none-match"), answer.request.headers
        assert answer.status == 304, answer.status
        expect(page.locator("#status")).to_contain_text("Unchanged")
        expect(cards).to_have_count(2)

        # Focus is visible: Tab from the last filter reaches the button, which gets an outline.
        page.get_by_label("Health", exact=True).focus()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "refresh"
        outline = page.evaluate(
            "getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("", "none"), outline

        page.screenshot(path=screenshot, full_page=True)

        # 400 % zoom of a 1280 px window leaves a 320 px layout: nothing may need side-scrolling.
        page.set_viewport_size({"width": 320, "height": 900})
        wide = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, f"{wide}px of horizontal scrolling at 320px"
        page.screenshot(path=screenshot.replace(".png", "-400pct.png"), full_page=True)

        page.set_viewport_size({"width": 1280, "height": 900})
        status = page.locator("#status")

        # "Forget key": the page asks without credentials, is refused, and shows nothing it had.
        page.get_by_role("button", name="Forget key").click()
        expect(status).to_contain_text("authentication required")
        assert page.evaluate("sessionStorage.getItem('registry.key')") is None
        assert_forgotten(page, shown, '"Forget key"')

        # A key the registry refuses, entered while the admin key's data is shown.
        use_key(page, key)
        expect(cards).to_have_count(2)
        expect(page.locator("#sweep-details")).to_contain_text("succeeded")
        wrong = "not-a-registry-key-0123456789"
        use_key(page, wrong)
        expect(status).to_contain_text("not a known key")
        assert_forgotten(page, shown, "a refused key")

        # A key the registry stops accepting (rotated out) while its data is shown: the next
        # refresh's 401, with no key change in the page, clears it.
        use_key(page, key)
        expect(cards).to_have_count(2)
        expect(page.locator("#sweep-details")).to_contain_text("succeeded")
        page.route("**/api/ServiceDiscovery*", lambda route: route.fulfill(
            status=401, content_type="application/json", headers={"WWW-Authenticate": "Bearer"},
            body='{"error": "the bearer credential is not a known key or a valid token"}'))
        page.get_by_role("button", name="Refresh now").click()
        expect(status).to_contain_text("not a known key")
        assert_forgotten(page, shown, "a 401 for a key that was accepted before")
        page.unroute("**/api/ServiceDiscovery*")

        # An answer to the admin key's request that arrives after "Forget key" is not shown.
        use_key(page, key)
        expect(cards).to_have_count(2)
        held = []
        page.route("**/api/ServiceDiscovery*", lambda route: held.append(route)
                   if route.request.headers.get("authorization") == "Bearer " + key else route.continue_())
        use_key(page, key)
        for _ in range(500):
            if held:
                break
            page.wait_for_timeout(20)
        assert held, "the refresh for the admin key sent no discovery request"
        page.get_by_role("button", name="Forget key").click()
        for route in held:
            route.continue_()
        expect(status).to_contain_text("authentication required")
        assert_forgotten(page, shown, 'an answer for the previous key that came after "Forget key"')
        page.unroute("**/api/ServiceDiscovery*")

        assert all(key not in r.url and wrong not in r.url for r in requests), [r.url for r in requests]
        refused_fetches_only(problems)
        assert not problems, problems
        context.close()
    print(f"dashboard: ok; screenshots {screenshot} and {screenshot.replace('.png', '-400pct.png')}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
