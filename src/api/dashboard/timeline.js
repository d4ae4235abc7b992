// The recent transitions as a timeline: `recentTransitions` from `GET /api/Sweep` (each `time`,
// `subject`, `type`, `from`, `to`, `reason`), newest first, as an ordered list built with
// textContent only. Only what one answer held: it is rebuilt from the next answer, or emptied with
// everything else a key was shown.
const DashboardTimeline = (function () {
  "use strict";
  const MAX_SHOWN = 100;

  function el(tag, value, cls) {
    const e = document.createElement(tag);
    if (value !== undefined && value !== null) e.textContent = String(value);
    if (cls) e.className = cls;
    return e;
  }

  function when(t) {
    const ms = Date.parse(t);
    return Number.isNaN(ms) ? -Infinity : ms;
  }

  function state(value) {
    const s = typeof value === "string" && value ? value : "none";
    return el("span", s, "badge " + s.replace(/[^a-z]/g, ""));
  }

  // The list for one answer's transitions (an array, or absent when the registry keeps none).
  function build(transitions) {
    if (!Array.isArray(transitions)) {
      return el("p", "The registry reported no recent transitions.", "muted");
    }
    const items = transitions.filter((t) => t && typeof t === "object")
      .map((t, i) => [t, i])
      .sort((a, b) => when(b[0].time) - when(a[0].time) || a[1] - b[1])
      .slice(0, MAX_SHOWN)
      .map(([t]) => t);
    if (!items.length) return el("p", "No transitions recorded yet.", "muted");
    const list = el("ol", null, "timeline");
    list.id = "timeline-list";
    list.setAttribute("aria-label", "Recent transitions, newest first");
    for (const t of items) {
      const to = typeof t.to === "string" ? t.to : "none";
      const li = el("li", null, "transition to-" + to.replace(/[^a-z]/g, ""));
      li.dataset.subject = t.subject || "";
      const time = el("time", t.time || "—", "when");
      if (t.time) time.setAttribute("datetime", t.time);
      const change = el("span", null, "change");
      change.append(state(t.from), el("span", " \u2192 ", "arrow"), state(t.to));
      change.setAttribute("aria-label", "from " + (t.from || "none") + " to " + to);
      li.append(time, el("span", t.subject || "—", "subject"), change,
        el("span", t.reason || "", "reason"), el("span", t.type || "", "kind muted"));
      list.append(li);
    }
    return list;
  }

  return { build, MAX_SHOWN };
})();
