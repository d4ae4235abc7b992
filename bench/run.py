#!/usr/bin/env python3
"""The benchmark harness behind `make bench` (never part of CI's pass/fail).

It builds a release `handler` and `bench-tool` (bench/tool.rs: preload, the load generator, the
store's direct baselines, probe targets, a counting proxy), installs Azurite with the project's
pinned npm packages, starts a fresh Azurite for each scenario (one per system where systems are
compared), and prints one table: every fleet-scale figure beside the store's direct rate (or the
recipe's) measured in the same run, the ratio, the target and whether it is met, each the median
of BENCH_RUNS runs; then the machine and versions. Scenarios: bench/fleet.py (fleet scale, the
default), bench/discovery.py (discovery and instances, when asked for), bench/consul_api.py (the
Consul API's reads and blocking watchers, when asked for), bench/checks.py (the sweep's cost per
check kind, when asked for) and bench/fanout.py (the fanned-out sweep, when asked for).

Only 127.0.0.1 is ever contacted. Every load is bounded in count and time. Results: the table on
stdout and bench/results/<UTC timestamp>.json with the machine, versions, command lines and every
figure. Environment: BENCH_RUNS (default 3), BENCH_SECONDS per load run (default 3),
BENCH_SCENARIOS (comma-separated, default cold_start,heartbeats,registration,uncached,memory,sweep;
also discovery, instances, dependencies, consul, check_kinds, and fanout: bench/fanout.py, the sweep fanned out over a queue
to BENCH_FANOUT_PROCESSES standalone processes, default 1,2,4; BENCH_FANOUT_SHARD_SIZE; BENCH_FANOUT_HEALTH
preloaded, the steady state on one store, or empty, a fresh store per run), BENCH_CHECK_SERVICES (check_kinds; default 2000),
BENCH_SERVICES (memory, sweep, uncached; default 10000),
BENCH_HEARTBEAT_INSTANCES (default 10000), BENCH_HEARTBEAT_SECONDS (default 15),
BENCH_WITH_WHOLE_SECONDS (the same with a whole-registry reader added; default 10),
BENCH_SATURATED_SECONDS (the closed-loop discovery run beside the heartbeats; default 5),
BENCH_DISCOVERY_SIZES (discovery; default 1000,10000), BENCH_BUILD (glibc, the default, or musl: the
static binary make package ships), and for profiling BENCH_HANDLER (a handler binary to run instead)
and BENCH_HANDLER_WRAPPER (a command the handler is started under, e.g. bench/heaptrack-exec.sh).
"""

import atexit
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checks  # noqa: E402
import consul_api  # noqa: E402
import fanout  # noqa: E402
import fleet  # noqa: E402
import discovery  # noqa: E402
from common import (BUILD, COMMANDS, HANDLER, HANDLER_WRAPPER, ROOT, RUNS, SECONDS, STARTED, build, log,  # noqa: E402
                    machine, stop_children)

DEFAULT_SCENARIOS = "cold_start,heartbeats,registration,uncached,memory,sweep"
SCENARIOS = [s for s in os.environ.get("BENCH_SCENARIOS", DEFAULT_SCENARIOS).split(",") if s]


def verdict(value, target, higher_is_better=True):
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "NOT met"


