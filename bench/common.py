"""What every benchmark scenario shares: building, Azurite, the handler, the recipe's server, the
counting proxy, and bench-tool's load generator and store baselines.

Only 127.0.0.1 is ever contacted; every process started here is stopped at exit (`CHILDREN`), and
every load is bounded in count and time.
"""

import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_BUILD: `glibc` (default) measures `cargo build --release`, the build `make run` and the
# tests use; `musl` the static binary `make package` ships (infra/package.sh builds it, with musl's
# own allocator), so the shipped build's memory and speed are measured too.
BUILD = os.environ.get("BENCH_BUILD", "glibc")
if BUILD not in ("glibc", "musl"):
    sys.exit(f"BENCH_BUILD={BUILD!r}: choose glibc or musl")
HANDLER = ROOT / "target" / ("x86_64-unknown-linux-musl/release" if BUILD == "musl" else "release") / "handler"
# For profiling: a handler binary to run instead (e.g. a copy linked with its symbols), and a
# command to start it under. The wrapper must `exec` the handler in its own process (as
# bench/heaptrack-exec.sh and `valgrind` do), so that the pid the benchmark reads VmHWM from and
# stops is the handler's. Figures taken under a wrapper measure the wrapper too: profiling only.
HANDLER = Path(os.environ.get("BENCH_HANDLER", HANDLER))
HANDLER_WRAPPER = shlex.split(os.environ.get("BENCH_HANDLER_WRAPPER", ""))
TOOL = ROOT / "target" / "release" / "examples" / "bench-tool"
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"
RECIPE_SERVER = ROOT / "bench" / "recipe_server.js"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
MAX_REQUESTS = 200_000  # per load run, on top of the time bound
CHILDREN = []  # every process we start, stopped at exit whatever happens
COMMANDS = []  # every command line run, for the results file
STARTED = time.time()
LOAD_AT_START = os.getloadavg()  # the machine's load before the benchmark added its own
# The timer never fires during a benchmark unless a scenario triggers a sweep itself.
NO_TIMER = {"HEALTH_MONITOR_SCHEDULE": "0 0 0 1 1 *"}


def log(message):
    print(f"[{time.time() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    COMMANDS.append(" ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kwargs)


def output(cmd, **kwargs):
    return run(cmd, capture_output=True, text=True, **kwargs).stdout


def spawn(cmd, **kwargs):
    COMMANDS.append(" ".join(str(c) for c in cmd))
    process = subprocess.Popen(cmd, **kwargs)
    CHILDREN.append(process)
    return process


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def stop_children():
    for child in CHILDREN:
        stop(child)


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


