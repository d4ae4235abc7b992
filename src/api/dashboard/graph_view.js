// The dependency graph drawn by the page itself: inline SVG built node by node with
// createElementNS and textContent (no markup from data, no library, nothing fetched), styled only
// by the page's own stylesheet through classes, so the page's CSP is unchanged. Each service is a
// box coloured by its effective status with the status written in it (not colour alone); arrows go
// from a service to what it depends on (dashed: soft), cycles in their own colour, every blocked
// service's chain drawn heavy. A service chosen by click, Enter or keyboard focus has its chain
// emphasised and said as text in the live region beside the graph; Escape lets go of it.
const DashboardGraphView = (function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 200, H = 48, GAP_X = 72, GAP_Y = 14, PAD = 12, LOOP = 36;
  const MAX_LABEL = 26;

  function svg(tag, attrs, cls) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (cls) e.setAttribute("class", cls);
    return e;
  }

  function text(tag, value, cls) {
    const e = document.createElement(tag);
    e.textContent = value;
    if (cls) e.className = cls;
    return e;
  }

  function short(k) { return k.length > MAX_LABEL ? k.slice(0, MAX_LABEL - 1) + "\u2026" : k; }

  function statusWords(n) {
    if (!n.registered) return "unknown (not registered)";
    if (n.outside) return n.status + " (not in this view: the registry's verdict for its dependents)";
    const of = n.instances === 1 ? "1 instance" : n.instances + " instances";
    return n.status + " (" + n.healthy + "/" + of + " healthy)";
  }

  function dependsWords(n) {
    if (!n.dependsOn.length) return "depends on nothing";
    return "depends on " + n.dependsOn.map((d) => d.service + (d.required ? "" : " (soft)")).join(", ");
  }

  // What a chosen service is told by: its state, its blocking chain, its cycle, its dependencies.
  function describe(model, k) {
    const n = model.nodes.get(k);
    if (!n) return "";
    const parts = [k + ": " + statusWords(n) + "."];
    if (n.chain.length) {
      const cause = n.chain[n.chain.length - 1];
      const c = model.nodes.get(cause);
      parts.push("Blocked by " + n.chain.join(" \u2192 ") + "; the cause: " + cause +
        (c ? " (" + (c.registered ? c.status : "not registered") + ")" : "") + ".");
      parts.push("Blocking chain: " + [k, ...n.chain].join(" \u2192 ") + ".");
    } else if (n.status === "unhealthy" || n.status === "degraded") {
      parts.push("Not blocked by a dependency: its own checks say " + n.status + ".");
    } else {
      parts.push("Not blocked.");
    }
    if (n.onCycle) parts.push("On a dependency cycle with " + n.cycle.filter((x) => x !== k).join(", ") + ".");
    parts.push(dependsWords(n).replace(/^d/, "D") + ".");
    const users = model.edges.filter((e) => e.to === k).map((e) => e.from);
    if (users.length) parts.push("Needed by " + users.join(", ") + ".");
    return parts.join(" ");
  }

  function position(n) { return { x: PAD + n.column * (W + GAP_X), y: PAD + n.row * (H + GAP_Y) }; }

  // A curve from a service's right side to its dependency's left side, straight through each
  // slot it passes in the columns between; within one column (a cycle) a loop out to the right
  // and back.
  function edgePath(model, e) {
    const a = position(model.nodes.get(e.from)), b = position(model.nodes.get(e.to));
    const sx = a.x + W, sy = a.y + H / 2;
    if (e.from === e.to) return `M${sx},${sy - 8} C${sx + LOOP},${sy - 30} ${sx + LOOP},${sy + 30} ${sx},${sy + 8}`;
    if (b.x > a.x) {
      let d = `M${sx},${sy}`, x = sx, y = sy;
      const curve = (tx, ty) => { const mid = (x + tx) / 2; d += ` C${mid},${y} ${mid},${ty} ${tx},${ty}`; x = tx; y = ty; };
      for (const slot of e.via || []) {
        const p = position(slot);
        curve(p.x, p.y + H / 2);
        d += ` L${p.x + W},${p.y + H / 2}`;
        x = p.x + W;
      }
      curve(b.x, b.y + H / 2);
      return d;
    }
    // Upward loops bend further out than downward ones, so a two-service cycle shows two arcs.
    // Both stay inside the gap before the next column.
    const tx = b.x + W, ty = b.y + H / 2,
      bend = sx + Math.min(GAP_X - 12, LOOP * (ty < sy ? 1.6 : 0.8) + Math.min(30, Math.abs(ty - sy) / 8));
    return `M${sx},${sy + (ty > sy ? 6 : -6)} C${bend},${sy} ${bend},${ty} ${tx},${ty}`;
  }

  function marker(id, cls) {
    // Sized in the drawing's units, so a heavy (blocking) edge keeps an arrowhead of normal size.
    const m = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 10,
      markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, cls);
    m.append(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
    return m;
  }

  function summary(model) {
    const counts = { healthy: 0, degraded: 0, unhealthy: 0, unknown: 0 };
    for (const n of model.nodes.values()) counts[n.status]++;
    const said = Object.entries(counts).filter(([, v]) => v).map(([k, v]) => v + " " + k);
    return model.shown + " services, " + model.edges.length + " dependencies" +
      (said.length ? " (" + said.join(", ") + ")" : "") +
      (model.cycles.length ? "; " + model.cycles.length + " cycle" + (model.cycles.length > 1 ? "s" : "") : "") + ".";
  }

  // Draws `model` into `box` (emptied first); `detail` is the live region that says the chosen
  // service. Returns a handle whose `clear()` forgets the drawing and the choice.
  function draw(box, detail, note, model, keepChoice) {
    let chosen = keepChoice && model.nodes.has(keepChoice) ? keepChoice : null;
    box.replaceChildren();
    detail.textContent = "";
    note.replaceChildren();
    if (!model.nodes.size) return { clear() { box.replaceChildren(); detail.textContent = ""; }, chosen: () => null };
    if (model.total > model.shown) {
      note.append(text("span", "Showing " + model.shown + " of " + model.total + " services: the graph " +
        "draws at most " + model.cap + ", unhealthy, degraded and unknown ones first. The full list is below.", "warning"));
    }
    if (model.cycles.length) {
      const list = text("ul", "", "cycles");
      for (const c of model.cycles) {
        const rest = c.members.filter((k) => !c.path.includes(k));
        list.append(text("li", "Cycle: " + c.path.join(" \u2192 ") +
          (rest.length ? " (with " + rest.join(", ") + " in the same loop of dependencies)" : "")));
      }
      note.append(list);
    }
    const cols = model.columns.length;
    const rows = Math.max(...model.columns.map((c) => c.length));
    const width = PAD * 2 + cols * W + (cols - 1) * GAP_X + LOOP + 40;
    const height = PAD * 2 + rows * H + (rows - 1) * GAP_Y;
    const root = svg("svg", { id: "graph-svg", role: "group", width, height,
      viewBox: `0 0 ${width} ${height}`, "aria-labelledby": "graph-svg-title", "aria-describedby": "graph-svg-desc" });
    const title = svg("title", { id: "graph-svg-title" });
    title.textContent = "Dependency graph";
    const desc = svg("desc", { id: "graph-svg-desc" });
    desc.textContent = summary(model) + " Arrows point from a service to what it depends on; dashed " +
      "arrows are soft dependencies. Tab to a service to hear its blocking chain.";
    const defs = svg("defs");
    defs.append(marker("arrow", "marker"), marker("arrow-blocking", "marker blocking"),
      marker("arrow-cycle", "marker cycle"));
    root.append(title, desc, defs);
    const edgeLayer = svg("g", { "aria-hidden": "true" }, "edges");
    const edgeEls = [];
    // Blocking edges last, so they are drawn over the others.
    for (const e of [...model.edges].sort((a, b) => Number(a.blocking) - Number(b.blocking))) {
      const cls = ["edge", e.required ? "required" : "soft", e.cycle ? "cycle" : "", e.blocking ? "blocking" : ""]
        .filter(Boolean).join(" ");
      const p = svg("path", { d: edgePath(model, e),
        "marker-end": "url(#" + (e.blocking ? "arrow-blocking" : e.cycle ? "arrow-cycle" : "arrow") + ")" }, cls);
      p.dataset.from = e.from;
      p.dataset.to = e.to;
      edgeEls.push([e, p]);
      edgeLayer.append(p);
    }
    const nodeLayer = svg("g", {}, "nodes");
    const nodeEls = new Map();
    const causes = new Set([...model.nodes.values()].filter((n) => n.chain.length)
      .map((n) => n.chain[n.chain.length - 1]));
    for (const k of model.columns.flat().filter((c) => model.nodes.has(c))) {
      const n = model.nodes.get(k);
      const at = position(n);
      const cls = ["node", n.status, n.registered ? "" : "unregistered", n.outside ? "outside" : "", n.onCycle ? "on-cycle" : "",
        n.chain.length ? "blocked" : "", causes.has(k) ? "cause" : ""].filter(Boolean).join(" ");
      const g = svg("g", { transform: `translate(${at.x},${at.y})`, tabindex: 0, role: "button",
        "aria-pressed": "false" }, cls);
      g.dataset.key = k;
      g.dataset.status = n.status;
      g.setAttribute("aria-label", k + ", " + statusWords(n) +
        (n.chain.length ? ", blocked by " + n.chain.join(" then ") : "") +
        (n.onCycle ? ", on a cycle" : "") + ", " + dependsWords(n));
      const tip = svg("title");
      tip.textContent = k + ": " + statusWords(n);
      const label = svg("text", { x: 10, y: 19 }, "node-name");
      label.textContent = short(k);
      const state = svg("text", { x: 10, y: 38 }, "node-status");
      state.textContent = (n.registered ? n.status : "not registered") + (n.outside ? " \u00b7 not in view" : "") +
        (n.chain.length ? " \u00b7 blocked" : causes.has(k) ? " \u00b7 cause" : "") + (n.onCycle ? " \u00b7 cycle" : "");
      g.append(tip, svg("rect", { width: W, height: H, rx: 6, ry: 6 }, "node-box"), label, state);
      nodeEls.set(k, g);
      nodeLayer.append(g);
    }
    root.append(edgeLayer, nodeLayer);

    function show() {
      root.classList.toggle("has-choice", chosen !== null);
      const path = chosen ? [chosen, ...model.nodes.get(chosen).chain] : [];
      const inPath = new Set(path);
      const pairs = new Set(path.slice(1).map((k, i) => path[i] + "\n" + k));
      for (const [k, g] of nodeEls) {
        g.classList.toggle("chosen", k === chosen);
        g.classList.toggle("in-chain", k !== chosen && inPath.has(k));
        g.setAttribute("aria-pressed", String(k === chosen));
      }
      for (const [e, p] of edgeEls) p.classList.toggle("in-chain", pairs.has(e.from + "\n" + e.to));
      detail.textContent = chosen ? describe(model, chosen) : "";
    }
    function choose(k) { chosen = k; show(); }
    nodeLayer.addEventListener("focusin", (ev) => {
      const g = ev.target.closest && ev.target.closest("g.node");
      if (g) choose(g.dataset.key);
    });
    nodeLayer.addEventListener("click", (ev) => {
      const g = ev.target.closest && ev.target.closest("g.node");
      if (g) { g.focus(); choose(g.dataset.key); }
    });
    nodeLayer.addEventListener("keydown", (ev) => {
      const g = ev.target.closest && ev.target.closest("g.node");
      if (!g) return;
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); choose(g.dataset.key); }
      if (ev.key === "Escape") { ev.preventDefault(); choose(null); }
    });
    box.append(root);
    show();
    return {
      clear() { chosen = null; box.replaceChildren(); detail.textContent = ""; note.replaceChildren(); },
      chosen: () => chosen,
    };
  }

  return { draw, describe };
})();