def fleet_rows(results):
    """(figure, measured, baseline, ratio, target, met) for what ran."""
    t = fleet.TARGETS
    rows = []
    if "cold_start" in results:
        c = results["cold_start"]
        rows.append(("cold start: spawn to first GET / 200", f"{c['to_ready_ms']:.1f} ms", "", "", "report", ""))
        rows.append(("cold start: spawn to first discovery 200", f"{c['to_first_discovery_ms']:.1f} ms", "", "",
                     "report", ""))
    if "heartbeats" in results:
        h = results["heartbeats"]
        m = h["mixed"]
        rows.append((f"heartbeats {h['instances']} at {h['rate']}/s + discovery: warm hit ratio",
                     f"{m['hit_ratio'] * 100:.1f} %", "", "", f">= {t['heartbeat_hit_ratio'] * 100:.0f} %",
                     verdict(m["hit_ratio"], t["heartbeat_hit_ratio"])))
        rates = h["discovery_rates"]
        for q in ("by_type", "by_name", "if_none_match"):
            rows.append((f"  discovery p99 during heartbeats, {q} at {rates[q]}/s", f"{m[f'p99_{q}_ms']:.2f} ms",
                         f"no heartbeats {h['without_heartbeats'][f'p99_{q}_ms']:.2f} ms",
                         "", f"< {t['heartbeat_discovery_p99_ms']:g} ms",
                         verdict(m[f"p99_{q}_ms"], t["heartbeat_discovery_p99_ms"], higher_is_better=False)))
        wo = h["without_heartbeats"]
        if "cores_machine" in m and "cores_machine" in wo:
            rows.append(("  cores busy: machine / Azurite / handler, with heartbeats",
                         f"{m['cores_machine']:.2f} / {m['cores_azurite']:.2f} / {m['cores_handler']:.2f}",
                         f"without {wo['cores_machine']:.2f} / {wo['cores_azurite']:.2f} / {wo['cores_handler']:.2f}",
                         "", "report", ""))
        # The whole registry is a page of every instance (megabytes): what one such reader costs the others.
        w = h["with_whole_registry"]
        for q in ("by_type", "by_name", "if_none_match", "whole_registry"):
            rows.append((f"  + whole registry at {rates['whole_registry']}/s: p99 {q}", f"{w[f'{q}_p99_ms']:.2f} ms",
                         "", "", "report", ""))
        sat = h["saturated"]
        for q in ("by_type", "by_name", "if_none_match", "whole_registry"):
            rows.append((f"  saturated (closed loop), {q}", f"{sat[f'{q}_rps']:.0f}/s, p99 {sat[f'{q}_p99_ms']:.1f} ms",
                         "", "", "report", ""))
        rows.append(("  If-None-Match answered 304 (no real change in the window)",
                     f"{m['not_modified']:.0f} of {m['if_none_match_requests']:.0f}", "", "",
                     "all", verdict(m["not_modified_share"], 1.0)))
        rows.append(("  heartbeats achieved / non-2xx", f"{m['heartbeat_rps']:.0f}/s / {m['heartbeat_non_2xx']:.0f}",
                     "", "", f"{h['rate']}/s", ""))
        tp, d = h["throughput_c16"], h["direct_merge_c16"]
        rows.append(("heartbeat throughput c=16", f"{tp['rps']:.0f}/s", f"direct merge {d['rps']:.0f}/s",
                     f"{h['ratio']:.2f}", f">= {t['heartbeat_over_direct']}", verdict(h["ratio"], t["heartbeat_over_direct"])))
        if "azurite_cpu_ms_per_op" in tp:
            rows.append(("  Azurite CPU per write / cores busy (machine, Azurite)",
                         f"{tp['azurite_cpu_ms_per_op']:.3f} ms / {tp['cores_machine']:.2f}, {tp['cores_azurite']:.2f}",
                         f"direct {d['azurite_cpu_ms_per_op']:.3f} ms / {d['cores_machine']:.2f}, {d['cores_azurite']:.2f}",
                         "", "report", ""))
            rows.append(("  handler CPU per heartbeat", f"{tp['handler_cpu_ms_per_op']:.3f} ms", "", "", "report", ""))
    if "registration" in results:
        g = results["registration"]
        for c in (16, 64):
            key = f"new_c{c}"
            hd, rc, dr = g["handler"][key], g["recipe"][key], g["direct"][key]
            rows.append((f"new registrations c={c}", f"{hd['rps']:.0f}/s", f"direct upsert {dr['rps']:.0f}/s",
                         f"{hd['rps'] / dr['rps']:.2f}", f">= {t['register_over_direct']}",
                         verdict(hd["rps"] / dr["rps"], t["register_over_direct"])))
            rows.append((f"  against the recipe's registrar c={c}", f"{hd['rps']:.0f}/s", f"recipe {rc['rps']:.0f}/s",
                         f"{hd['rps'] / rc['rps']:.2f}", f"> {t['register_over_recipe']}",
                         verdict(hd["rps"] / rc["rps"], t["register_over_recipe"])))
            rows.append((f"  storage requests, Azurite CPU per registration c={c}",
                         f"{hd['storage_requests_per_call']:.3f}, {hd['azurite_cpu_ms_per_call']:.2f} ms",
                         f"recipe {rc['storage_requests_per_call']:.3f}, {rc['azurite_cpu_ms_per_call']:.2f} ms; "
                         f"direct {dr['storage_requests_per_call']:.3f}, {dr['azurite_cpu_ms_per_call']:.2f} ms",
                         "", "1 request", verdict(hd["storage_requests_per_call"], 1.0, higher_is_better=False)))
        a, ra = g["handler"]["again_c16"], g["recipe"]["again_c16"]
        rows.append(("re-registrations c=16", f"{a['rps']:.0f}/s, {a['storage_requests_per_call']:.3f} requests",
                     f"recipe {ra['rps']:.0f}/s, {ra['storage_requests_per_call']:.3f} requests", "",
                     f"<= {t['reregister_storage_requests']} requests",
                     verdict(a["storage_requests_per_call"], t["reregister_storage_requests"], higher_is_better=False)))
    if "uncached" in results:
        g = results["uncached"]
        for q in ("by_type", "by_name"):
            hd, rc, dr = g["handler"][q], g["recipe"][q], g["handler"][f"{q}_direct"]
            rows.append((f"uncached discovery {q} ({hd['count']:.0f} rows), c=16", f"{hd['rps']:.0f}/s",
                         f"recipe {rc['rps']:.0f}/s", f"{hd['rps'] / rc['rps']:.2f}", f">= {t['uncached_over_recipe']}",
                         verdict(hd["rps"] / rc["rps"], t["uncached_over_recipe"])))
            rows.append((f"  store's direct reads {q}", f"{hd['rps']:.0f}/s", f"direct {dr['rps']:.0f}/s",
                         f"{hd['rps'] / dr['rps']:.2f}", "report", ""))
            rows.append((f"  bytes from Azurite per discovery {q}", f"{hd['storage_bytes_down_per_call']:.0f} B",
                         f"recipe {rc['storage_bytes_down_per_call']:.0f} B",
                         f"{hd['storage_bytes_down_per_call'] / max(rc['storage_bytes_down_per_call'], 1):.2f}",
                         "report", ""))
    if "memory" in results:
        g = results["memory"]
        for mode in ("cached", "uncached"):
            m = g[mode]
            rows.append((f"whole registry {g['services']}, c=16, {mode}: peak RSS", f"{m['peak_rss_mib']:.1f} MiB",
                         f"idle {m['idle_rss_mib']:.1f} MiB", "", f"<= {t['peak_rss_mib']:g} MiB",
                         verdict(m["peak_rss_mib"], t["peak_rss_mib"], higher_is_better=False)))
            rows.append((f"  throughput {mode}", f"{m['rps']:.1f}/s, p99 {m['p99_ms']:.0f} ms",
                         f"direct {g['direct']['rps']:.1f}/s", f"{m['rps'] / g['direct']['rps']:.2f}", "report", ""))
        w = g["response_bytes"]
        rows.append(("  response bytes plain / gzip / br", " / ".join(f"{w[k]['bytes']}" for k in ("identity", "gzip", "br")),
                     "encodings: " + " / ".join(w[k]["content_encoding"] or "none" for k in ("identity", "gzip", "br")),
                     "", "compressed when accepted", verdict(min(w["gzip"]["bytes"], w["br"]["bytes"]),
                                                             w["identity"]["bytes"] * 0.5, higher_is_better=False)))
    if "sweep" in results:
        s = results["sweep"]
        rows.append((f"sweep {s['services']} services, {s['silent']} silent, concurrency {s['concurrency']}",
                     f"{s['seconds']:.2f} s", f"floor {s['floor_s']:.2f} s", f"{s['ratio']:.2f}",
                     f"<= {t['sweep_over_floor']}", verdict(s["ratio"], t["sweep_over_floor"], higher_is_better=False)))
        rows.append(("  sweep peak RSS", f"{s['peak_rss_mib']:.1f} MiB", f"probed {s['probed']:.0f}, "
                     f"{s['write_requests']:.0f} write requests, skipped_deadline {s['skipped_deadline']:.0f}", "",
                     f"<= {t['sweep_rss_mib']:g} MiB", verdict(s["peak_rss_mib"], t["sweep_rss_mib"], higher_is_better=False)))
    return rows