def http(method, url, body=None, headers=None, timeout=600):
    """(status, headers, body bytes) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def build():
    log(f"building release handler ({BUILD}) and bench-tool")
    run(["cargo", "build", "--release", "--locked", "--bin", "handler", "--example", "bench-tool"], cwd=ROOT)
    if BUILD == "musl":
        run(["infra/package.sh"], cwd=ROOT, stdout=subprocess.DEVNULL)
    run(["bash", "-c", "source scripts/lib.sh && ensure_azurite"], cwd=ROOT)


class Azurite:
    """A fresh, in-memory Azurite on a free port; with `proxied`, reached through bench-tool's
    counting proxy (`endpoint` and `connection` then name the proxy)."""

    def __init__(self, proxied=False):
        self.port = free_port()
        self.process = spawn([str(AZURITE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port),
                              "--inMemoryPersistence", "--skipApiVersionCheck", "--silent", "--disableTelemetry"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{self.port}/")
        self.proxy = Proxy(self.port) if proxied else None
        port = self.proxy.port if proxied else self.port
        self.endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
        self.connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
                           f"TableEndpoint={self.endpoint};")

    def stop(self):
        if self.proxy:
            stop(self.proxy.process)
        stop(self.process)


class Proxy:
    def __init__(self, upstream):
        self.process = spawn([str(TOOL), "proxy", "--upstream", str(upstream)], stdout=subprocess.PIPE, text=True)
        ports = json.loads(self.process.stdout.readline())
        self.port, self.control = ports["port"], ports["control"]

    def counts(self):
        with socket.create_connection(("127.0.0.1", self.control), timeout=5) as s:
            return json.loads(s.makefile().readline())


def cpu_ms(pid):
    """User + system CPU time a process has used so far, in milliseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def machine_busy_ms():
    """CPU time the whole machine has been busy so far, every core together, in milliseconds."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) * 1000 / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """How many of the machine's cores the machine and some processes kept busy over a stretch:
    start it, run the load, then `cores()` (CPU time used since the start / wall time). `pids` maps
    a name to a pid or a list of pids (summed)."""

    def __init__(self, pids):
        self.pids = {name: pid if isinstance(pid, list) else [pid] for name, pid in pids.items()}
        self.started = time.perf_counter()
        self.before = self._now()

    def _now(self):
        return {"machine": machine_busy_ms()} | {name: sum(cpu_ms(p) for p in pids) for name, pids in self.pids.items()}

    def used_ms(self):
        """CPU milliseconds used since the start, by name."""
        now = self._now()
        return {k: now[k] - self.before[k] for k in now}

    def cores(self):
        wall = time.perf_counter() - self.started
        return {k: v / 1000 / wall for k, v in self.used_ms().items()}


def status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


class Handler:
    """The release binary, as the Functions host starts it (custom handler) or standalone."""

    def __init__(self, azurite, tables, mode="custom-handler", extra_env=None, unset=()):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("STORAGE_CONNECTION_STRING", "AZURE_STORAGETABLE_CONNECTIONSTRING", "AzureWebJobsStorage",
                            "RUST_LOG", *unset)}
        env.update({"STORAGE_CONNECTION_STRING": azurite.connection, "REGISTRY_TABLE": tables[0],
                    "HEALTH_TABLE": tables[1], "RUST_LOG": "warn", "HEALTH_ALLOW_LOOPBACK": "true"})
        if mode == "custom-handler":
            env.update({"FUNCTIONS_CUSTOMHANDLER_PORT": str(self.port), "FUNCTIONS_HTTPWORKER_PORT": str(self.port),
                        "FUNCTIONS_WORKER_RUNTIME": "custom", "FUNCTIONS_APP_ROOT_PATH": str(ROOT)})
        else:
            env.update({"DISCOVERY_BIND": f"127.0.0.1:{self.port}", **NO_TIMER})
        self.metrics_port = None
        if mode == "standalone-metrics":
            self.metrics_port = free_port()
            env["METRICS_BIND"] = f"127.0.0.1:{self.metrics_port}"
        env.update(extra_env or {})
        self.started = time.perf_counter()
        # BENCH_HANDLER_LOGS=<dir>: each handler's log lines to <dir>/handler-<port>.log (at the
        # level RUST_LOG gives in extra_env, `warn` otherwise), to see why a run went wrong.
        log_dir = os.environ.get("BENCH_HANDLER_LOGS")
        out = open(Path(log_dir) / f"handler-{self.port}.log", "w") if log_dir else subprocess.DEVNULL
        self.process = spawn([*HANDLER_WRAPPER, str(HANDLER)], cwd=ROOT, env=env, stdout=out, stderr=out)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self):
        """Seconds from spawn to the first `GET /` 200. Polls without a sleep between refused
        connects (each costs well under a millisecond on loopback), so the figure is not rounded up
        to a polling interval as the host's 25 ms readiness poll would."""
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/1.1 200"):
                        return time.perf_counter() - self.started
            except OSError:
                pass
        raise RuntimeError("handler did not become ready in 30 s")

    def peak_rss_mib(self):
        return status_kib(self.process.pid, "VmHWM") / 1024

    def rss_mib(self):
        return status_kib(self.process.pid, "VmRSS") / 1024

    def cache_counts(self):
        """(hits, misses) from /metrics."""
        _, _, body = http("GET", f"http://127.0.0.1:{self.metrics_port}/metrics")
        values = {}
        for line in body.decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, value = line.rsplit(" ", 1)
            values[name.split("{")[0]] = values.get(name.split("{")[0], 0) + float(value)
        pick = lambda stem: sum(v for k, v in values.items() if stem in k)
        return pick("cache_hits"), pick("cache_misses")

    def stop(self):
        stop(self.process)


