#!/usr/bin/env python3
"""The benchmark harness behind `make bench` (never part of CI's pass/fail).

It builds a release `handler` and `bench-tool`, installs the `oha` load generator into bench/.tools with
cargo (once), starts its own Azurite on a free port, and measures, each as the median of RUNS runs:

  registration    distinct services at concurrency 16 and 64 (oha, one body per line of a file)
  discovery       1,000 and 10,000 services: by serviceType, by serviceType+serviceName,
                  healthyOnly=true, the whole registry; plus a baseline issuing the same storage reads
                  straight to Azurite with the same Tables crate (bench-tool direct)
  envelope        discovery by serviceType through the host's invocation envelope
  sweep           one HealthMonitor invocation over N local targets (1/2 answer 200, 1/4 503, 1/4 silent)
  cold start      spawn to first `GET /` answer, and to the first successful discovery
  memory          peak RSS (VmHWM) of handler after the discovery load

Only 127.0.0.1 is ever contacted. Every load is bounded in count and time. Results: a table on stdout
and bench/results/<UTC timestamp>.json with the machine, versions, command lines and every figure.
Environment: BENCH_RUNS (default 3), BENCH_SECONDS per load run (default 3), BENCH_SWEEP_SIZES
(default 200,1000,10000), BENCH_DISCOVERY_SIZES (default 1000,10000).
"""

import atexit
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "bench" / ".tools"
OHA = TOOLS / "bin" / "oha"
OHA_VERSION = "1.16.0"
HANDLER = ROOT / "target" / "release" / "handler"
TOOL = ROOT / "target" / "release" / "examples" / "bench-tool"
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
SWEEP_SIZES = [int(n) for n in os.environ.get("BENCH_SWEEP_SIZES", "200,1000,10000").split(",") if n]
DISCOVERY_SIZES = [int(n) for n in os.environ.get("BENCH_DISCOVERY_SIZES", "1000,10000").split(",") if n]
SKIP = set(os.environ.get("BENCH_SKIP", "").split(","))  # e.g. BENCH_SKIP=registration,cold_start
# Sweeps run with the default probe timeout (5 s), concurrency (256) and jitter; the only change is an
# open circuit's backoff, so that runs 2 and 3 probe every service again instead of skipping the
# unhealthy half (which is what a real second sweep within 5 minutes would do).
SWEEP_ENV = {"HEALTH_CIRCUIT_BACKOFF_MS": "1"}
MAX_REQUESTS = 200_000  # per load run of bench-tool, on top of the time bound
BODY_LINES = 200_000
CHILDREN = []  # every process we start, stopped at exit whatever happens

COMMANDS = []  # every command line run, for the results file
STARTED = time.time()


def log(message):
    print(f"[{time.time() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    COMMANDS.append(" ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kwargs)


def output(cmd, **kwargs):
    return run(cmd, capture_output=True, text=True, **kwargs).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer within {seconds}s")


def http(method, url, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def build():
    log("building release handler and bench-tool")
    run(["cargo", "build", "--release", "--locked", "--bin", "handler", "--example", "bench-tool"], cwd=ROOT)
    run(["bash", "-c", "source scripts/lib.sh && ensure_azurite"], cwd=ROOT)
    if not OHA.exists():
        log(f"installing oha {OHA_VERSION} into bench/.tools (once)")
        run(["cargo", "install", "--locked", "oha", "--version", OHA_VERSION, "--root", str(TOOLS)])


class Azurite:
    def __init__(self):
        self.port = free_port()
        cmd = [str(AZURITE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port),
               "--inMemoryPersistence", "--skipApiVersionCheck", "--silent"]
        COMMANDS.append(" ".join(cmd))
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(self.process)
        wait_http(f"http://127.0.0.1:{self.port}/")
        self.endpoint = f"http://127.0.0.1:{self.port}/devstoreaccount1"
        self.connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
                           f"TableEndpoint={self.endpoint};")

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


