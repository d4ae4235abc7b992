"""The discovery and instances scenarios, kept for comparison and run only when asked
(`BENCH_SCENARIOS=discovery,instances`): each discovery query against bench-tool direct at 1,000 and
10,000 services, and warm against uncached discovery and resolution of services with 1,000
instances, with If-None-Match.
"""

import json
import os
import socket
import tempfile
import urllib.parse
from pathlib import Path

from common import RUNS, Azurite, Handler, http, load, log, median_of, preload, tables, tool

DISCOVERY_SIZES = [int(n) for n in os.environ.get("BENCH_DISCOVERY_SIZES", "1000,10000").split(",") if n]

# The instances group: INSTANCE_TOTAL services in 10 types, of which these have instances (type,
# name, count); the rest are single recipe-style rows. Every instance has a healthy health row.
INSTANCE_TOTAL = 10_000
INSTANCE_FLEETS = [(f"type-{t}", f"fleet-{t}", 1000) for t in (1, 3, 5, 7, 9)]
INSTANCE_SMALL = ("type-2", "trio", 3)
# Their targets: warm discovery by serviceName and warm resolve answer with p99 under 10 ms and
# at least 10x the uncached throughput; a 304 is at least 5x cheaper than the full 200 (judged on
# both throughput and p50 at concurrency 16, where the handler is saturated).
INSTANCE_TARGETS = {"warm_p99_ms_below": 10.0, "warm_over_uncached_rps_at_least": 10.0,
                    "not_modified_cheaper_at_least": 5.0}


def bench_discovery(results):
    azurite = Azurite()
    results.setdefault("preload", {})
    results["discovery"], results["peak_rss_mib"] = {}, {}
    for size in DISCOVERY_SIZES:
        names = tables()
        log(f"preloading {size} services (+ health rows)")
        results["preload"][str(size)] = preload(azurite, names, size)
        handler = Handler(azurite, names)
        handler.wait_ready()
        queries = {
            "by_type": ("?serviceType=type-3", {"service_type": "type-3"}),
            "by_type_and_name": ("?serviceType=type-3&serviceName=svc-00003", {"service_type": "type-3", "service_name": "svc-00003"}),
            "healthy_only": ("?healthyOnly=true", {}),
            "whole_registry": ("", {}),
        }
        size_results = {}
        for name, (query, direct_args) in queries.items():
            handler_runs = [load(f"{handler.base}/api/ServiceDiscovery{query}", 16) for _ in range(RUNS)]
            direct_runs = [tool("direct", azurite, names, 16, **{k.replace('service_', ''): v for k, v in direct_args.items()})
                           for _ in range(RUNS)]
            h, d = median_of(handler_runs), median_of(direct_runs)
            size_results[name] = {"handler": h, "direct": d, "overhead_p50": h["p50_ms"] / d["p50_ms"]}
            log(f"discovery {size} {name}: handler p50 {h['p50_ms']:.2f} ms, direct p50 {d['p50_ms']:.2f} ms")
        envelope = Path(tempfile.mktemp(prefix="bench-envelope-"))
        envelope.write_text(json.dumps({"Data": {"req": {
            "Url": "https://bench.example/api/ServiceDiscovery?serviceType=type-3", "Method": "GET",
            "Query": {"serviceType": "type-3"}, "Headers": {"Accept": ["application/json"]}, "Params": {}}},
            "Metadata": {"sys": {"MethodName": "ServiceDiscovery"}}}))
        size_results["by_type_envelope"] = {"handler": median_of(
            [load(f"{handler.base}/ServiceDiscovery", 16, method="POST", bodies=envelope) for _ in range(RUNS)])}
        envelope.unlink()
        results["discovery"][str(size)] = size_results
        results["peak_rss_mib"][str(size)] = handler.peak_rss_mib()
        handler.stop()


def get(url, headers=None):
    """GET on a fresh connection: (status, headers, body, bytes on the wire); 304s do not raise."""
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname == "127.0.0.1", url
    request = (f"GET {parsed.path}?{parsed.query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", parsed.port), timeout=120) as s:
        s.sendall(request)
        chunks = []
        while data := s.recv(1 << 16):
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        decoded, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            size = int(size.split(b";")[0], 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2:]
        body = decoded
    return int(lines[0].split()[1]), fields, body, len(raw)
    azurite.stop()


