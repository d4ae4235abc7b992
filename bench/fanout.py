"""The fanned-out sweep (SWEEP_QUEUE), when asked for (BENCH_SCENARIOS=fanout).

  fanout  N services (BENCH_SERVICES), a quarter silent, swept by 1, 2 and 4 local standalone
          processes sharing one shard queue (Azurite's queue service): the time from the tick to
          the last shard's end against the floor silent x timeout / (concurrency x processes),
          peak RSS per process, storage requests per service (tables and queue, through counting
          proxies), and discovery p99 on one process while the sweep runs (a fixed 100/s, so the
          figure is a request's latency at that load) beside the same with no sweep. Discovery
          asks for one service by name, as a client resolving its dependency does; a whole
          service type here is 10% of the registry (10,000 rows at 100,000), a read whose cost
          is its size, not the sweep's. Beside it, the same reads straight from the store
          (bench-tool direct, at the same rate) during the sweep and with none: what the store
          itself answers while the sweep writes, so a discovery latency the store causes is told
          from one the handler causes; and how many of the machine's cores the machine, Azurite
          and the handlers kept busy during the sweep (a saturated machine bounds the time, not
          the probe limit). And the store's own time to rewrite one health row per service in
          transactions (bench-tool preload --health-only), the least any sweep's writes take on
          this store.

Only 127.0.0.1 is ever contacted; every run is bounded in time (the sweep's window).
"""

import concurrent.futures
import json
import os
import subprocess
import time
import uuid

from common import (ROOT, RUNS, TOOL, Azurite, CpuMeter, Handler, Proxy, free_port, http, load, log, median_of,
                    output, preload, spawn, stop, tables, wait_http)

SERVICES = int(os.environ.get("BENCH_SERVICES", "10000"))
PROCESSES = [int(p) for p in os.environ.get("BENCH_FANOUT_PROCESSES", "1,2,4").split(",")]
PROBE_TIMEOUT_S, PROBE_CONCURRENCY = 5.0, 500  # the handler's defaults (HEALTH_HOSTING_PLAN=consumption)
WINDOW_S = 900  # no run may take longer
DISCOVERY_RATE = 100
# SWEEP_SHARD_SIZE for the run (the handler's default is 250). Azurite answers a shard's range
# read by scanning the whole table, so locally a sweep's storage work grows with the number of
# shards; Table Storage reads a range inside a partition by its index.
SHARD_SIZE = os.environ.get("BENCH_FANOUT_SHARD_SIZE")
# BENCH_FANOUT_HEALTH: `preloaded` (the default: one store for every run, a health row for every
# service, the steady state) or `empty` (a fresh store for every run, no health row: a registry's
# first sweep, where every verdict is an insert).
HEALTH = os.environ.get("BENCH_FANOUT_HEALTH", "preloaded")
if HEALTH not in ("preloaded", "empty"):
    raise SystemExit(f"BENCH_FANOUT_HEALTH is preloaded or empty, not {HEALTH!r}")
# svc-00013 is type-3 (13 % 10) and answers (13 % 4 != 3): one instance, by name.
DISCOVERY_PATH = "/api/ServiceDiscovery?serviceType=type-3&serviceName=svc-00013"
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


def store_reads(azurite, names, seconds):
    """Two point reads (registry and health) of the discovered service straight from the store, at
    the same rate: the store's own latency while the sweep writes. Not the name's RowKey range the
    handler's discovery reads: Azurite answers that by scanning the whole table, and 100 of them a
    second at 100,000 rows saturate it with no sweep at all (p99 1.1 to 1.4 s, measured), which
    would measure this probe, not the sweep."""
    return json.loads(output([str(TOOL), "direct", "--endpoint", azurite.endpoint, "--table", names[0],
                              "--health-table", names[1], "--type", "type-3", "--name", "svc-00013",
                              "--concurrency", "8", "--rate", str(DISCOVERY_RATE), "--seconds", str(seconds),
                              "--requests", str(int(DISCOVERY_RATE * seconds) + 1)]))


def last_sweep(base):
    """`GET /api/Sweep`'s last sweep; `None` while storage answers 503 (it is polled again)."""
    status, _, body = http("GET", f"{base}/api/Sweep")
    if status == 503:
        return None
    assert status == 200, (status, body[:300])
    return json.loads(body)["lastSweep"]


