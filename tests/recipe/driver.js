// Runs one of the recipe's functions (./<Function>/index.js) once, as the Azure Functions Node.js
// runtime would, so tests/integration/recipe.rs can check that the recipe and the handler read
// each other's rows in the same tables.
//
//   node driver.js <Function>   < {"req": {...}} or {"timer": {...}} on stdin
//   -> one JSON line on stdout: {"res": <context.res or null>, "logs": [...], "error": <or null>}
//
// What is imitated of the Functions Node.js runtime (programming model v3, `function.json` plus
// `module.exports = async function (context, trigger)`), and only what the recipe uses:
// - the function is loaded with require() and called once with a `context` and its trigger
//   input, and the invocation ends when the returned promise settles; a rejection is a failed
//   invocation (the host answers 500), reported here as `error`;
// - `context.log(...)` and `context.log.error/warn/info/verbose(...)`, formatted like
//   console.log (util.format), collected into `logs` with their level instead of going to the
//   host's log;
// - `context.res`, the HTTP output binding: whatever the function leaves there is the answer
//   (`status` defaults to 200 as in the runtime; `body` as given, which the runtime would send as
//   JSON);
// - the HTTP trigger's `req`: `method`, `url`, `originalUrl`, `headers` (lower-case names),
//   `query` and `params` (objects of strings), `rawBody` (the text) and `body` (parsed when the
//   Content-Type is JSON, the text otherwise);
// - the timer trigger's `myTimer` object, passed through as given;
// - `context.invocationId`, `context.executionContext.functionName` and `context.bindings`,
//   for completeness (the recipe does not read them).
// Not imitated: the host process and its gRPC channel, function keys, other bindings, retries.
//
// Settings come from the environment, as app settings do in Functions: the recipe reads
// STORAGE_CONNECTION_STRING itself.
//
// The one shim: the recipe calls `new TableClient(connectionString, table)`, but that constructor
// takes a table service URL and throws "Invalid URL" on a connection string. When a recipe file
// requires '@azure/data-tables', it gets the package with a TableClient whose constructor, given a
// string that is not a URL, returns `TableClient.fromConnectionString(...)` instead, the call the
// recipe meant. `allowInsecureConnection` is set there because Azurite speaks plain http.

'use strict';

const Module = require('module');
const path = require('path');
const util = require('util');
const crypto = require('crypto');
const tables = require('@azure/data-tables');

const RealTableClient = tables.TableClient;
const TableClient = new Proxy(RealTableClient, {
    construct(target, args, newTarget) {
        const [first, tableName] = args;
        if (typeof first === 'string' && !/^https?:\/\//i.test(first)) {
            return RealTableClient.fromConnectionString(first, tableName, {
                allowInsecureConnection: true,
            });
        }
        return Reflect.construct(target, args, newTarget);
    },
});
const shimmedTables = { ...tables, TableClient };
const load = Module._load;
Module._load = function (request, parent, isMain) {
    if (request === '@azure/data-tables') {
        return shimmedTables;
    }
    return load.call(this, request, parent, isMain);
};

function readStdin() {
    return new Promise((resolve, reject) => {
        let text = '';
        process.stdin.setEncoding('utf8');
        process.stdin.on('data', (chunk) => (text += chunk));
        process.stdin.on('end', () => resolve(text));
        process.stdin.on('error', reject);
    });
}

function makeContext(functionName, bindings, logs) {
    const log = (level) => (...args) => logs.push({ level, message: util.format(...args) });
    const context = {
        invocationId: crypto.randomUUID(),
        executionContext: { functionName },
        bindings,
        log: Object.assign(log('info'), {
            error: log('error'),
            warn: log('warn'),
            info: log('info'),
            verbose: log('verbose'),
        }),
        res: undefined,
    };
    return context;
}

function makeRequest(input) {
    const headers = {};
    for (const [name, value] of Object.entries(input.headers || {})) {
        headers[name.toLowerCase()] = value;
    }
    const rawBody = input.body === undefined ? undefined : String(input.body);
    let body = rawBody;
    if (rawBody !== undefined && (headers['content-type'] || '').includes('json')) {
        try {
            body = JSON.parse(rawBody);
        } catch (e) {
            body = rawBody;
        }
    }
    const url = input.url || 'http://127.0.0.1/api/';
    return {
        method: input.method || 'GET',
        url,
        originalUrl: url,
        headers,
        query: input.query || {},
        params: input.params || {},
        rawBody,
        body,
    };
}

async function main() {
    const functionName = process.argv[2];
    const input = JSON.parse(await readStdin());
    const fn = require(path.join(__dirname, functionName, 'index.js'));
    const logs = [];
    let trigger;
    let bindings;
    if (input.req) {
        trigger = makeRequest(input.req);
        bindings = { req: trigger };
    } else {
        trigger = input.timer || { isPastDue: false };
        bindings = { myTimer: trigger };
    }
    const context = makeContext(functionName, bindings, logs);
    let error = null;
    try {
        await fn(context, trigger);
    } catch (e) {
        error = String((e && e.stack) || e);
    }
    let res = null;
    if (context.res !== undefined) {
        res = { status: context.res.status || 200, body: context.res.body };
    }
    process.stdout.write(JSON.stringify({ res, logs, error }) + '\n');
}

main().catch((e) => {
    process.stderr.write(String((e && e.stack) || e) + '\n');
    process.exit(1);
});
