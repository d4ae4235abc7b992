// The recipe's own functions (tests/recipe/<Function>/index.js, unchanged) behind a tiny Node.js
// HTTP server, so `bench/run.py` can load them at the same concurrency and over the same kind of
// connection as the handler: one process, one event loop, as one Node.js worker of the Functions
// host runs them. Each request calls the function once, in-process, with a `context` and `req` as
// tests/recipe/driver.js builds them (with its shim: the recipe's `new TableClient(connection
// string, table)` becomes `TableClient.fromConnectionString`; and one more, below, so discovery
// sends the query the recipe meant), and answers `context.res` as JSON.
// Not imitated: the host's own HTTP front end and its gRPC hop to the worker (the handler's
// figures leave the host out too).
//
//   node bench/recipe_server.js <port>     (STORAGE_CONNECTION_STRING from the environment)
//   -> prints "listening <port>" once ready; serves 127.0.0.1 only; stops after an hour.

'use strict';

const http = require('http');
const Module = require('module');
const path = require('path');
const tables = require('@azure/data-tables');

// The second shim, for the recipe's *intended* query: its discovery passes `{ filter }` to
// `listEntities`, which reads `{ queryOptions: { filter } }`, so as written every discovery reads
// the whole registry (tests/integration/recipe.rs shows it). Moved where the SDK looks, the
// filter reaches the service as the recipe meant; the request is otherwise the SDK's own.
function intended(client) {
    const listEntities = client.listEntities.bind(client);
    client.listEntities = (options = {}) =>
        options.filter && !options.queryOptions
            ? listEntities({ ...options, queryOptions: { filter: options.filter } })
            : listEntities(options);
    return client;
}

const RealTableClient = tables.TableClient;
const TableClient = new Proxy(RealTableClient, {
    construct(target, args, newTarget) {
        const [first, tableName] = args;
        if (typeof first === 'string' && !/^https?:\/\//i.test(first)) {
            return intended(RealTableClient.fromConnectionString(first, tableName, {
                allowInsecureConnection: true,
            }));
        }
        return Reflect.construct(target, args, newTarget);
    },
});
const shimmed = { ...tables, TableClient };
const load = Module._load;
Module._load = function (request, parent, isMain) {
    return request === '@azure/data-tables' ? shimmed : load.call(this, request, parent, isMain);
};

const recipe = path.join(__dirname, '..', 'tests', 'recipe');
const functions = {};
for (const name of ['ServiceRegistrar', 'ServiceDiscovery']) {
    functions[name] = require(path.join(recipe, name, 'index.js'));
}

function context() {
    const log = () => {};
    return { log: Object.assign(log, { error: log, warn: log, info: log, verbose: log }), res: undefined };
}

const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    const fn = functions[url.pathname.replace(/^\/api\//, '')];
    let raw = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => (raw += chunk));
    request.on('end', async () => {
        if (!fn) {
            response.writeHead(404, { 'content-type': 'application/json' });
            response.end('{"error":"no such function"}');
            return;
        }
        let body = raw;
        try {
            body = raw ? JSON.parse(raw) : undefined;
        } catch (e) {
            body = raw;
        }
        const req = {
            method: request.method, url: url.href, headers: request.headers,
            query: Object.fromEntries(url.searchParams), params: {}, rawBody: raw, body,
        };
        const ctx = context();
        try {
            await fn(ctx, req);
        } catch (e) {
            ctx.res = { status: 500, body: { error: String(e) } };
        }
        const res = ctx.res || { status: 200, body: '' };
        response.writeHead(res.status || 200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(res.body));
    });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2]), '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
});
setTimeout(() => process.exit(0), 3600 * 1000).unref();