def bench_instances(results):
    azurite = Azurite()
    results.setdefault("preload", {})
    names = tables()
    instanced = INSTANCE_FLEETS + [INSTANCE_SMALL]
    singles = INSTANCE_TOTAL - len(instanced)
    log(f"preloading {INSTANCE_TOTAL} services: {singles} single rows, "
        + ", ".join(f"{name} x{count}" for _, name, count in instanced) + " (+ health rows)")
    results["preload"]["instances"] = preload(azurite, names, singles, instanced=instanced)
    # The same tables behind two handlers: the default read cache, and none. Each run measures both,
    # one after the other, so drift on a shared machine hits both alike.
    warm = Handler(azurite, names, unset=("DISCOVERY_CACHE_TTL_MS",))
    uncached = Handler(azurite, names, extra_env={"DISCOVERY_CACHE_TTL_MS": "0"})
    warm.wait_ready()
    uncached.wait_ready()
    (small_type, small_name, small_count), (big_type, big_name, big_count) = INSTANCE_SMALL, INSTANCE_FLEETS[1]
    small = f"?serviceType={small_type}&serviceName={small_name}"
    big = f"?serviceType={big_type}&serviceName={big_name}"
    # Check the answers before timing them (and warm the cache).
    etags = {}
    for label, handler in (("warm", warm), ("uncached", uncached)):
        for query, count in ((small, small_count), (big, big_count)):
            status, headers, body, _ = get(f"{handler.base}/api/ServiceDiscovery{query}")
            assert status == 200 and json.loads(body)["count"] == count, (label, query, status, body[:300])
            etags[(label, query)] = headers["etag"]
            status, _, body, _ = get(f"{handler.base}/api/ServiceResolver{query}")
            answer = json.loads(body)
            assert status == 200 and answer["candidates"] == count, (label, query, status, body[:300])
            assert answer["instance"]["serviceName"] in query and answer["instance"]["instanceId"], answer
    etag = etags[("warm", big)]
    assert etag == etags[("uncached", big)], ("the two handlers disagree on the ETag", etags)
    not_modified = {"If-None-Match": etag}
    full_status, _, full_body, full_wire = get(f"{warm.base}/api/ServiceDiscovery{big}")
    nm_status, nm_headers, nm_body, nm_wire = get(f"{warm.base}/api/ServiceDiscovery{big}", not_modified)
    assert (full_status, nm_status, nm_headers.get("etag"), nm_body) == (200, 304, etag, b""), (nm_status, nm_headers)
    group = {"setup": {
        "services": INSTANCE_TOTAL, "single_row_services": singles,
        "instanced": [{"serviceType": t, "serviceName": n, "instances": c} for t, n, c in instanced],
        "small": {"serviceType": small_type, "serviceName": small_name, "instances": small_count},
        "large": {"serviceType": big_type, "serviceName": big_name, "instances": big_count},
        "warm_env": "DISCOVERY_CACHE_TTL_MS unset (default 2000)", "uncached_env": "DISCOVERY_CACHE_TTL_MS=0",
        "etag": etag, "targets": INSTANCE_TARGETS,
    }}

    def alternate(variants):
        """variants: name -> (handler, path, headers, expected status); RUNS runs of each, interleaved.

        Each load run follows one untimed request, so a warm run starts with a filled cache as a busy
        handler's would, not with the entry that lapsed while the other variant ran (with 1,000
        instances those first 16 misses, queued behind the uncached run's storage backlog, would be
        the p99 by themselves). Refills when the TTL lapses during a run are measured."""
        runs = {name: [] for name in variants}
        for _ in range(RUNS):
            for name, (handler, path, headers, expect) in variants.items():
                status, _, _, _ = get(f"{handler.base}{path}", headers)
                assert str(status).startswith(expect), (name, path, status)
                runs[name].append(load(f"{handler.base}{path}", 16, expect=expect,
                                      headers=[f"{k}: {v}" for k, v in headers.items()]))
        return {name: median_of(r) for name, r in runs.items()}

    for endpoint, function in (("discover", "ServiceDiscovery"), ("resolve", "ServiceResolver")):
        for size, query in (("small", small), ("large", big)):
            path = f"/api/{function}{query}"
            m = alternate({"warm": (warm, path, {}, "2"), "uncached": (uncached, path, {}, "2")})
            ratio = m["warm"]["rps"] / m["uncached"]["rps"]
            m |= {"rps_ratio_warm_over_uncached": ratio, "target_met":
                  m["warm"]["p99_ms"] < INSTANCE_TARGETS["warm_p99_ms_below"]
                  and ratio >= INSTANCE_TARGETS["warm_over_uncached_rps_at_least"]}
            group[f"{endpoint}_{size}"] = m
            log(f"instances {endpoint} {size}: warm {m['warm']['rps']:.0f}/s p99 {m['warm']['p99_ms']:.2f} ms, "
                f"uncached {m['uncached']['rps']:.0f}/s p99 {m['uncached']['p99_ms']:.2f} ms, x{ratio:.1f}")

    path = f"/api/ServiceDiscovery{big}"
    for label, handler in (("warm", warm), ("uncached", uncached)):
        m = alternate({"304": (handler, path, not_modified, "304"), "200": (handler, path, {}, "200")})
        rps_ratio = m["304"]["rps"] / m["200"]["rps"]
        p50_ratio = m["200"]["p50_ms"] / m["304"]["p50_ms"]
        least = INSTANCE_TARGETS["not_modified_cheaper_at_least"]
        m |= {"rps_ratio_304_over_200": rps_ratio, "p50_ratio_200_over_304": p50_ratio,
              "body_bytes_200": len(full_body), "body_bytes_304": len(nm_body),
              "wire_bytes_200": full_wire, "wire_bytes_304": nm_wire,
              "target_met": rps_ratio >= least and p50_ratio >= least}
        group[f"not_modified_large_{label}"] = m
        log(f"instances 304 vs 200 ({label}): {m['304']['rps']:.0f}/s vs {m['200']['rps']:.0f}/s, x{rps_ratio:.1f}")
    group["peak_rss_mib"] = {"warm": warm.peak_rss_mib(), "uncached": uncached.peak_rss_mib()}
    results["instances"] = group
    warm.stop()
    uncached.stop()
    azurite.stop()


