// The dependency graph's model, with no DOM: from discovery's instances, one node per service
// (`serviceType:serviceName`) coloured by its instances' effective statuses, one edge per declared
// dependency (soft ones marked), each service's blocking chain (`blockedBy`), the cycles, and a
// layered layout (longest-path layers over the strongly connected components, so a cycle never
// loops and shares one column). It draws at most MAX_NODES services and says how many it left out.
// Kept apart from the drawing so that what the page shows is decided in one place.
const DashboardGraphModel = (function () {
  "use strict";
  const MAX_NODES = 300;
  // Placeholder slots for edges that cross columns (beyond this many, such edges are drawn straight
  // across, over whatever lies between).
  const MAX_SLOTS = 3000;
  const STATUSES = ["healthy", "degraded", "unhealthy", "unknown"];
  // Which services are kept when there are more than MAX_NODES: the troubled ones first.
  const RANK = { unhealthy: 0, degraded: 1, unknown: 2, healthy: 3 };

  function serviceKey(s) { return s.serviceType + ":" + s.serviceName; }

  // An instance's effective status; before the registry reports one, its own verdict.
  function effective(s) {
    if (STATUSES.includes(s.effectiveStatus)) return s.effectiveStatus;
    const own = s.healthStatus && s.healthStatus.status;
    return STATUSES.includes(own) ? own : "unknown";
  }

  // An instance's declared dependencies, from `dependsOn` (strings or {service, required}) and
  // the `dependencies` detail, whichever the registry sends: [{service, required}].
  function dependenciesOf(s) {
    const found = new Map();
    for (const list of [s.dependsOn, s.dependencies]) {
      if (!Array.isArray(list)) continue;
      for (const d of list) {
        const to = typeof d === "string" ? d : d && typeof d.service === "string" ? d.service : null;
        if (!to) continue;
        const required = typeof d === "string" || d.required !== false;
        found.set(to, (found.get(to) || false) || required);
      }
    }
    return [...found].map(([service, required]) => ({ service, required }));
  }

  // A service's health for what depends on it, from its instances' effective statuses (the
  // registry's rule): all healthy, none checked yet, none usable, or something in between.
  function serviceStatus(statuses) {
    const count = (x) => statuses.filter((v) => v === x).length;
    if (!statuses.length || count("unknown") === statuses.length) return "unknown";
    if (count("healthy") === statuses.length) return "healthy";
    if (count("healthy") + count("degraded") === 0) return "unhealthy";
    return "degraded";
  }

  // The chain that blocks a service: an unhealthy instance's `blockedBy`, else a degraded one's.
  function chainOf(instances) {
    for (const want of ["unhealthy", "degraded"]) {
      for (const s of instances) {
        if (effective(s) === want && Array.isArray(s.blockedBy) && s.blockedBy.length) {
          return s.blockedBy.filter((k) => typeof k === "string");
        }
      }
    }
    return [];
  }

  // Tarjan's strongly connected components, iteratively (no recursion depth to exceed). Returns
  // them sinks first: a component comes after every component it reaches.
  function components(keys, out) {
    const index = new Map(), low = new Map(), onStack = new Set(), stack = [], result = [];
    let next = 0;
    for (const root of keys) {
      if (index.has(root)) continue;
      const work = [[root, 0]];
      index.set(root, next); low.set(root, next); next++;
      stack.push(root); onStack.add(root);
      while (work.length) {
        const frame = work[work.length - 1];
        const [v, i] = frame;
        const targets = out.get(v) || [];
        if (i < targets.length) {
          frame[1]++;
          const w = targets[i];
          if (!index.has(w)) {
            index.set(w, next); low.set(w, next); next++;
            stack.push(w); onStack.add(w);
            work.push([w, 0]);
          } else if (onStack.has(w)) {
            low.set(v, Math.min(low.get(v), index.get(w)));
          }
          continue;
        }
        work.pop();
        if (work.length) {
          const parent = work[work.length - 1][0];
          low.set(parent, Math.min(low.get(parent), low.get(v)));
        }
        if (low.get(v) === index.get(v)) {
          const members = [];
          let w;
          do { w = stack.pop(); onStack.delete(w); members.push(w); } while (w !== v);
          result.push(members.sort());
        }
      }
    }
    return result;
  }

  // Orders each column by the mean row of its neighbours in the column before (one pass each
  // way), which removes most crossings of a layered drawing at a linear cost.
  function orderColumns(columns, neighbours) {
    const row = new Map();
    for (const col of columns) col.forEach((k, i) => row.set(k, i));
    const pass = (cols) => {
      for (let c = 1; c < cols.length; c++) {
        const prev = new Set(cols[c - 1]);
        const weight = new Map(cols[c].map((k) => {
          const near = (neighbours.get(k) || []).filter((n) => prev.has(n)).map((n) => row.get(n));
          return [k, near.length ? near.reduce((a, b) => a + b, 0) / near.length : row.get(k)];
        }));
        cols[c].sort((a, b) => weight.get(a) - weight.get(b) || (a < b ? -1 : a > b ? 1 : 0));
        cols[c].forEach((k, i) => row.set(k, i));
      }
    };
    pass(columns);
    pass([...columns].reverse());
  }

  // The shortest cycle through `start` inside its component, as keys (start first and last), found
  // breadth-first, so the words under the graph name arrows that are really there.
  function cycleThrough(start, members, out) {
    const inside = new Set(members);
    const before = new Map([[start, null]]);
    const queue = [start];
    while (queue.length) {
      const v = queue.shift();
      for (const w of out.get(v) || []) {
        if (!inside.has(w)) continue;
        if (w === start) {
          const path = [start];
          for (let at = v; at !== start; at = before.get(at)) path.splice(1, 0, at);
          return [...path, start];
        }
        if (!before.has(w)) { before.set(w, v); queue.push(w); }
      }
    }
    return [...members, start];
  }

  // What the instances' `dependencies` details say of each dependency: {status, note}.
  function reportedOf(instances) {
    const said = new Map();
    for (const s of instances) {
      if (!Array.isArray(s.dependencies)) continue;
      for (const d of s.dependencies) {
        if (d && typeof d.service === "string" && !said.has(d.service)) {
          said.set(d.service, { status: STATUSES.includes(d.status) ? d.status : "unknown",
            note: typeof d.note === "string" ? d.note : null });
        }
      }
    }
    return said;
  }

  // The whole model: {nodes, edges (each with `via`, the slots it passes through), cycles:
  // [{members, path}], columns (service keys and slots), total, shown, cap}.
  function build(instances) {
    const byService = new Map();
    const reported = reportedOf(instances);
    for (const s of instances) {
      if (!s || typeof s.serviceType !== "string" || typeof s.serviceName !== "string") continue;
      const k = serviceKey(s);
      if (!byService.has(k)) byService.set(k, []);
      byService.get(k).push(s);
    }
    const nodes = new Map();
    const wanted = new Map();
    for (const [k, all] of byService) {
      // Expired instances are not discovered; they count only when nothing else is left.
      const live = all.filter((s) => !s.expired);
      const counted = live.length ? live : all;
      const statuses = counted.map(effective);
      const deps = new Map();
      for (const s of counted) {
        for (const d of dependenciesOf(s)) deps.set(d.service, (deps.get(d.service) || false) || d.required);
      }
      deps.delete(k);
      nodes.set(k, {
        key: k, registered: true, outside: false, status: serviceStatus(statuses), chain: chainOf(counted),
        instances: counted.length, healthy: statuses.filter((v) => v === "healthy").length,
        dependsOn: [...deps].map(([service, required]) => ({ service, required })).sort((a, b) =>
          a.service < b.service ? -1 : 1),
      });
      for (const d of deps.keys()) wanted.set(d, true);
    }
    // A dependency not in this answer is drawn too. Not registered: unknown, which is reported,
    // not a failure. Registered but not shown to this key (a scoped key): as the registry judged it.
    for (const d of wanted.keys()) {
      if (!nodes.has(d)) {
        const said = reported.get(d);
        const absent = !said || said.note === "not registered";
        nodes.set(d, { key: d, registered: !absent, outside: !absent, status: absent ? "unknown" : said.status,
          chain: [], instances: 0, healthy: 0, dependsOn: [] });
      }
    }
    const total = nodes.size;
    let kept = [...nodes.values()];
    if (kept.length > MAX_NODES) {
      kept.sort((a, b) => RANK[a.status] - RANK[b.status] || (a.key < b.key ? -1 : 1));
      kept = kept.slice(0, MAX_NODES);
    }
    const keep = new Map(kept.map((n) => [n.key, n]));
    const edges = [];
    const out = new Map();
    for (const n of keep.values()) {
      out.set(n.key, []);
      for (const d of n.dependsOn) {
        if (!keep.has(d.service)) continue;
        edges.push({ from: n.key, to: d.service, required: d.required, cycle: false, blocking: false });
        out.get(n.key).push(d.service);
      }
    }
    const keys = [...keep.keys()].sort();
    const sccs = components(keys, out);
    const sccOf = new Map();
    sccs.forEach((members, i) => members.forEach((k) => sccOf.set(k, i)));
    const cycles = sccs.filter((m) => m.length > 1)
      .map((members) => ({ members, path: cycleThrough(members[0], members, out) }));
    // Longest path to a sink, per component (sinks come first, so every target is done).
    const layerOf = [];
    sccs.forEach((members, i) => {
      let layer = 0;
      for (const k of members) {
        for (const t of out.get(k)) {
          if (sccOf.get(t) !== i) layer = Math.max(layer, layerOf[sccOf.get(t)] + 1);
        }
      }
      layerOf[i] = layer;
    });
    const depth = layerOf.length ? Math.max(...layerOf) : 0;
    // Column 0 holds the highest layer: a service stands left of everything it depends on.
    const columns = Array.from({ length: keys.length ? depth + 1 : 0 }, () => []);
    for (const k of keys) {
      const n = keep.get(k);
      n.layer = layerOf[sccOf.get(k)];
      n.onCycle = sccs[sccOf.get(k)].length > 1;
      n.cycle = n.onCycle ? sccs[sccOf.get(k)] : [];
      columns[depth - n.layer].push(k);
    }
    // An edge that crosses columns passes through a placeholder slot in each column between, so
    // it runs where no service stands and cannot seem to leave one it does not belong to. Slot
    // names start with a line break, which no service key holds.
    const neighbours = new Map();
    const link = (a, b) => { if (!neighbours.has(a)) neighbours.set(a, []); neighbours.get(a).push(b); };
    const columnOf = (k) => depth - keep.get(k).layer;
    let slots = 0;
    for (const e of edges) {
      e.cycle = sccOf.get(e.from) === sccOf.get(e.to);
      e.via = [];
      let prev = e.from;
      const from = columnOf(e.from), to = columnOf(e.to);
      if (!e.cycle && to - from > 1 && slots + to - from - 1 <= MAX_SLOTS) {
        for (let c = from + 1; c < to; c++) {
          const slot = "\n" + slots++;
          columns[c].push(slot);
          e.via.push(slot);
          link(prev, slot); link(slot, prev);
          prev = slot;
        }
      }
      link(prev, e.to); link(e.to, prev);
    }
    orderColumns(columns, neighbours);
    const at = new Map();
    columns.forEach((col, c) => col.forEach((k, r) => {
      at.set(k, { column: c, row: r });
      if (keep.has(k)) { keep.get(k).column = c; keep.get(k).row = r; }
    }));
    for (const e of edges) e.via = e.via.map((slot) => at.get(slot));
    const edgeByPair = new Map(edges.map((e) => [e.from + "\n" + e.to, e]));
    // Every blocked service's chain, edge by edge: the service, then each key it is blocked by.
    for (const n of keep.values()) {
      const path = [n.key, ...n.chain];
      for (let i = 0; i + 1 < path.length; i++) {
        const e = edgeByPair.get(path[i] + "\n" + path[i + 1]);
        if (e) e.blocking = true;
      }
    }
    return { nodes: keep, edges, cycles, columns, total, shown: keep.size, cap: MAX_NODES };
  }

  return { build, serviceKey, effective, dependenciesOf, serviceStatus, MAX_NODES };
})();