class RecipeServer:
    """The recipe's functions behind bench/recipe_server.js (one Node.js process)."""

    def __init__(self, azurite):
        self.port = free_port()
        env = dict(os.environ, STORAGE_CONNECTION_STRING=azurite.connection)
        self.process = spawn(["node", str(RECIPE_SERVER), str(self.port)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().startswith("listening"), "recipe server did not start"
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop(self.process)


def tables():
    suffix = uuid.uuid4().hex[:12]
    return (f"reg{suffix}", f"hlt{suffix}")


def load(url, concurrency, method="GET", headers=(), template=None, modulo=None, bodies=None, rate=None,
         seconds=None, expect="2", requests=MAX_REQUESTS):
    """One load run of bench-tool load; `expect`: the status prefix a response must have."""
    cmd = [str(TOOL), "load", "--url", url, "--concurrency", str(concurrency), "--method", method,
           "--seconds", str(seconds or SECONDS), "--requests", str(requests)]
    for header in headers:
        cmd += ["--header", header]
    if template:
        cmd += ["--template", template]
    if modulo:
        cmd += ["--modulo", str(modulo)]
    if bodies:
        cmd += ["--bodies", str(bodies)]
    if rate:
        cmd += ["--rate", str(rate)]
    result = json.loads(output(cmd))
    codes = result["statuses"]
    total = sum(codes.values())
    result["non_2xx"] = total - sum(v for k, v in codes.items() if k.startswith("2"))
    result["unexpected_status"] = total - sum(v for k, v in codes.items() if k.startswith(expect))
    return result


def tool(command, azurite, names, concurrency, **flags):
    """A bench-tool store baseline (`direct`, `direct-merge`, `direct-upsert`) against `names`."""
    cmd = [str(TOOL), command, "--endpoint", azurite.endpoint, "--table", names[0],
           "--concurrency", str(concurrency), "--requests", str(MAX_REQUESTS), "--seconds", str(SECONDS)]
    if command == "direct":
        cmd += ["--health-table", names[1]]
    for k, v in flags.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return json.loads(output(cmd))


def preload(azurite, names, services, targets=None, health=True, instanced=None, types=10, health_only=False):
    """bench-tool preload (see bench/tool.rs); `health_only` writes the health rows alone."""
    cmd = [str(TOOL), "preload", "--endpoint", azurite.endpoint, "--table", names[0], "--services", str(services),
           "--types", str(types)] + (["--health-only", "true"] if health_only else [])
    if instanced:
        cmd += ["--instanced", instanced_spec(instanced)]
    if health:
        cmd += ["--health-table", names[1], "--healthy-fraction", "0.5"]
    if targets:
        cmd += ["--targets", f"{targets['ok']},{targets['fail']},{targets['silent']}"]
    return json.loads(output(cmd))


def instanced_spec(instanced):
    return ",".join(f"{t}/{name}={count}" for t, name, count in instanced)


def median_of(runs):
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float)) and not isinstance(runs[0][k], bool)]
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {"runs": runs}


def temp_lines(lines):
    path = Path(tempfile.mktemp(prefix="bench-bodies-"))
    path.write_text("\n".join(lines) + "\n")
    return path


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
        "data_tables_js": json.loads((ROOT / "node_modules" / "@azure" / "data-tables" / "package.json")
                                     .read_text())["version"],
        "load_at_start": LOAD_AT_START, "load_at_end": os.getloadavg(),
    }
