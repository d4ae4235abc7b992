"""The fleet-scale scenarios, each figure beside the store's own rate measured in the same
run, the ratio, the target and whether it is met.

  heartbeats    N instances heartbeating at 333/s through one handler while clients discover at
                fixed rates (DISCOVERY_RATES: what polling clients do), latency counted from when
                each request was due; the same with discovery as fast as it goes (closed loop: a
                saturated machine's queueing, reported, no target); then heartbeat throughput at
                concurrency 16 against bench-tool direct-merge
  registration  new registrations at 16 and 64, and re-registrations at 16, through the handler,
                through the recipe's Node registrar, and as bench-tool direct-upsert: each system
                on its own fresh Azurite behind the counting proxy (storage requests and Azurite's
                CPU per registration)
  uncached      discovery by type and by name with DISCOVERY_CACHE_TTL_MS=0 against the recipe's
                discovery function, each on its own fresh Azurite behind the proxy (bytes from
                Azurite per discovery), and bench-tool direct (the same reads, no HTTP in front)
  memory        whole-registry discovery at N services, 16 concurrent: peak RSS cached and
                uncached, idle RSS, response bytes plain / gzip / br
  sweep         N services, a quarter silent, at the default probe concurrency: time against
                silent x timeout / concurrency, and peak RSS
  cold_start    spawn to first GET / 200 and to first discovery 200, tables present
"""

import concurrent.futures
import json
import os
import socket
import subprocess
import time
import urllib.parse

from common import (RUNS, SECONDS, TOOL, Azurite, CpuMeter, Handler, RecipeServer, cpu_ms, http, instanced_spec, load, log,
                    median_of, preload, spawn, stop, tables, temp_lines, tool)

HEARTBEAT_INSTANCES = int(os.environ.get("BENCH_HEARTBEAT_INSTANCES", "10000"))
HEARTBEAT_SECONDS = float(os.environ.get("BENCH_HEARTBEAT_SECONDS", "15"))
HEARTBEAT_RATE = 333  # 10,000 instances beating every 30 s
SERVICES = int(os.environ.get("BENCH_SERVICES", "10000"))  # memory, sweep and uncached discovery
# The handler's defaults the sweep floor is computed with: HEALTH_PROBE_TIMEOUT_MS and
# HEALTH_PROBE_CONCURRENCY at HEALTH_HOSTING_PLAN=consumption (pinned by configuration's tests).
PROBE_TIMEOUT_S, PROBE_CONCURRENCY = 5.0, 500
RECIPE_TABLES = ("ServiceRegistry", "HealthStatus")  # the recipe's names are fixed in its code
# Discoveries per second during the heartbeats: 1,000 clients polling their service every 10 s, by
# type and by name, half of them with If-None-Match twice as often. Fixed rates, so the p99 is a
# request's latency at that load, not the queue of a machine driven to saturation (the closed-loop
# run reports that). A second run adds one whole-registry read a second (a dashboard or an
# exporter: 10,000 instances, megabytes, tens of ms of CPU, and its refresh reads 10 pages), to show
# what such a reader costs the others; it is reported, the target is judged without it.
DISCOVERY_RATES = {"by_type": 100, "by_name": 100, "if_none_match": 200, "whole_registry": 1}
WITH_WHOLE_SECONDS = float(os.environ.get("BENCH_WITH_WHOLE_SECONDS", "10"))
SATURATED_SECONDS = float(os.environ.get("BENCH_SATURATED_SECONDS", "5"))

TARGETS = {
    "heartbeat_hit_ratio": 0.90, "heartbeat_discovery_p99_ms": 5.0, "heartbeat_over_direct": 0.9,
    "register_over_direct": 0.9, "register_over_recipe": 1.0, "reregister_storage_requests": 2,
    "uncached_over_recipe": 1.0, "peak_rss_mib": 100.0, "sweep_over_floor": 1.2, "sweep_rss_mib": 100.0,
}


def parallel(calls):
    """Runs the (name, function) pairs at once; returns name -> result."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(fn) for name, fn in calls}
        return {name: f.result() for name, f in futures.items()}


def cores(busy):
    """A CpuMeter's cores busy as result fields: `cores_machine`, `cores_azurite`, ..."""
    return {f"cores_{name}": value for name, value in busy.items()}


