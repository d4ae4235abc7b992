"""The Consul API's scenarios (`BENCH_SCENARIOS=consul`): what a Consul read costs beside the native
discovery read of the same rows, and what blocking watchers cost and how fast they wake.

For each size in BENCH_CONSUL_SIZES (default 1000,10000 services, preloaded as the other scenarios
preload them):
- reads: `GET /v1/health/service/<name>` and `GET /api/ServiceDiscovery?serviceName=<name>` for the
  same service, warm, at concurrency 16, BENCH_RUNS runs each: the cost ratio is the native
  throughput over the Consul throughput (target <= 1.2);
- watchers: one blocking `GET /v1/health/service/<name>?index=<current>&wait=<BENCH_CONSUL_WAIT>`
  per service, up to BENCH_CONSUL_WATCHERS (default 10000) held at once on one handler, each on its
  own connection. Reported: the handler's RSS and open files before and while they are held (so
  memory per held watcher), how many returned before their wait without a change (must be 0), and
  the wake-up latency from a change's 200 to the watcher's answer: the change made through the
  same process, and through a second process on the same tables (the watcher's process learns of
  it within its read cache's TTL).

Only 127.0.0.1 is contacted; every load is bounded in count and time (the watchers by their wait).
"""

import asyncio
import os
import resource
import statistics
import time

from common import RUNS, Azurite, Handler, http, load, log, median_of, preload, tables

SIZES = [int(n) for n in os.environ.get("BENCH_CONSUL_SIZES", "1000,10000").split(",") if n]
WATCHERS = int(os.environ.get("BENCH_CONSUL_WATCHERS", "10000"))
WAIT_S = int(os.environ.get("BENCH_CONSUL_WAIT", "90"))
CHANGES = 5  # wake-ups measured per kind
TARGETS = {"consul_over_native_cost": 1.2, "early_returns": 0}


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


async def watch(port, name, index, wait_s):
    """One held request; returns (seconds until its answer arrived, the index it answered with)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write((f"GET /v1/health/service/{name}?index={index}&wait={wait_s}s HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\nConnection: close\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    answered = time.perf_counter()
    writer.close()
    new_index = 0
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("x-consul-index:"):
            new_index = int(line.split(":", 1)[1])
    return started, answered, new_index


def change(base, i):
    """A visible change to svc-<i>: a re-registration with a new tag (the native API)."""
    status, _, body = http("POST", f"{base}/api/ServiceRegistrar", body={
        "serviceType": f"type-{i % 10}", "serviceName": f"svc-{i:05}",
        "endpoint": f"http://127.0.0.1:9/health/{i}", "tags": ["bench", "changed"]})
    assert status == 200, (status, body)


async def held(handler, other, size):
    """Holds one watcher per service (up to WATCHERS) on `handler`, then measures."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(WATCHERS, size, hard - 200)
    pid = handler.process.pid
    rss_before, files_before = handler.rss_mib(), open_files(pid)
    # The catalog's index is at least every service's: each watcher holds until its own service changes.
    status, headers, _ = http("GET", f"{handler.base}/v1/catalog/services")
    assert status == 200, status
    index = int(headers["x-consul-index"])
    names = [f"svc-{i:05}" for i in range(count)]
    changed_names = {f"svc-{i:05}" for i in range(CHANGES * 2)}
    tasks = {}
    for name in names:
        tasks[name] = asyncio.create_task(watch(handler.port, name, index, WAIT_S))
        if len(tasks) % 500 == 0:
            await asyncio.sleep(0)  # let connects proceed
    deadline = time.perf_counter() + 30
    while open_files(pid) < files_before + count * 0.98 and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
    settled = time.perf_counter()
    rss_held, files_held = handler.rss_mib(), open_files(pid)
    log(f"{count} watchers held: RSS {rss_before:.1f} -> {rss_held:.1f} MiB, files {files_before} -> {files_held}")
    wakes = {"same": [], "other": []}
    for k in range(CHANGES):
        for kind, base, i in (("same", handler.base, k), ("other", other.base, CHANGES + k)):
            name = f"svc-{i:05}"
            await asyncio.to_thread(change, base, i)
            changed = time.perf_counter()
            _, answered, new_index = await tasks[name]
            assert new_index > index, (name, new_index, index)
            wakes[kind].append(max(answered - changed, 0.0))
    # Answered before its wait without its service changing: a watcher woken for nothing.
    early = sum(1 for name, t in tasks.items() if name not in changed_names and t.done() and not t.cancelled()
                and t.exception() is None and t.result()[1] - t.result()[0] < WAIT_S)
    elapsed_at_check = time.perf_counter() - settled
    for t in tasks.values():
        t.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    return {
        "watchers": count, "wait_s": WAIT_S, "rss_before_mib": rss_before, "rss_held_mib": rss_held,
        "kib_per_watcher": (rss_held - rss_before) * 1024 / count, "files_before": files_before,
        "files_held": files_held, "early_returns": early, "checked_after_s": elapsed_at_check,
        "wake_same_ms": [w * 1000 for w in wakes["same"]], "wake_other_ms": [w * 1000 for w in wakes["other"]],
        "wake_same_median_ms": statistics.median(wakes["same"]) * 1000,
        "wake_other_median_ms": statistics.median(wakes["other"]) * 1000,
    }


