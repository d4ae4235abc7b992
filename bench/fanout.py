"""The fanned-out sweep (SWEEP_QUEUE), when asked for (BENCH_SCENARIOS=fanout).

  fanout  N services (BENCH_SERVICES), a quarter silent, swept by 1, 2 and 4 local standalone
          processes sharing one shard queue (Azurite's queue service): the time from the tick to
          the last shard's end against the floor silent x timeout / (concurrency x processes),
          peak RSS per process, storage requests per service (tables and queue, through counting
          proxies), and discovery p99 on one process while the sweep runs (a fixed 100/s, so the
          figure is a request's latency at that load) beside the same with no sweep.

Only 127.0.0.1 is ever contacted; every run is bounded in time (the sweep's window).
"""

import concurrent.futures
import json
import os
import subprocess
import time
import uuid

from common import (ROOT, RUNS, TOOL, Azurite, Handler, Proxy, free_port, http, load, log, median_of, preload,
                    spawn, stop, tables, wait_http)

SERVICES = int(os.environ.get("BENCH_SERVICES", "10000"))
PROCESSES = [int(p) for p in os.environ.get("BENCH_FANOUT_PROCESSES", "1,2,4").split(",")]
PROBE_TIMEOUT_S, PROBE_CONCURRENCY = 5.0, 500  # the handler's defaults (HEALTH_HOSTING_PLAN=consumption)
WINDOW_S = 900  # no run may take longer
DISCOVERY_RATE = 100
TARGETS = {"fanout_over_floor": 1.2, "fanout_rss_mib": 100.0}