def bench_heartbeats(results):
    azurite = Azurite()
    names = tables()
    per = HEARTBEAT_INSTANCES // 10
    fleets = [(f"type-{t}", f"fleet-{t}", per) for t in range(10)]
    log(f"heartbeats: preloading {HEARTBEAT_INSTANCES} instances in 10 services (+ health rows)")
    preload(azurite, names, 0, instanced=fleets)
    handler = Handler(azurite, names, mode="standalone-metrics")
    handler.wait_ready()
    # Round robin over partitions, so consecutive beats hit different services.
    bodies = temp_lines(json.dumps({"serviceName": f"fleet-{t}", "serviceType": f"type-{t}", "instanceId": f"i-{j:04}"})
                        for j in range(per) for t in range(10))
    status, _, body = http("POST", f"{handler.base}/api/ServiceHeartbeat",
                           {"serviceName": "fleet-0", "serviceType": "type-0", "instanceId": "i-0000"})
    assert status == 200, (status, body[:300])
    queries = {"by_type": "?serviceType=type-3", "by_name": "?serviceType=type-4&serviceName=fleet-4",
               "whole_registry": ""}
    url = lambda q: f"{handler.base}/api/ServiceDiscovery{q}"
    def mix(etag, seconds, saturated, whole=True, beats=True):
        """Heartbeats at their rate beside the discoveries (the whole registry only if `whole`): at
        DISCOVERY_RATES (64 workers each, so a slow answer does not hold the next request back from
        when it is due), or as fast as 4 connections each (2 for the whole registry) go."""
        def discovery(q, headers=(), expect="2"):
            if saturated:
                connections, rate = (2 if q == "whole_registry" else 4), None
            else:
                connections, rate = 64, DISCOVERY_RATES[q]
            query = queries["by_type" if q == "if_none_match" else q]
            return lambda: load(url(query), connections, headers=headers, rate=rate, seconds=seconds, expect=expect)
        # 64 workers, so a slow beat does not hold the others back from the rate.
        beating = [("heartbeat", lambda: load(f"{handler.base}/api/ServiceHeartbeat", 64, method="POST",
                                              bodies=bodies, rate=HEARTBEAT_RATE, seconds=seconds))] if beats else []
        return parallel(beating + [
            ("by_type", discovery("by_type")),
            ("by_name", discovery("by_name")),
            ("if_none_match", discovery("if_none_match", [f"If-None-Match: {etag}"], "304")),
        ] + ([("whole_registry", discovery("whole_registry"))] if whole else []))

    def tails(m):
        return {f"{q}_{k}": m[q][k] for q in m for k in ("rps", "p99_ms")} | {"loads": m}

    mixed, without, with_whole, saturated = [], [], [], []
    for _ in range(RUNS):
        etag = http("GET", url(queries["by_type"]))[1]["etag"]
        for q in queries.values():
            http("GET", url(q))
        hits0, misses0 = handler.cache_counts()
        meter = CpuMeter({"azurite": azurite.process.pid, "handler": handler.process.pid})
        m = mix(etag, HEARTBEAT_SECONDS, saturated=False, whole=False)
        busy = meter.cores()
        hits1, misses1 = handler.cache_counts()
        hits, misses = hits1 - hits0, misses1 - misses0
        inm = m["if_none_match"]
        mixed.append({
            "hit_ratio": hits / max(hits + misses, 1), "cache_hits": hits, "cache_misses": misses,
            "heartbeat_rps": m["heartbeat"]["rps"], "heartbeat_non_2xx": m["heartbeat"]["non_2xx"],
            "p99_by_type_ms": m["by_type"]["p99_ms"], "p99_by_name_ms": m["by_name"]["p99_ms"],
            "p99_if_none_match_ms": inm["p99_ms"],
            "not_modified": inm["statuses"].get("304", 0), "if_none_match_requests": inm["requests"],
            "not_modified_share": inm["statuses"].get("304", 0) / max(inm["requests"], 1),
            **cores(busy),
            "loads": m,
        })
        log(f"heartbeats mixed: hit ratio {mixed[-1]['hit_ratio']:.3f}, 304 share {mixed[-1]['not_modified_share']:.3f}")
        # The same discoveries with no heartbeat at all: what the tail is without them, on the same
        # machine in the same minute (the measured cause when the target above is missed).
        meter = CpuMeter({"azurite": azurite.process.pid, "handler": handler.process.pid})
        quiet = mix(etag, HEARTBEAT_SECONDS, saturated=False, whole=False, beats=False)
        busy = meter.cores()
        without.append({f"p99_{q}_ms": quiet[q]["p99_ms"] for q in ("by_type", "by_name", "if_none_match")}
                       | cores(busy))
        with_whole.append(tails(mix(etag, WITH_WHOLE_SECONDS, saturated=False)))
        s = mix(etag, SATURATED_SECONDS, saturated=True)
        saturated.append(tails(s))
        log(f"heartbeats saturated: by_type {s['by_type']['rps']:.0f}/s, p99 {s['by_type']['p99_ms']:.1f} ms")
    spec = instanced_spec(fleets)
    through, direct = [], []
    def metered(run):
        """A throughput run and what it cost: cores busy, and Azurite's and the handler's CPU per
        answer, so the two sides' store cost is compared, not assumed."""
        meter = CpuMeter({"azurite": azurite.process.pid, "handler": handler.process.pid})
        result = run()
        busy, used = meter.cores(), meter.used_ms()
        answers = max(result["requests"], 1)
        return result | cores(busy) | {"azurite_cpu_ms_per_op": used["azurite"] / answers,
                         "handler_cpu_ms_per_op": used["handler"] / answers}
    for _ in range(RUNS):
        through.append(metered(lambda: load(f"{handler.base}/api/ServiceHeartbeat", 16, method="POST", bodies=bodies)))
        direct.append(metered(lambda: tool("direct-merge", azurite, names, 16, instanced=spec)))
    t, d = median_of(through), median_of(direct)
    results["heartbeats"] = {"instances": HEARTBEAT_INSTANCES, "rate": HEARTBEAT_RATE, "seconds": HEARTBEAT_SECONDS,
                             "mixed": median_of(mixed), "without_heartbeats": median_of(without),
                             "with_whole_registry": median_of(with_whole),
                             "saturated": median_of(saturated),
                             "discovery_rates": DISCOVERY_RATES, "throughput_c16": t, "direct_merge_c16": d,
                             "ratio": t["rps"] / d["rps"]}
    log(f"heartbeats c16: {t['rps']:.0f}/s vs direct merge {d['rps']:.0f}/s")
    bodies.unlink()
    handler.stop()
    azurite.stop()


