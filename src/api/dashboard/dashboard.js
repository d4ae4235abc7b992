// The dashboard: reads discovery and the last sweep with the key kept in sessionStorage (sent as
// `Authorization: Bearer`, never in the URL), polls discovery with If-None-Match, and renders with
// textContent only, so nothing a registrant wrote can become markup.
"use strict";
(function () {
  const KEY = "registry.key";
  const POLL_MS = 10000;
  const $ = (id) => document.getElementById(id);
  let services = [];
  let etag = null;

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

  // Every page of discovery; the first carries If-None-Match, and a 304 keeps what is shown.
  async function loadServices(force) {
    let url = "ServiceDiscovery?includeExpired=true";
    const first = headers();
    if (etag && !force) first["If-None-Match"] = etag;
    let r = await fetch(url, { headers: first, cache: "no-store" });
    if (r.status === 304) return false;
    const all = [];
    for (let pages = 0; ; pages++) {
      if (!r.ok) throw new Error("discovery: " + (await errorText(r)));
      if (pages === 0) etag = r.headers.get("ETag");
      const body = await r.json();
      all.push(...body.services);
      if (!body.continuationToken || pages >= 50) break;
      url = "ServiceDiscovery?includeExpired=true&continuationToken=" +
        encodeURIComponent(body.continuationToken);
      r = await fetch(url, { headers: headers(), cache: "no-store" });
    }
    services = all;
    return true;
  }

  async function loadSweep() {
    const box = $("sweep");
    box.replaceChildren();
    const r = await fetch("Sweep", { headers: headers(), cache: "no-store" });
    if (r.status === 401 || r.status === 403) {
      box.append(el("p", "The last sweep is shown to admin keys only; this " +
        (r.status === 401 ? "request had no accepted key" : "key is not an admin key") + ".", "muted"));
      return;
    }
    if (!r.ok) { box.append(el("p", "Last sweep: " + (await errorText(r)), "error")); return; }
    const last = (await r.json()).lastSweep;
    if (!last) { box.append(el("p", "No sweep has run yet.", "muted")); return; }
    const rows = [["outcome", last.outcome], ["started", last.startedAt], ["finished", last.finishedAt],
      ["swept by", last.checkedBy], ["trigger", last.trigger]];
    if (last.error) rows.push(["error", last.error]);
    if (last.counters) {
      for (const k of ["probed", "healthy", "unhealthy", "duration_ms", "deleted_expired"]) {
        rows.push([k.replace("_", " "), last.counters[k]]);
      }
    }
    box.append(list(rows, "sweep-details"));
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

  function card(s) {
    const h = s.healthStatus || {};
    const state = health(s);
    const c = el("article", null, "card " + state);
    c.dataset.service = s.serviceName;
    c.dataset.health = state;
    c.append(el("h4", s.serviceName + (s.instanceId ? " / " + s.instanceId : "")));
    const badge = el("span", state === "unchecked" ? "not checked yet" : state, "badge " + state);
    const rows = [["health", badge], ["circuit", h.circuit], ["error", h.errorMessage],
      ["last check", h.lastChecked], ["next probe", h.nextProbeAt],
      ["response", h.responseTime === undefined || h.responseTime === null ? null : h.responseTime + " ms"],
      ["endpoint", s.endpoint], ["version", s.version], ["weight", s.weight],
      ["TTL", s.ttlSeconds ? s.ttlSeconds + " s" : "none"],
      ["expires", s.expiresAt ? s.expiresAt + (s.expired ? " (expired)" : "") : null],
      ["last heartbeat", s.lastHeartbeat], ["tags", (s.tags || []).join(", ")],
      ["metadata", Object.keys(s.metadata || {}).length ? JSON.stringify(s.metadata) : null]];
    const dl = list(rows);
    const err = dl.querySelectorAll("dd")[2];
    if (h.errorMessage) err.classList.add("error");
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
    $("shown-count").textContent = "(" + shown.length + " of " + services.length + ")";
    if (!shown.length) box.append(el("p", services.length ? "Nothing matches the filters." : "No services registered.", "muted"));
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

  let busy = false;
  async function refresh(force) {
    if (busy) return;
    busy = true;
    try {
      const changed = await loadServices(force);
      if (changed || force) render();
      await loadSweep();
      $("status").textContent = (changed ? "Updated " : "Unchanged since last look, checked ") +
        new Date().toISOString();
      $("status").className = "";
    } catch (e) {
      $("status").textContent = String(e.message || e);
      $("status").className = "error";
    } finally { busy = false; }
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
    $("key").value = "";
    etag = null;
    showKeyState();
    refresh(true);
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY); etag = null; showKeyState(); refresh(true);
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
