"""Drives py-consul (pinned in scripts/consul-clients-requirements.txt) against the registry's
Consul-compatible API for tests/integration/consul_clients.rs: the library's own calls, not ours.

Usage: client.py <base url, http://127.0.0.1:PORT> [token]. Reads one JSON command a line on stdin,
`{"op": ..., "args": {...}}`, runs it with the library, and prints one JSON line: `{"result": ...}`
(plus `"index"` for reads, as the library returns it, and `"elapsed_ms"`), or `{"error": <the
library's exception class>, "message": ...}`. Run it through scripts/consul-client.sh, which picks
the pinned venv.
"""

import json
import sys
import time
import urllib.parse

import consul


def check_of(spec):
    if spec is None:
        return None
    if "ttl" in spec:
        return consul.Check.ttl(spec["ttl"])
    if "http" in spec:
        return consul.Check.http(spec["http"], spec.get("interval", "10s"), timeout=spec.get("timeout"))
    raise ValueError(f"unknown check {spec}")


def run(c, op, a):
    if op == "self":
        return {"result": c.agent.self()}
    if op == "register":
        ok = c.agent.service.register(
            a["name"],
            service_id=a.get("id"),
            address=a.get("address"),
            port=a.get("port"),
            tags=a.get("tags"),
            meta=a.get("meta"),
            check=check_of(a.get("check")),
            token=a.get("token"),
        )
        return {"result": ok}
    if op == "pass":
        return {"result": c.agent.check.ttl_pass(a["check_id"], notes=a.get("note"), token=a.get("token"))}
    if op == "deregister":
        return {"result": c.agent.service.deregister(a["id"], token=a.get("token"))}
    if op == "health":
        kwargs = {"passing": a.get("passing"), "token": a.get("token")}
        if a.get("tag") is not None:
            kwargs["tag"] = a["tag"]
        if a.get("index") is not None:
            kwargs["index"] = a["index"]
            kwargs["wait"] = a.get("wait")
        index, nodes = c.health.service(a["service"], **kwargs)
        return {"index": index, "result": nodes}
    if op == "services":
        kwargs = {}
        if a.get("index") is not None:
            kwargs["index"] = a["index"]
            kwargs["wait"] = a.get("wait")
        index, services = c.catalog.services(**kwargs)
        return {"index": index, "result": services}
    if op == "leader":
        return {"result": c.status.leader()}
    raise ValueError(f"unknown op {op}")


def main():
    base = urllib.parse.urlsplit(sys.argv[1])
    token = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    c = consul.Consul(host=base.hostname, port=base.port, scheme=base.scheme, token=token)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        started = time.monotonic()
        try:
            answer = run(c, command["op"], command.get("args", {}))
        except consul.ConsulException as e:
            answer = {"error": type(e).__name__, "message": str(e)}
        except Exception as e:  # a transport failure (refused, timed out): reported, not fatal
            answer = {"error": type(e).__name__, "message": str(e)}
        answer["elapsed_ms"] = int((time.monotonic() - started) * 1000)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