def registration_body(prefix):
    """A bench-tool load template: `{i}` becomes the request's index, so every name is new."""
    return json.dumps({"serviceName": f"{prefix}-{{i}}", "endpoint": "http://127.0.0.1:9/x", "serviceType": "type-0",
                       "tags": ["bench"], "metadata": {"i": 1}})


def storage_cost(azurite, fn):
    """Runs `fn` (a load run) and adds what it cost the store: requests and Azurite CPU per call."""
    before, cpu0 = azurite.proxy.counts(), cpu_ms(azurite.process.pid)
    result = fn()
    after, cpu1 = azurite.proxy.counts(), cpu_ms(azurite.process.pid)
    calls = max(result["requests"], 1)
    result["storage_requests_per_call"] = (after["requests"] - before["requests"]) / calls
    result["azurite_cpu_ms_per_call"] = (cpu1 - cpu0) / calls
    result["storage_bytes_down_per_call"] = (after["bytes_down"] - before["bytes_down"]) / calls
    return result


def bench_registration(results):
    group = {}
    for system in ("handler", "recipe", "direct"):
        azurite = Azurite(proxied=True)
        names = RECIPE_TABLES
        preload(azurite, names, 0)  # the recipe creates no tables; the handler would, in the background
        server = None
        if system == "handler":
            server = Handler(azurite, names, mode="standalone")
            server.wait_ready()
        elif system == "recipe":
            server = RecipeServer(azurite)
        measured = {}
        for c in (16, 64):
            runs = []
            for r in range(RUNS):
                prefix = f"{system}-c{c}-r{r}"
                if system == "direct":
                    runs.append(storage_cost(azurite, lambda: tool("direct-upsert", azurite, names, c, prefix=prefix)))
                else:
                    runs.append(storage_cost(azurite, lambda: load(
                        f"{server.base}/api/ServiceRegistrar", c, method="POST",
                        template=registration_body(prefix))))
            measured[f"new_c{c}"] = median_of(runs)
            log(f"registration {system} c={c}: {measured[f'new_c{c}']['rps']:.0f}/s, "
                f"{measured[f'new_c{c}']['storage_requests_per_call']:.2f} storage requests each")
        if system != "direct":
            # Re-registrations: 500 names registered once, then again and again.
            url = f"{server.base}/api/ServiceRegistrar"
            first = load(url, 16, method="POST", template=registration_body(f"{system}-again"), requests=500,
                         seconds=120)
            assert first["statuses"].get("200") == 500, first["statuses"]
            runs = [storage_cost(azurite, lambda: load(url, 16, method="POST", template=registration_body(
                f"{system}-again"), modulo=500)) for _ in range(RUNS)]
            measured["again_c16"] = median_of(runs)
        if server:
            server.stop()
        azurite.stop()
        group[system] = measured
    results["registration"] = group


