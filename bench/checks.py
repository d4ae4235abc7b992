"""The sweep's cost per check kind (scenario `check_kinds`, when asked for): BENCH_CHECK_SERVICES
services (default 2,000) all checked one way, swept BENCH_RUNS times each, through the counting
proxy in front of Azurite: sweep seconds, and storage requests and bytes per service.

  http   GET to bench-tool's answering target (200)
  tcp    a connect to the same port
  grpc   grpc.health.v1.Health/Check to grpcio's own health server (scripts/grpc-health-server.sh,
         the pinned grpcio-health-checking that scripts/prepare.sh's `grpc` part installs), over a
         fresh HTTP/2 connection per check

All targets answer at once on 127.0.0.1, so the figures are the checker's own cost per kind (and the
storage it writes), not a network's. https with `tlsExpiryWarningDays` is left out: it needs a TLS
target serving thousands of handshakes, and its extra cost over http is the handshake and one
certificate parse.
"""

import json
import os
import subprocess
import time

from common import RUNS, ROOT, TOOL, Azurite, Handler, http, load, log, median_of, run, spawn, stop, tables

CHECK_SERVICES = int(os.environ.get("BENCH_CHECK_SERVICES", "2000"))
CONCURRENCY = 64  # registrations in flight while preparing


def sweep_once(handler, azurite):
    before = azurite.proxy.counts()
    t = time.perf_counter()
    status, _, body = http("POST", f"{handler.base}/HealthMonitor", {
        "Data": {"myTimer": {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": False}},
        "Metadata": {"sys": {"MethodName": "HealthMonitor"}}})
    elapsed = time.perf_counter() - t
    after = azurite.proxy.counts()
    assert status == 200, (status, body[:300])
    summary = json.loads(body)["Logs"][0]
    fields = dict(part.strip().rsplit(" ", 1) for part in summary.split(":", 1)[1].split(","))
    probed = int(fields["probed"])
    return {"seconds": elapsed, "probed": probed, "healthy": int(fields["healthy"]),
            "storage_requests_per_service": (after["requests"] - before["requests"]) / max(probed, 1),
            "storage_kib_up_per_service": (after.get("bytes_up", 0) - before.get("bytes_up", 0)) / 1024 / max(probed, 1)}


def bench_check_kinds(results):
    run([str(ROOT / "scripts" / "prepare.sh"), "grpc"], cwd=ROOT)  # outside any namespace, as build() is
    targets_process = spawn([str(TOOL), "targets"], stdout=subprocess.PIPE, text=True)
    targets = json.loads(targets_process.stdout.readline())
    grpc = spawn([str(ROOT / "scripts" / "grpc-health-server.sh")], cwd=ROOT, stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE, text=True)
    grpc_port = int(grpc.stdout.readline().split()[1])
    ok = targets["ok"]
    kinds = {"http": f"http://127.0.0.1:{ok}/health", "tcp": f"tcp://127.0.0.1:{ok}",
             "grpc": f"grpc://127.0.0.1:{grpc_port}"}
    measured = {}
    for kind, endpoint in kinds.items():
        azurite = Azurite(proxied=True)
        names = tables()
        handler = Handler(azurite, names)
        handler.wait_ready()
        body = json.dumps({"serviceName": f"{kind}-{{i}}", "endpoint": "tcp://127.0.0.1:9", "serviceType": "type-0",
                           "healthEndpoint": endpoint})
        first = load(f"{handler.base}/api/ServiceRegistrar", CONCURRENCY, method="POST", template=body,
                     requests=CHECK_SERVICES, seconds=300)
        assert first["statuses"].get("200") == CHECK_SERVICES, first["statuses"]
        runs = [sweep_once(handler, azurite) for _ in range(RUNS)]
        for one in runs:
            assert one["healthy"] == CHECK_SERVICES, (kind, one)
        m = median_of(runs)
        measured[kind] = m | {"services": CHECK_SERVICES, "peak_rss_mib": handler.peak_rss_mib()}
        log(f"check_kinds {kind}: {m['seconds']:.2f} s per sweep of {CHECK_SERVICES}, "
            f"{m['storage_requests_per_service']:.3f} storage requests per service")
        handler.stop()
        azurite.stop()
    results["check_kinds"] = measured
    stop(grpc)
    stop(targets_process)


def rows(results):
    """(scenario, sweep s, storage requests per service, peak RSS MiB) rows for the table."""
    return [(kind, f"{m['seconds']:.2f}", f"{m['storage_requests_per_service']:.3f}", f"{m['peak_rss_mib']:.0f}")
            for kind, m in results.get("check_kinds", {}).items()]


SCENARIOS = {"check_kinds": bench_check_kinds}