def rows(results):
    """Table rows (scenario, throughput, p50, p99, note) for what ran."""
    rows = []
    for size, queries in results.get("discovery", {}).items():
        for q, r in queries.items():
            h = r["handler"]
            note = f"direct p50 {r['direct']['p50_ms']:.2f} ms, x{r['overhead_p50']:.2f}" if "direct" in r else "envelope"
            rows.append((f"discover {size} {q}", f"{h['rps']:.0f}", f"{h['p50_ms']:.2f}", f"{h['p99_ms']:.2f}", note))
    if results.get("instances"):
        g, t = results["instances"], INSTANCE_TARGETS
        p = results["preload"]["instances"]
        rows.append(("instances: preload", "", "", "",
                     f"{p['services']} services ({p['instanced_services']} with instances: "
                     + ", ".join(f"{i['serviceName']} x{i['instances']}" for i in g["setup"]["instanced"])
                     + f"), {p['registry_rows']} registry + health rows, {p['batches']} batches, {p['seconds']:.1f} s"))

        def flag(m):
            bad = m["unexpected_status"] + m["errors"]
            return f"; {bad:.0f} unexpected statuses or errors!" if bad else ""

        sizes = {"small": f"{g['setup']['small']['instances']}-instance", "large": f"{g['setup']['large']['instances']}-instance"}
        for key, what in (("discover", "discover by type+name"), ("resolve", "resolve")):
            for size, label in sizes.items():
                m = g[f"{key}_{size}"]
                w, u = m["warm"], m["uncached"]
                verdict = "met" if m["target_met"] else "NOT met"
                rows.append((f"{what}, {label}, warm cache", f"{w['rps']:.0f}", f"{w['p50_ms']:.2f}", f"{w['p99_ms']:.2f}",
                             f"x{m['rps_ratio_warm_over_uncached']:.1f} uncached throughput; target p99 < "
                             f"{t['warm_p99_ms_below']:g} ms and >= {t['warm_over_uncached_rps_at_least']:g}x: {verdict}"
                             + flag(w)))
                rows.append((f"{what}, {label}, uncached", f"{u['rps']:.0f}", f"{u['p50_ms']:.2f}", f"{u['p99_ms']:.2f}",
                             "DISCOVERY_CACHE_TTL_MS=0" + flag(u)))
        for label in ("warm", "uncached"):
            m = g[f"not_modified_large_{label}"]
            nm, full = m["304"], m["200"]
            verdict = "met" if m["target_met"] else "NOT met"
            rows.append((f"discover {sizes['large']}, If-None-Match 304, {label}", f"{nm['rps']:.0f}", f"{nm['p50_ms']:.2f}",
                         f"{nm['p99_ms']:.2f}",
                         f"vs 200: x{m['rps_ratio_304_over_200']:.1f} throughput, p50 /{m['p50_ratio_200_over_304']:.1f}; "
                         f"body {m['body_bytes_304']} B, {m['wire_bytes_304']} B on the wire; target >= "
                         f"{t['not_modified_cheaper_at_least']:g}x cheaper: {verdict}" + flag(nm)))
            rows.append((f"discover {sizes['large']}, no If-None-Match 200, {label}", f"{full['rps']:.0f}",
                         f"{full['p50_ms']:.2f}", f"{full['p99_ms']:.2f}",
                         f"body {m['body_bytes_200']} B, {m['wire_bytes_200']} B on the wire" + flag(full)))
        rss = g["peak_rss_mib"]
        rows.append(("peak RSS, instances", "", "", "", f"warm {rss['warm']:.1f} MiB, uncached {rss['uncached']:.1f} MiB"))
    for size, rss in results.get("peak_rss_mib", {}).items():
        rows.append((f"peak RSS, discovery {size}", "", "", "", f"{rss:.1f} MiB"))
    return rows + dependency_rows(results)