def bench_uncached(results):
    group = {}
    queries = {"by_type": "?serviceType=type-3", "by_name": "?serviceType=type-3&serviceName=svc-00003"}
    for system in ("handler", "recipe"):
        azurite = Azurite(proxied=True)
        names = RECIPE_TABLES
        log(f"uncached {system}: preloading {SERVICES} services (+ health rows)")
        preload(azurite, names, SERVICES)
        if system == "handler":
            server = Handler(azurite, names, extra_env={"DISCOVERY_CACHE_TTL_MS": "0"})
            server.wait_ready()
        else:
            server = RecipeServer(azurite)
        measured = {}
        for q, query in queries.items():
            status, _, body = http("GET", f"{server.base}/api/ServiceDiscovery{query}")
            assert status == 200, (system, q, status, body[:300])
            # Both systems must answer the same rows, or their rates are not comparable.
            expected = 1 if q == "by_name" else len([i for i in range(SERVICES) if i % 10 == 3])
            assert json.loads(body)["count"] == expected, (system, q, json.loads(body)["count"], expected)
            measured[q] = median_of([storage_cost(azurite, lambda: load(
                f"{server.base}/api/ServiceDiscovery{query}", 16)) for _ in range(RUNS)])
            measured[q]["count"] = json.loads(body)["count"]
            if system == "handler":
                args = {"type": "type-3"} | ({"name": "svc-00003"} if q == "by_name" else {})
                measured[f"{q}_direct"] = median_of([tool("direct", azurite, names, 16, **args) for _ in range(RUNS)])
            log(f"uncached {system} {q}: {measured[q]['rps']:.0f}/s, "
                f"{measured[q]['storage_bytes_down_per_call']:.0f} B from Azurite each")
        server.stop()
        azurite.stop()
        group[system] = measured
    results["uncached"] = group


def raw_get(base, path, headers=()):
    """(status, header dict, bytes on the wire) of one GET on its own connection."""
    port = urllib.parse.urlsplit(base).port
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(request)
        chunks = []
        while data := s.recv(1 << 16):
            chunks.append(data)
    raw = b"".join(chunks)
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:])}
    return int(head[0].split()[1]), fields, len(raw)