class QueueService:
    """Azurite's queue service beside a bench Azurite's tables, behind a counting proxy."""

    def __init__(self):
        self.port = free_port()
        self.process = spawn([str(ROOT / "node_modules" / ".bin" / "azurite-queue"), "--queueHost", "127.0.0.1", "--queuePort", str(self.port),
                              "--inMemoryPersistence", "--skipApiVersionCheck", "--silent", "--disableTelemetry"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/")
        self.proxy = Proxy(self.port)
        self.endpoint = f"http://127.0.0.1:{self.proxy.port}/devstoreaccount1"

    def stop(self):
        stop(self.proxy.process)
        stop(self.process)


def last_sweep(base):
    status, _, body = http("GET", f"{base}/api/Sweep")
    assert status == 200, (status, body[:300])
    return json.loads(body)["lastSweep"]


def one_run(azurite, queues, names, processes):
    queue = f"bench-{uuid.uuid4().hex[:12]}"
    state = f"st{uuid.uuid4().hex[:12]}"
    connection = azurite.connection + f"QueueEndpoint={queues.endpoint};"
    env = {"STORAGE_CONNECTION_STRING": connection, "STATE_TABLE": state, "SWEEP_QUEUE": queue,
           "SWEEP_WINDOW_SECONDS": str(WINDOW_S), "HEALTH_CIRCUIT_BACKOFF_MS": "1",
           "SWEEP_QUEUE_MAX_POLL_MS": "500"}
    handlers = [Handler(azurite, names, mode="standalone", extra_env=env | {"HOSTNAME": f"p{i}"})
                for i in range(processes)]
    for h in handlers:
        h.wait_ready()
    base = handlers[0].base
    requests_before = azurite.proxy.counts()["requests"] + queues.proxy.counts()["requests"]
    started = time.perf_counter()
    status, _, body = http("POST", f"{base}/HealthMonitor", {"Data": {}, "Metadata": {}})
    assert status == 200, (status, body[:300])
    tick = json.loads(body)["Logs"][0]
    sweep_id = tick.split("sweep ", 1)[1].split(",", 1)[0]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # Discovery on one of the sweeping processes, at a fixed rate, for about the floor's time.
        floor = PROBE_TIMEOUT_S * max(1.0, (SERVICES // 4) / (PROBE_CONCURRENCY * processes))
        during = pool.submit(load, f"{base}/api/ServiceDiscovery?serviceType=type-3", 8, rate=DISCOVERY_RATE,
                             seconds=max(2.0, floor * 0.8))
        deadline = started + WINDOW_S
        last = None
        while time.perf_counter() < deadline:
            last = last_sweep(base)
            if last and last.get("fanout", {}).get("sweepId") == sweep_id and last["fanout"]["finished"]:
                break
            time.sleep(0.2)
        wall = time.perf_counter() - started
        discovery = during.result()
    assert last and last["fanout"]["finished"], last
    requests = azurite.proxy.counts()["requests"] + queues.proxy.counts()["requests"] - requests_before
    rss = [h.peak_rss_mib() for h in handlers]
    # The same discovery load with no sweep running, on the same process, for comparison.
    idle = load(f"{base}/api/ServiceDiscovery?serviceType=type-3", 8, rate=DISCOVERY_RATE, seconds=3)
    for h in handlers:
        h.stop()
    counters, fanout = last["counters"], last["fanout"]
    log(f"fanout x{processes}: {counters['duration_ms'] / 1000:.2f} s (wall {wall:.2f} s), probed "
        f"{counters['probed']}, shards {fanout['shardsDone']}/{fanout['shards']}, by "
        + ", ".join(f"{p['process']}={p['shards']}" for p in fanout["byProcess"]))
    return {"seconds": counters["duration_ms"] / 1000, "wall_seconds": wall, "probed": counters["probed"],
            "shards": fanout["shards"], "shards_dropped": fanout["shardsDropped"],
            "processes_used": len(fanout["byProcess"]), "peak_rss_mib_max": max(rss),
            "storage_requests_per_service": requests / SERVICES,
            "discovery_p99_ms": discovery["p99_ms"], "discovery_idle_p99_ms": idle["p99_ms"]}


def bench_fanout(results):
    azurite = Azurite(proxied=True)
    queues = QueueService()
    targets_process = spawn([str(TOOL), "targets"], stdout=subprocess.PIPE, text=True)
    targets = json.loads(targets_process.stdout.readline())
    names = tables()
    log(f"fanout: preloading {SERVICES} services, a quarter silent")
    preload(azurite, names, SERVICES, targets=targets, health=False)
    silent = sum(1 for i in range(SERVICES) if i % 4 == 3)
    group = {"services": SERVICES, "silent": silent, "timeout_s": PROBE_TIMEOUT_S, "concurrency": PROBE_CONCURRENCY,
             "by_processes": {}}
    for processes in PROCESSES:
        runs = [one_run(azurite, queues, names, processes) for _ in range(RUNS)]
        floor = PROBE_TIMEOUT_S * max(1.0, silent / (PROBE_CONCURRENCY * processes))
        m = median_of(runs)
        group["by_processes"][str(processes)] = m | {"floor_s": floor, "ratio": m["seconds"] / floor}
    results["fanout"] = group
    stop(targets_process)
    queues.stop()
    azurite.stop()


def rows(results):
    if "fanout" not in results:
        return []
    g, out = results["fanout"], []
    for processes, m in g["by_processes"].items():
        met = "met" if m["ratio"] <= TARGETS["fanout_over_floor"] else "NOT met"
        out.append((f"fan-out sweep {g['services']}, {g['silent']} silent, {processes} process(es)",
                    f"{m['seconds']:.2f} s", f"floor {m['floor_s']:.2f} s", f"{m['ratio']:.2f}",
                    f"<= {TARGETS['fanout_over_floor']}", met))
        rss_met = "met" if m["peak_rss_mib_max"] <= TARGETS["fanout_rss_mib"] else "NOT met"
        out.append(("  peak RSS per process (largest)", f"{m['peak_rss_mib_max']:.1f} MiB",
                    f"{m['shards']:.0f} shards over {m['processes_used']:.0f} process(es)", "",
                    f"<= {TARGETS['fanout_rss_mib']:g} MiB", rss_met))
        out.append(("  storage requests per service (tables + queue)", f"{m['storage_requests_per_service']:.3f}",
                    "", "", "report", ""))
        out.append((f"  discovery p99 at {DISCOVERY_RATE}/s during the sweep", f"{m['discovery_p99_ms']:.2f} ms",
                    f"no sweep {m['discovery_idle_p99_ms']:.2f} ms", "", "unchanged within noise", ""))
    return out


SCENARIOS = {"fanout": bench_fanout}