def bench_consul(results):
    out = results.setdefault("consul", {})
    for size in SIZES:
        azurite = Azurite()
        names = tables()
        log(f"consul: preloading {size} services")
        preload(azurite, names, size)
        # Room for every watcher and the calls beside them (the default cap is 10,000 connections).
        room = {"SERVER_MAX_CONNECTIONS": str(WATCHERS + 1000)}
        handler = Handler(azurite, names, extra_env=room)
        handler.wait_ready()
        other = Handler(azurite, names, extra_env=room)
        other.wait_ready()
        name = "svc-00003"
        native = median_of([load(f"{handler.base}/api/ServiceDiscovery?serviceName={name}", 16) for _ in range(RUNS)])
        consul = median_of([load(f"{handler.base}/v1/health/service/{name}", 16) for _ in range(RUNS)])
        catalog = median_of([load(f"{handler.base}/v1/catalog/services", 16) for _ in range(RUNS)])
        log(f"consul {size}: native {native['rps']:.0f}/s, consul {consul['rps']:.0f}/s, catalog {catalog['rps']:.0f}/s")
        watchers = asyncio.run(held(handler, other, size))
        out[str(size)] = {"native": native, "consul": consul, "catalog_services": catalog,
                          "cost_ratio": native["rps"] / consul["rps"], "watchers": watchers,
                          "peak_rss_mib": handler.peak_rss_mib()}
        other.stop()
        handler.stop()
        azurite.stop()


SCENARIOS = {"consul": bench_consul}


def rows(results):
    """(figure, measured, baseline, ratio, target, met) rows for the fleet table."""
    out = []
    for size, r in results.get("consul", {}).items():
        n, c, w = r["native"], r["consul"], r["watchers"]
        out.append((f"consul read /v1/health/service, {size} services, c=16", f"{c['rps']:.0f}/s, p99 {c['p99_ms']:.1f} ms",
                    f"native discovery {n['rps']:.0f}/s, p99 {n['p99_ms']:.1f} ms", f"{r['cost_ratio']:.2f}",
                    f"<= {TARGETS['consul_over_native_cost']}",
                    "met" if r["cost_ratio"] <= TARGETS["consul_over_native_cost"] else "NOT met"))
        out.append((f"  /v1/catalog/services, {size} services, c=16", f"{r['catalog_services']['rps']:.0f}/s", "", "",
                    "report", ""))
        out.append((f"  {w['watchers']} blocking watchers held: memory per watcher",
                    f"{w['kib_per_watcher']:.1f} KiB", f"RSS {w['rss_before_mib']:.0f} -> {w['rss_held_mib']:.0f} MiB, "
                    f"open files {w['files_before']} -> {w['files_held']}", "", "report", ""))
        out.append(("  watchers answered early without a change", f"{w['early_returns']}", "", "",
                    f"{TARGETS['early_returns']}", "met" if w["early_returns"] == 0 else "NOT met"))
        out.append(("  wake-up after a change, same process (median)", f"{w['wake_same_median_ms']:.0f} ms",
                    f"other process {w['wake_other_median_ms']:.0f} ms", "", "< 2000 ms same",
                    "met" if w["wake_same_median_ms"] < 2000 else "NOT met"))
    return out