def bench_memory(results):
    azurite = Azurite()
    names = tables()
    log(f"memory: preloading {SERVICES} services (+ health rows)")
    preload(azurite, names, SERVICES)
    group = {"services": SERVICES}
    for mode, env in (("cached", {}), ("uncached", {"DISCOVERY_CACHE_TTL_MS": "0"})):
        handler = Handler(azurite, names, extra_env=env)
        handler.wait_ready()
        idle = handler.rss_mib()
        runs = [load(f"{handler.base}/api/ServiceDiscovery", 16) for _ in range(RUNS)]
        group[mode] = median_of(runs) | {"idle_rss_mib": idle, "peak_rss_mib": handler.peak_rss_mib()}
        if mode == "cached":
            wire = {}
            for label, headers in (("identity", ()), ("gzip", ("Accept-Encoding: gzip",)),
                                   ("br", ("Accept-Encoding: br",))):
                status, fields, size = raw_get(handler.base, "/api/ServiceDiscovery", headers)
                assert status == 200, (label, status)
                wire[label] = {"bytes": size, "content_encoding": fields.get("content-encoding", "")}
            group["response_bytes"] = wire
        log(f"memory {mode}: peak {group[mode]['peak_rss_mib']:.1f} MiB, idle {idle:.1f} MiB")
        handler.stop()
    group["direct"] = median_of([tool("direct", azurite, names, 16) for _ in range(RUNS)])
    results["memory"] = group
    azurite.stop()


def bench_sweep(results):
    azurite = Azurite()
    targets_process = spawn([str(TOOL), "targets"], stdout=subprocess.PIPE, text=True)
    targets = json.loads(targets_process.stdout.readline())
    names = tables()
    log(f"sweep: preloading {SERVICES} services, a quarter silent")
    preload(azurite, names, SERVICES, targets=targets, health=False)
    silent = sum(1 for i in range(SERVICES) if i % 4 == 3)
    # An open circuit's backoff of 1 ms, so that runs 2 and 3 probe every service again instead of
    # skipping the unhealthy half (which a real second sweep within 5 minutes would do).
    handler = Handler(azurite, names, extra_env={"HEALTH_CIRCUIT_BACKOFF_MS": "1"})
    handler.wait_ready()
    runs = []
    for _ in range(RUNS):
        t = time.perf_counter()
        status, _, body = http("POST", f"{handler.base}/HealthMonitor", {
            "Data": {"myTimer": {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": False}},
            "Metadata": {"sys": {"MethodName": "HealthMonitor"}}})
        elapsed = time.perf_counter() - t
        assert status == 200, (status, body[:300])
        summary = json.loads(body)["Logs"][0]
        fields = dict(part.strip().rsplit(" ", 1) for part in summary.split(":", 1)[1].split(","))
        runs.append({"seconds": elapsed, "probed": int(fields["probed"]), "healthy": int(fields["healthy"]),
                     "write_requests": int(fields["write_requests"]),
                     "skipped_deadline": int(fields["skipped_deadline"])})
        log(f"sweep: {elapsed:.2f} s, probed {fields['probed']}")
    # A silent probe costs one timeout, and at most PROBE_CONCURRENCY of them wait side by side
    # (with fewer silent targets than that, the floor is one timeout).
    floor = PROBE_TIMEOUT_S * max(1.0, silent / PROBE_CONCURRENCY)
    m = median_of(runs)
    results["sweep"] = m | {"services": SERVICES, "silent": silent, "floor_s": floor,
                            "ratio": m["seconds"] / floor, "peak_rss_mib": handler.peak_rss_mib(),
                            "concurrency": PROBE_CONCURRENCY, "timeout_s": PROBE_TIMEOUT_S}
    handler.stop()
    stop(targets_process)
    azurite.stop()


def bench_cold_start(results):
    azurite = Azurite()
    names = tables()
    preload(azurite, names, 1000)  # tables present, as on every start but the first
    runs = []
    for _ in range(max(RUNS, 5)):
        handler = Handler(azurite, names)
        ready = handler.wait_ready()
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            if http("GET", f"{handler.base}/api/ServiceDiscovery?serviceType=type-3")[0] == 200:
                break
        first = time.perf_counter() - handler.started
        runs.append({"to_ready_ms": ready * 1000, "to_first_discovery_ms": first * 1000})
        handler.stop()
    results["cold_start"] = median_of(runs)
    azurite.stop()


SCENARIOS = {"cold_start": bench_cold_start, "heartbeats": bench_heartbeats, "registration": bench_registration,
             "uncached": bench_uncached, "memory": bench_memory, "sweep": bench_sweep}
