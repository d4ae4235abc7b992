// The dashboard: reads discovery and the last sweep with the key kept in sessionStorage (sent as
// `Authorization: Bearer`, never in the URL), polls discovery with If-None-Match, and renders with
// textContent only, so nothing a registrant wrote can become markup. The dependency graph
// (graph_model.js, graph_view.js) and the timeline of transitions (timeline.js) are drawn from the
// same two answers. What one key was shown never outlives it: a key change, "Forget key" and a
// refused key (401, 403) clear every card, the graph and its chosen service, the timeline, the
// last-sweep box, the counts and the type list, and an answer to a request made with an earlier
// key is dropped.
(function () {
  "use strict";
  const KEY = "registry.key";
  const POLL_MS = 10000;
  const $ = (id) => document.getElementById(id);
  let services = [];
  let etag = null;
  // Bumped at every key change: an answer that arrives for an older one is not shown.
  let generation = 0;
  // Said in place of the services while nothing is shown: why (null once a key's data is shown).
  let notice = null;
  // The graph as drawn (its handle forgets the drawing and the chosen service).
  let graph = null;

  function headers() {
    const h = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    // Bearer for the handler; the same key as x-functions-key for the Functions host, which checks
    // its own function keys there before the handler sees the request (the handler reads only
    // Authorization when both are present).
    if (key) { h.Authorization = "Bearer " + key; h["x-functions-key"] = key; }
    return h;
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  async function errorText(r) {
    try { const body = await r.json(); return body.error || ("HTTP " + r.status); }
    catch (_) { return "HTTP " + r.status; }
  }

  function showKeyState() {
    $("key-state").textContent = sessionStorage.getItem(KEY)
      ? "A key is in use for this tab (kept in session storage)."
      : "No key entered: requests are sent without credentials.";
  }

  // A refused answer: the status goes with it, so that a 401 or 403 can clear what is shown.
  async function refused(what, r) {
    const e = new Error(what + ": " + (await errorText(r)));
    e.status = r.status;
    return e;
  }

  // Every page of discovery, as { services, etag }; the first carries If-None-Match, and a 304
  // gives null (what is shown stays).
  async function loadServices(force) {
    let url = "ServiceDiscovery?includeExpired=true";
    const first = headers();
    if (etag && !force) first["If-None-Match"] = etag;
    let r = await fetch(url, { headers: first, cache: "no-store" });
    if (r.status === 304) return null;
    const all = [];
    let tag = null;
    for (let pages = 0; ; pages++) {
      if (!r.ok) throw await refused("discovery", r);
      if (pages === 0) tag = r.headers.get("ETag");
      const body = await r.json();
      all.push(...body.services);
      if (!body.continuationToken || pages >= 50) break;
      url = "ServiceDiscovery?includeExpired=true&continuationToken=" +
        encodeURIComponent(body.continuationToken);
      r = await fetch(url, { headers: headers(), cache: "no-store" });
    }
    return { services: all, etag: tag };
  }

  // What the last-sweep box and the timeline show, built but not yet shown: { box, timeline }.
  async function loadSweep() {
    const r = await fetch("Sweep", { headers: headers(), cache: "no-store" });
    if (r.status === 401 || r.status === 403) {
      const why = (r.status === 401 ? "request had no accepted key" : "key is not an admin key") + ".";
      return { box: el("p", "The last sweep is shown to admin keys only; this " + why, "muted"),
        timeline: el("p", "Transitions are shown to admin keys only; this " + why, "muted") };
    }
    if (!r.ok) {
      const why = await errorText(r);
      return { box: el("p", "Last sweep: " + why, "error"), timeline: el("p", "Transitions: " + why, "error") };
    }
    const body = await r.json();
    const timeline = DashboardTimeline.build(body.recentTransitions);
    return { box: sweepBox(body.lastSweep), timeline };
  }

  function sweepBox(last) {
    if (!last) return el("p", "No sweep has run yet.", "muted");
    const rows = [["outcome", last.outcome], ["started", last.startedAt], ["finished", last.finishedAt],
      ["swept by", last.checkedBy], ["trigger", last.trigger]];
    if (last.error) rows.push(["error", last.error]);
    if (last.counters) {
      for (const k of ["probed", "healthy", "unhealthy", "duration_ms", "deleted_expired"]) {
        rows.push([k.replace("_", " "), last.counters[k]]);
      }
      // With dependencies: the live registrations by effective status after that sweep.
      if (last.counters.effective_healthy !== undefined) {
        rows.push(["effective", ["healthy", "degraded", "unhealthy", "unknown"]
          .map((k) => (last.counters["effective_" + k] || 0) + " " + k).join(", ")]);
      }
    }
    return list(rows, "sweep-details");
  }

  function list(rows, id) {
    const dl = el("dl");
    if (id) dl.id = id;
    for (const [k, v] of rows) {
      dl.append(el("dt", k));
      const dd = el("dd");
      if (v instanceof Node) dd.append(v); else dd.textContent = v === null || v === undefined || v === "" ? "—" : String(v);
      dl.append(dd);
    }
    return dl;
  }

  function health(s) { return s.healthStatus ? s.healthStatus.status : "unchecked"; }

  // The graph of every service (the filters narrow the cards only). A service chosen before stays
  // chosen, and keeps the keyboard focus, when new data redraws the graph.
  function renderGraph() {
    const model = DashboardGraphModel.build(services);
    const had = graph ? graph.chosen() : null;
    const focused = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest("#graph g.node");
    if (graph) graph.clear();
    graph = DashboardGraphView.draw($("graph"), $("graph-detail"), $("graph-note"), model, had);
    if (!model.nodes.size) $("graph").append(el("p", notice || "No services registered.", "muted"));
    if (focused && had) {
      const again = [...$("graph").querySelectorAll("g.node")].find((g) => g.dataset.key === had);
      if (again) again.focus();
    }
  }

  function card(s) {
    const h = s.healthStatus || {};
    const state = health(s);
    const c = el("article", null, "card " + state);
    c.dataset.service = s.serviceName;
    c.dataset.health = state;
    c.append(el("h4", s.serviceName + (s.instanceId ? " / " + s.instanceId : "")));
    const badge = el("span", state === "unchecked" ? "not checked yet" : state, "badge own " + state);
    const rows = [["health", badge]];
    // With dependencies: what the registry makes of this instance with them (the own verdict above).
    if (typeof s.effectiveStatus === "string") {
      rows.push(["effective", el("span", s.effectiveStatus, "badge effective " + s.effectiveStatus)]);
      if (Array.isArray(s.blockedBy) && s.blockedBy.length) rows.push(["blocked by", s.blockedBy.join(" \u2192 ")]);
    }
    rows.push(["circuit", h.circuit], ["error", h.errorMessage],
      ["last check", h.lastChecked], ["next probe", h.nextProbeAt],
      ["response", h.responseTime === undefined || h.responseTime === null ? null : h.responseTime + " ms"],
      ["endpoint", s.endpoint], ["version", s.version], ["weight", s.weight],
      ["TTL", s.ttlSeconds ? s.ttlSeconds + " s" : "none"],
      ["expires", s.expiresAt ? s.expiresAt + (s.expired ? " (expired)" : "") : null],
      ["last heartbeat", s.lastHeartbeat], ["tags", (s.tags || []).join(", ")],
      ["metadata", Object.keys(s.metadata || {}).length ? JSON.stringify(s.metadata) : null]);
    const dl = list(rows);
    if (h.errorMessage) {
      const at = [...dl.querySelectorAll("dt")].find((dt) => dt.textContent === "error");
      at.nextElementSibling.classList.add("error");
    }
    c.append(dl);
    return c;
  }

  function render() {
    const type = $("filter-type").value;
    const name = $("filter-name").value.trim().toLowerCase();
    const want = $("filter-health").value;
    const select = $("filter-type");
    const types = [...new Set(services.map((s) => s.serviceType))].sort();
    const known = [...select.options].slice(1).map((o) => o.value);
    if (types.join("\n") !== known.join("\n")) {
      select.replaceChildren(el("option", "all types"));
      select.options[0].value = "";
      for (const t of types) { const o = el("option", t); o.value = t; select.append(o); }
      select.value = types.includes(type) ? type : "";
    }
    const shown = services.filter((s) => (!type || s.serviceType === type) &&
      (!name || s.serviceName.toLowerCase().includes(name) ||
        (s.instanceId || "").toLowerCase().includes(name)) &&
      (!want || health(s) === want));
    const box = $("services");
    box.replaceChildren();
    $("shown-count").textContent = notice ? "" : "(" + shown.length + " of " + services.length + ")";
    if (!shown.length) {
      box.append(el("p", services.length ? "Nothing matches the filters." : notice || "No services registered.", "muted"));
    }
    for (const t of [...new Set(shown.map((s) => s.serviceType))].sort()) {
      const group = el("section");
      group.dataset.type = t;
      group.append(el("h3", "Type " + t));
      const cards = el("div", null, "cards");
      for (const s of shown.filter((x) => x.serviceType === t)) cards.append(card(s));
      group.append(cards);
      box.append(group);
    }
  }

  function refusedNotice(status) {
    if (status === 403) return "Nothing shown: this key may not read the registry.";
    return sessionStorage.getItem(KEY) ? "Nothing shown: the registry refused this key."
      : "Nothing shown without a key.";
  }

  // Removes everything a key was shown: the services (so every card, the counts, the type list
  // and the graph with its chosen service), the last-sweep box, the timeline and the discovery
  // tag; `why` is said in the services' and the graph's place.
  function clearShown(why) {
    services = [];
    etag = null;
    notice = why;
    if (graph) graph.clear();
    graph = null;
    $("sweep").replaceChildren();
    $("timeline").replaceChildren();
    render();
    renderGraph();
  }

  let busy = false;
  // A forced refresh asked for while another ran (a key change): run once that one ends.
  let pending = false;
  async function refresh(force) {
    if (busy) { if (force) pending = true; return; }
    busy = true;
    const asked = generation;
    try {
      const loaded = await loadServices(force);
      if (asked !== generation) return;
      if (loaded) { services = loaded.services; etag = loaded.etag; notice = null; }
      if (loaded || force) render();
      if (loaded) renderGraph();
      const sweep = await loadSweep();
      if (asked !== generation) return;
      $("sweep").replaceChildren(sweep.box);
      $("timeline").replaceChildren(sweep.timeline);
      $("status").textContent = (loaded ? "Updated " : "Unchanged since last look, checked ") +
        new Date().toISOString();
      $("status").className = "";
    } catch (e) {
      if (asked !== generation) return;
      if (e.status === 401 || e.status === 403) clearShown(refusedNotice(e.status));
      $("status").textContent = String(e.message || e);
      $("status").className = "error";
    } finally {
      busy = false;
      if (pending) { pending = false; refresh(true); }
    }
  }

  // A new key, or none: nothing the previous one was shown stays on screen, even for a moment.
  function keyChanged() {
    generation++;
    clearShown("Loading...");
    showKeyState();
    refresh(true);
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
    $("key").value = "";
    keyChanged();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    keyChanged();
  });
  $("filters").addEventListener("submit", (ev) => ev.preventDefault());
  for (const id of ["filter-type", "filter-health"]) $(id).addEventListener("change", render);
  $("filter-name").addEventListener("input", render);
  // A conditional refresh, like the timer's: a 304 keeps what is shown.
  $("refresh").addEventListener("click", () => refresh(false));
  showKeyState();
  refresh(true);
  setInterval(() => { if (!document.hidden) refresh(false); }, POLL_MS);
})();
