// Drives node-consul (`consul` 2.0.1, pinned in package-lock.json) against the registry's
// Consul-compatible API for tests/integration/consul_clients.rs: the library's own calls, not ours.
//
// Usage: node client.js <base url, http://127.0.0.1:PORT> [token]. Reads one JSON command a line on
// stdin, `{"op": ..., "args": {...}}`, runs it with the library, and prints one JSON line:
// `{"result": ...}` (plus `"index"` for reads: the `X-Consul-Index` the library hands back with
// `ctx.includeResponse`, and `"elapsed_ms"`), or `{"error": <the error's name>, "status": <its HTTP
// status>, "message": ...}`. Run it through scripts/consul-client.sh.
"use strict";

const { EventEmitter } = require("node:events");
const readline = require("node:readline");
const Consul = require("consul");

const base = new URL(process.argv[2]);
const token = process.argv[3] || undefined;
const consul = new Consul({
  host: base.hostname,
  port: Number(base.port),
  secure: base.protocol === "https:",
  defaults: token ? { token } : undefined,
});

function checkOf(spec) {
  if (!spec) return undefined;
  if (spec.ttl) return { ttl: spec.ttl };
  if (spec.http) return { http: spec.http, interval: spec.interval || "10s", timeout: spec.timeout };
  throw new Error(`unknown check ${JSON.stringify(spec)}`);
}

// A read with the response: [X-Consul-Index, body]. papi keeps a `ctx` only when it is an event
// emitter (as the library's own Watch is), and then hands back [response, body].
async function read(method, opts) {
  const ctx = new EventEmitter();
  ctx.includeResponse = true;
  const [res, body] = await method({ ...opts, ctx });
  return { index: res.headers["x-consul-index"], result: body };
}

async function run(op, a) {
  const withToken = (opts) => (a.token ? { ...opts, token: a.token } : opts);
  switch (op) {
    case "self":
      return { result: await consul.agent.self(withToken({})) };
    case "register":
      await consul.agent.service.register(
        withToken({
          name: a.name,
          id: a.id,
          address: a.address,
          port: a.port,
          tags: a.tags,
          meta: a.meta,
          check: checkOf(a.check),
        }),
      );
      return { result: true };
    case "pass":
      await consul.agent.check.pass(withToken({ id: a.check_id, note: a.note }));
      return { result: true };
    case "deregister":
      await consul.agent.service.deregister(withToken({ id: a.id }));
      return { result: true };
    case "health": {
      const opts = withToken({ service: a.service, passing: a.passing || undefined });
      if (a.tag !== undefined && a.tag !== null) opts.tag = a.tag;
      if (a.index !== undefined && a.index !== null) {
        opts.index = a.index;
        opts.wait = a.wait;
      }
      return await read((o) => consul.health.service(o), opts);
    }
    case "services": {
      const opts = withToken({});
      if (a.index !== undefined && a.index !== null) {
        opts.index = a.index;
        opts.wait = a.wait;
      }
      return await read((o) => consul.catalog.service.list(o), opts);
    }
    case "leader":
      return { result: await consul.status.leader(withToken({})) };
    default:
      throw new Error(`unknown op ${op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    const command = JSON.parse(line);
    const started = Date.now();
    let answer;
    try {
      answer = await run(command.op, command.args || {});
    } catch (e) {
      let status;
      try {
        status = e.statusCode; // papi's error reads it from the response, when there was one
      } catch (_) {
        status = undefined;
      }
      answer = { error: e.name, status, message: e.message };
    }
    answer.elapsed_ms = Date.now() - started;
    process.stdout.write(JSON.stringify(answer) + "\n");
  });
});
lines.on("close", () => {
  queue.then(() => consul.destroy());
});