class Handler:
    """The release binary, as the Functions host starts it (custom handler) or standalone."""

    def __init__(self, azurite, tables, mode="custom-handler", extra_env=None):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("STORAGE_CONNECTION_STRING", "AZURE_STORAGETABLE_CONNECTIONSTRING", "AzureWebJobsStorage")}
        env.update({"STORAGE_CONNECTION_STRING": azurite.connection, "REGISTRY_TABLE": tables[0],
                    "HEALTH_TABLE": tables[1], "RUST_LOG": "warn", "HEALTH_ALLOW_LOOPBACK": "true"})
        if mode == "custom-handler":
            env.update({"FUNCTIONS_CUSTOMHANDLER_PORT": str(self.port), "FUNCTIONS_HTTPWORKER_PORT": str(self.port),
                        "FUNCTIONS_WORKER_RUNTIME": "custom", "FUNCTIONS_APP_ROOT_PATH": str(ROOT)})
        else:
            env.update({"DISCOVERY_BIND": f"127.0.0.1:{self.port}"})
        env.update(extra_env or {})
        self.started = time.perf_counter()
        self.process = subprocess.Popen([str(HANDLER)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        CHILDREN.append(self.process)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self):
        """Polls GET / every 25 ms as the host does; returns seconds from spawn to the first answer."""
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/1.1"):
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.025)
        raise RuntimeError("handler did not become ready in 30 s")

    def peak_rss_mib(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


def tables():
    suffix = uuid.uuid4().hex[:12]
    return (f"reg{suffix}", f"hlt{suffix}")


def oha(url, concurrency, method="GET", body_file=None, body_lines=None):
    # Bounded by time (-z); oha refuses -n together with -z, and cannot reach MAX_REQUESTS in that time here.
    cmd = [str(OHA), "--no-tui", "--output-format", "json", "-z", f"{SECONDS}s",
           "-c", str(concurrency), "-m", method, "-H", "Content-Type: application/json",
           "-H", "User-Agent: Azure-Functions-Host/4.1037.0.0", "-H", "x-ms-invocation-id: bench"]
    if body_file:
        cmd += ["-D", str(body_file)]
    if body_lines:
        cmd += ["-Z", str(body_lines)]
    result = json.loads(output(cmd + [url]))
    codes = result.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    return {
        "requests": sum(codes.values()),
        "non_2xx": sum(codes.values()) - ok,
        "errors": sum(result.get("errorDistribution", {}).values()),
        "rps": result["summary"]["requestsPerSec"],
        "p50_ms": result["latencyPercentiles"]["p50"] * 1000,
        "p99_ms": result["latencyPercentiles"]["p99"] * 1000,
    }


def direct(azurite, names, concurrency, service_type=None, service_name=None):
    cmd = [str(TOOL), "direct", "--endpoint", azurite.endpoint, "--table", names[0], "--health-table", names[1],
           "--concurrency", str(concurrency), "--requests", str(MAX_REQUESTS), "--seconds", str(SECONDS)]
    if service_type:
        cmd += ["--type", service_type]
    if service_name:
        cmd += ["--name", service_name]
    return json.loads(output(cmd))


def median_of(runs):
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {"runs": runs}


def preload(azurite, names, services, targets=None, health=True):
    cmd = [str(TOOL), "preload", "--endpoint", azurite.endpoint, "--table", names[0], "--services", str(services),
           "--types", "10"]
    if health:
        cmd += ["--health-table", names[1], "--healthy-fraction", "0.5"]
    if targets:
        cmd += ["--targets", f"{targets['ok']},{targets['fail']},{targets['silent']}"]
    return json.loads(output(cmd))


def bench_registration(azurite, results):
    names = tables()
    handler = Handler(azurite, names, mode="standalone", extra_env={"HEALTH_MONITOR_SCHEDULE": "0 0 0 1 1 *"})
    handler.wait_ready()
    for concurrency in (16, 64):
        runs = []
        for r in range(RUNS):
            lines = Path(tempfile.mktemp(prefix="bench-bodies-"))
            with lines.open("w") as f:
                # oha picks a random line per request: 200,000 lines keep repeats (re-registrations) to a
                # few percent of a run.
                for i in range(BODY_LINES):
                    f.write(json.dumps({"serviceName": f"c{concurrency}-r{r}-svc-{i:06}",
                                        "endpoint": f"http://127.0.0.1:9/{i}", "serviceType": f"type-{i % 8}",
                                        "tags": ["bench"], "metadata": {"i": i}}) + "\n")
            runs.append(oha(f"{handler.base}/api/ServiceRegistrar", concurrency, method="POST", body_lines=lines))
            lines.unlink()
        results["registration"][f"c{concurrency}"] = median_of(runs)
        log(f"registration c={concurrency}: {results['registration'][f'c{concurrency}']['rps']:.0f} req/s")
    handler.stop()


def bench_discovery(azurite, results):
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
            handler_runs = [oha(f"{handler.base}/api/ServiceDiscovery{query}", 16) for _ in range(RUNS)]
            direct_runs = [direct(azurite, names, 16, **direct_args) for _ in range(RUNS)]
            h, d = median_of(handler_runs), median_of(direct_runs)
            size_results[name] = {"handler": h, "direct": d, "overhead_p50": h["p50_ms"] / d["p50_ms"]}
            log(f"discovery {size} {name}: handler p50 {h['p50_ms']:.2f} ms, direct p50 {d['p50_ms']:.2f} ms")
        envelope = Path(tempfile.mktemp(prefix="bench-envelope-"))
        envelope.write_text(json.dumps({"Data": {"req": {
            "Url": "https://bench.example/api/ServiceDiscovery?serviceType=type-3", "Method": "GET",
            "Query": {"serviceType": "type-3"}, "Headers": {"Accept": ["application/json"]}, "Params": {}}},
            "Metadata": {"sys": {"MethodName": "ServiceDiscovery"}}}))
        size_results["by_type_envelope"] = {"handler": median_of(
            [oha(f"{handler.base}/ServiceDiscovery", 16, method="POST", body_file=envelope) for _ in range(RUNS)])}
        envelope.unlink()
        results["discovery"][str(size)] = size_results
        results["peak_rss_mib"][str(size)] = handler.peak_rss_mib()
        handler.stop()


def bench_sweeps(azurite, results):
    targets_process = subprocess.Popen([str(TOOL), "targets"], stdout=subprocess.PIPE, text=True)
    CHILDREN.append(targets_process)
    targets = json.loads(targets_process.stdout.readline())
    try:
        for size in SWEEP_SIZES:
            names = tables()
            results["preload"][f"sweep-{size}"] = preload(azurite, names, size, targets=targets, health=False)
            handler = Handler(azurite, names, extra_env=SWEEP_ENV)
            handler.wait_ready()
            runs = []
            for _ in range(RUNS):
                t = time.perf_counter()
                status, body = http("POST", f"{handler.base}/HealthMonitor", {
                    "Data": {"myTimer": {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": False}},
                    "Metadata": {"sys": {"MethodName": "HealthMonitor"}}})
                elapsed = time.perf_counter() - t
                summary = json.loads(body)["Logs"][0]
                assert status == 200, (status, body)
                fields = dict(part.strip().rsplit(" ", 1) for part in summary.split(":", 1)[1].split(","))
                runs.append({"seconds": elapsed, "probed": int(fields["probed"]), "healthy": int(fields["healthy"]),
                             "unhealthy": int(fields["unhealthy"]), "write_requests": int(fields["write_requests"])})
            results["sweep"][str(size)] = median_of(runs)
            log(f"sweep {size}: {results['sweep'][str(size)]['seconds']:.2f} s")
            handler.stop()
    finally:
        targets_process.terminate()


def bench_cold_start(azurite, results):
    names = tables()
    runs = []
    for _ in range(max(RUNS, 5)):
        handler = Handler(azurite, names)
        ready = handler.wait_ready()
        while True:
            status, _ = http("GET", f"{handler.base}/api/ServiceDiscovery?serviceType=x")
            if status == 200:
                break
            if time.perf_counter() - handler.started > 30:
                raise RuntimeError("no successful discovery within 30 s")
        first = time.perf_counter() - handler.started
        runs.append({"to_ready_ms": ready * 1000, "to_first_discovery_ms": first * 1000})
        handler.stop()
    results["cold_start"] = median_of(runs)


def machine():
    mem = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    version = lambda cmd: output(cmd).strip().splitlines()[0]
    return {
        "cores": os.cpu_count(), "memory": mem.split(":", 1)[1].strip(), "cpu": cpu,
        "kernel": platform.release(), "rustc": version(["rustc", "--version"]),
        "node": version(["node", "--version"]),
        "azurite": json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())["version"],
        "oha": version([str(OHA), "--version"]),
    }


def table(results):
    rows = [("scenario", "throughput /s", "p50 ms", "p99 ms", "note")]
    for c, r in results["registration"].items():
        rows.append((f"register distinct, {c}", f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", ""))
    for size, queries in results["discovery"].items():
        for q, r in queries.items():
            h = r["handler"]
            note = f"direct p50 {r['direct']['p50_ms']:.2f} ms, x{r['overhead_p50']:.2f}" if "direct" in r else "envelope"
            rows.append((f"discover {size} {q}", f"{h['rps']:.0f}", f"{h['p50_ms']:.2f}", f"{h['p99_ms']:.2f}", note))
    for size, r in results["sweep"].items():
        rows.append((f"sweep {size} targets", "", f"{r['seconds'] * 1000:.0f}", "",
                     f"{r['healthy']:.0f} healthy, {r['unhealthy']:.0f} unhealthy, {r['write_requests']:.0f} writes"
                     f" (vs {r['probed']:.0f} one-row writes)"))
    if "cold_start" in results:
        c = results["cold_start"]
        rows.append(("cold start to GET /", "", f"{c['to_ready_ms']:.1f}", "", f"first discovery {c['to_first_discovery_ms']:.1f} ms"))
    for size, rss in results["peak_rss_mib"].items():
        rows.append((f"peak RSS, discovery {size}", "", "", "", f"{rss:.1f} MiB"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


@atexit.register
def stop_children():
    for child in CHILDREN:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    build()
    results = {"registration": {}, "discovery": {}, "sweep": {}, "preload": {}, "peak_rss_mib": {}}
    azurite = Azurite()
    try:
        for name, scenario in (("cold_start", bench_cold_start), ("registration", bench_registration),
                               ("discovery", bench_discovery), ("sweeps", bench_sweeps)):
            if name not in SKIP:
                log(name)
                scenario(azurite, results)
    finally:
        azurite.stop()
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
        "settings": {"runs": RUNS, "seconds_per_load_run": SECONDS, "max_requests_per_run": MAX_REQUESTS,
                     "discovery_concurrency": 16, "sweep_env": SWEEP_ENV},
        "results": results, "commands": COMMANDS, "total_seconds": time.time() - STARTED,
    }
    out = ROOT / "bench" / "results" / f"{report['when'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=2))
    m = report["machine"]
    print(f"machine: {m['cores']} cores, {m['memory']}, {m['cpu']}; {m['rustc']}; azurite {m['azurite']}; {m['oha']}")
    print(f"medians of {RUNS} runs; loads {SECONDS:g} s each at concurrency 16 unless named; sweep env {SWEEP_ENV}")
    print(table(results))
    print(f"\nresults: {out.relative_to(ROOT)}  (total {report['total_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