def one_run(azurite, queues, names, processes):
    queue = f"bench-{uuid.uuid4().hex[:12]}"
    state = f"st{uuid.uuid4().hex[:12]}"
    connection = azurite.connection + f"QueueEndpoint={queues.endpoint};"
    env = {"STORAGE_CONNECTION_STRING": connection, "STATE_TABLE": state, "SWEEP_QUEUE": queue,
           "SWEEP_WINDOW_SECONDS": str(WINDOW_S), "HEALTH_CIRCUIT_BACKOFF_MS": "1",
           "SWEEP_QUEUE_MAX_POLL_MS": "500"} | ({"SWEEP_SHARD_SIZE": SHARD_SIZE} if SHARD_SIZE else {})
    handlers = [Handler(azurite, names, mode="standalone", extra_env=env | {"HOSTNAME": f"p{i}"})
                for i in range(processes)]
    for h in handlers:
        h.wait_ready()
    base = handlers[0].base
    requests_before = azurite.proxy.counts()["requests"] + queues.proxy.counts()["requests"]
    # How many cores the machine, Azurite's table and queue services and the handlers kept busy:
    # a saturated machine bounds the time, not the probe limit.
    meter = CpuMeter({"tables": azurite.process.pid, "queue": queues.process.pid,
                      "handlers": [h.process.pid for h in handlers]})
    started = time.perf_counter()
    status, _, body = http("POST", f"{base}/HealthMonitor", {"Data": {}, "Metadata": {}})
    assert status == 200, (status, body[:300])
    tick = json.loads(body)["Logs"][0]
    sweep_id = tick.split("sweep ", 1)[1].split(",", 1)[0]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # Discovery on one of the sweeping processes, at a fixed rate, for about the floor's time.
        floor = PROBE_TIMEOUT_S * max(1.0, (SERVICES // 4) / (PROBE_CONCURRENCY * processes))
        seconds = max(2.0, floor * 0.8)
        during = pool.submit(load, f"{base}{DISCOVERY_PATH}", 8, rate=DISCOVERY_RATE, seconds=seconds)
        store_during = pool.submit(store_reads, azurite, names, seconds)
        deadline = started + WINDOW_S
        last = None
        while time.perf_counter() < deadline:
            last = last_sweep(base)
            if last and last.get("fanout", {}).get("sweepId") == sweep_id and last["fanout"]["finished"]:
                break
            time.sleep(0.2)
        wall = time.perf_counter() - started
        cpu = meter.cores()
        discovery = during.result()
        store_during = store_during.result()
    assert last and last["fanout"]["finished"], last
    # Less the store reads measured beside the discovery (two a read, through the same proxy).
    direct_reads = 2 * (store_during["requests"] + store_during["errors"])
    requests = azurite.proxy.counts()["requests"] + queues.proxy.counts()["requests"] - requests_before - direct_reads
    rss = [h.peak_rss_mib() for h in handlers]
    # The same discovery load with no sweep running, on the same process, for comparison.
    idle = load(f"{base}{DISCOVERY_PATH}", 8, rate=DISCOVERY_RATE, seconds=3)
    store_idle = store_reads(azurite, names, 3)
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
            "discovery_p99_ms": discovery["p99_ms"], "discovery_idle_p99_ms": idle["p99_ms"],
            "discovery_non_2xx": discovery["non_2xx"], "discovery_requests": discovery["requests"],
            "store_read_p99_ms": store_during["p99_ms"], "store_read_idle_p99_ms": store_idle["p99_ms"],
            "cpu_machine_cores": cpu["machine"], "cpu_tables_cores": cpu["tables"],
            "cpu_queue_cores": cpu["queue"], "cpu_handlers_cores": cpu["handlers"]}


class Stores:
    """One Azurite (tables behind the counting proxy) and its queue service, the registry preloaded
    with SERVICES services (a quarter silent) and, unless `empty_health`, a health row for each."""

    def __init__(self, targets, empty_health):
        self.azurite = Azurite(proxied=True)
        self.queues = QueueService()
        self.names = tables()
        log(f"fanout: preloading {SERVICES} services, a quarter silent"
            + (", no health rows" if empty_health else ", each with a health row"))
        preload(self.azurite, self.names, SERVICES, targets=targets, health=not empty_health)

    def stop(self):
        self.queues.stop()
        self.azurite.stop()


def bench_fanout(results):
    targets_process = spawn([str(TOOL), "targets"], stdout=subprocess.PIPE, text=True)
    targets = json.loads(targets_process.stdout.readline())
    silent = sum(1 for i in range(SERVICES) if i % 4 == 3)
    group = {"services": SERVICES, "silent": silent, "timeout_s": PROBE_TIMEOUT_S, "concurrency": PROBE_CONCURRENCY,
             "shard_size": int(SHARD_SIZE or 250), "health": HEALTH, "by_processes": {}}
    stores = None
    if HEALTH == "preloaded":
        # Health rows as a registry in use has them: each shard's health read and each verdict's
        # write then cost what they do in the steady state, not those of an empty table.
        stores = Stores(targets, empty_health=False)
        # The store's own time to rewrite one verdict per service, as every sweep must: the least a
        # sweep's writes take here, whatever the probes do. Azurite replaces a row by removing it
        # from and re-inserting it into arrays as long as the table, so this grows with the table;
        # Table Storage writes a row by its key.
        group["store_rewrite_s"] = preload(stores.azurite, stores.names, SERVICES, targets=targets, health=True,
                                           health_only=True)["seconds"]
        log(f"fanout: the store rewrote {SERVICES} health rows in {group['store_rewrite_s']:.2f} s")
    for processes in PROCESSES:
        runs = []
        for _ in range(RUNS):
            if HEALTH == "empty":
                # A store of its own for every run: the first sweep of a registry, every verdict new.
                stores = Stores(targets, empty_health=True)
            runs.append(one_run(stores.azurite, stores.queues, stores.names, processes))
            if HEALTH == "empty":
                stores.stop()
        floor = PROBE_TIMEOUT_S * max(1.0, silent / (PROBE_CONCURRENCY * processes))
        m = median_of(runs)
        group["by_processes"][str(processes)] = m | {"floor_s": floor, "ratio": m["seconds"] / floor}
    results["fanout"] = group
    stop(targets_process)
    if HEALTH == "preloaded":
        stores.stop()


def rows(results):
    if "fanout" not in results:
        return []
    g, out = results["fanout"], []
    if "store_rewrite_s" in g:
        out.append((f"the store's own rewrite of {g['services']} health rows (transactions of 100, 8 at once)",
                    f"{g['store_rewrite_s']:.2f} s", "", "", "report", ""))
    for processes, m in g["by_processes"].items():
        met = "met" if m["ratio"] <= TARGETS["fanout_over_floor"] else "NOT met"
        out.append((f"fan-out sweep {g['services']}, {g['silent']} silent, shards of {g.get('shard_size', 250)}, "
                    f"health rows {g.get('health', 'preloaded')}, {processes} process(es)",
                    f"{m['seconds']:.2f} s", f"floor {m['floor_s']:.2f} s", f"{m['ratio']:.2f}",
                    f"<= {TARGETS['fanout_over_floor']}", met))
        rss_met = "met" if m["peak_rss_mib_max"] <= TARGETS["fanout_rss_mib"] else "NOT met"
        out.append(("  peak RSS per process (largest)", f"{m['peak_rss_mib_max']:.1f} MiB",
                    f"{m['shards']:.0f} shards over {m['processes_used']:.0f} process(es)", "",
                    f"<= {TARGETS['fanout_rss_mib']:g} MiB", rss_met))
        out.append(("  storage requests per service (tables + queue)", f"{m['storage_requests_per_service']:.3f}",
                    "", "", "report", ""))
        out.append(("  cores busy during the sweep: machine / Azurite tables / queue / handlers",
                    f"{m['cpu_machine_cores']:.2f} / {m['cpu_tables_cores']:.2f} / {m['cpu_queue_cores']:.2f} / "
                    f"{m['cpu_handlers_cores']:.2f}", f"of {os.cpu_count()}", "", "report", ""))
        out.append((f"  discovery p99 at {DISCOVERY_RATE}/s during the sweep", f"{m['discovery_p99_ms']:.2f} ms",
                    f"no sweep {m['discovery_idle_p99_ms']:.2f} ms", "", "unchanged within noise", ""))
        out.append(("  discovery answers other than 2xx during the sweep",
                    f"{m['discovery_non_2xx']:.0f} of {m['discovery_requests']:.0f}", "", "", "none", ""))
        out.append((f"  the store's own point reads, p99 at {DISCOVERY_RATE}/s during the sweep",
                    f"{m['store_read_p99_ms']:.2f} ms", f"no sweep {m['store_read_idle_p99_ms']:.2f} ms", "",
                    "report", ""))
    return out


SCENARIOS = {"fanout": bench_fanout}