def render(rows, header):
    rows = [header] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(stop_children)
    build()
    scenarios = fleet.SCENARIOS | discovery.SCENARIOS | consul_api.SCENARIOS | checks.SCENARIOS | fanout.SCENARIOS
    unknown = [s for s in SCENARIOS if s not in scenarios]
    if unknown:
        sys.exit(f"unknown BENCH_SCENARIOS {unknown}; choose from {sorted(scenarios)}")
    results = {}
    for name in SCENARIOS:
        log(name)
        scenarios[name](results)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
        "settings": {"runs": RUNS, "seconds_per_load_run": SECONDS, "scenarios": SCENARIOS, "build": BUILD,
                     "handler": str(HANDLER), "handler_wrapper": HANDLER_WRAPPER,
                     "targets": fleet.TARGETS},
        "results": results, "commands": COMMANDS, "total_seconds": time.time() - STARTED,
    }
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=2))
    m = report["machine"]
    print(f"machine: {m['cores']} cores, {m['memory']}, {m['cpu']}; load average at start "
          + ", ".join(f"{x:.2f}" for x in m["load_at_start"]) + ", at end "
          + ", ".join(f"{x:.2f}" for x in m["load_at_end"]))
    print(f"versions: {m['rustc']}; node {m['node']}; azurite {m['azurite']}; @azure/data-tables {m['data_tables_js']}")
    # A BENCH_HANDLER binary is whatever it is: only its path says which build it is.
    which = f"{BUILD} build, " if "BENCH_HANDLER" not in os.environ else "BENCH_HANDLER "
    print(f"handler: {which}{HANDLER.relative_to(ROOT) if HANDLER.is_relative_to(ROOT) else HANDLER}"
          + (f", under {' '.join(HANDLER_WRAPPER)}" if HANDLER_WRAPPER else ""))
    print(f"medians of {RUNS} runs; load runs {SECONDS:g} s each; every system on 127.0.0.1; registration and "
          "uncached discovery through the counting proxy in front of Azurite (all systems alike)")
    fleet_table = fleet_rows(results) + consul_api.rows(results) + fanout.rows(results)
    if fleet_table:
        print(render(fleet_table, ("figure", "measured", "baseline (same run)", "ratio", "target", "met")))
    kinds = checks.rows(results)
    if kinds:
        print()
        print(render(kinds, ("check kind", "sweep s", "storage requests / service", "peak RSS MiB")))
    old = discovery.rows(results)
    if old:
        print()
        print(render(old, ("scenario", "throughput /s", "p50 ms", "p99 ms", "note")))
    print(f"\nresults: {out.relative_to(ROOT)}  (total {report['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