DEPENDENCY_SIZE = int(os.environ.get("BENCH_DEPENDENCY_SIZE", "10000"))


def bench_dependencies(results):
    """What declared dependencies cost discovery: one service that declares three (so its
    discovery judges the whole registry of DEPENDENCY_SIZE services) beside one that declares none,
    each discovered by type and name, warm and uncached (DISCOVERY_CACHE_TTL_MS=0)."""
    azurite = Azurite()
    names = tables()
    log(f"preloading {DEPENDENCY_SIZE} services (+ health rows) for the dependencies scenario")
    preload(azurite, names, DEPENDENCY_SIZE)
    out = {"services": DEPENDENCY_SIZE}
    for label, env in (("warm", {}), ("uncached", {"DISCOVERY_CACHE_TTL_MS": "0"})):
        handler = Handler(azurite, names, extra_env=env)
        handler.wait_ready()
        for name, depends_on in (("plain", None), ("dependent", ["type-1:svc-00001", "type-2:svc-00002",
                                                                  {"service": "type-3:svc-00003", "required": False}])):
            body = {"serviceType": "bench", "serviceName": name, "endpoint": "http://127.0.0.1:9/"}
            if depends_on:
                body["dependsOn"] = depends_on
            status, _, answer = http("POST", f"{handler.base}/api/ServiceRegistrar", body)
            assert status == 200, answer
        for name in ("plain", "dependent"):
            url = f"{handler.base}/api/ServiceDiscovery?serviceType=bench&serviceName={name}"
            m = median_of([load(url, 16) for _ in range(RUNS)])
            out[f"{name}_{label}"] = m
            log(f"dependencies {label} {name}: {m['rps']:.0f}/s, p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms")
        out[f"peak_rss_mib_{label}"] = handler.peak_rss_mib()
        handler.stop()
    results["dependencies"] = out


def dependency_rows(results):
    d = results.get("dependencies")
    if not d:
        return []
    rows = []
    for label in ("warm", "uncached"):
        for name, what in (("plain", "no dependsOn"), ("dependent", "3 dependsOn, whole registry judged")):
            m = d[f"{name}_{label}"]
            rows.append((f"discover by type+name, {what}, {label}", f"{m['rps']:.0f}", f"{m['p50_ms']:.2f}",
                         f"{m['p99_ms']:.2f}", f"{d['services']} services"))
    return rows


SCENARIOS = {"discovery": bench_discovery, "instances": bench_instances, "dependencies": bench_dependencies}
