//! `bench-tool`: the parts of the benchmark that no off-the-shelf tool does, driven by `bench/run.py`.
//!
//! - `preload`: write N registry rows (and optionally health rows, and services with many
//!   instances) straight into Azurite with entity-group transactions, so a 10,000-service registry
//!   takes seconds, not minutes.
//! - `direct`: the baseline. Issue the same storage reads the handler makes for a discovery query
//!   (registry and health, side by side), with the same Tables crate, at a given concurrency, for a
//!   bounded time and count, and report latency percentiles (with `--rate`, at a fixed rate).
//!   handler time / direct time is the handler's own overhead.
//! - `targets`: health-check targets on 127.0.0.1: one port answering 200, one 503, one that accepts
//!   and never answers. Prints the ports as JSON, then serves until killed.
//!
//! - `load` (load.rs): the HTTP load generator for the handler and the recipe.
//! - `direct-merge`, `direct-upsert` (writes.rs): the store's single-write baselines.
//! - `proxy` (proxy.rs): a counting proxy in front of Azurite (storage requests and bytes).
//!
//! Every loop is bounded in count and time and sends traffic to 127.0.0.1 only.

mod load;
mod proxy;
mod writes;

use azure_data_tables::clients::TableServiceClientBuilder;
use azure_data_tables::prelude::*;
use azure_storage::{CloudLocation, StorageCredentials};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn args() -> (String, HashMap<String, String>) {
    let mut raw = std::env::args().skip(1);
    let command = raw.next().unwrap_or_default();
    let mut flags = HashMap::new();
    while let Some(flag) = raw.next() {
        let name = flag.trim_start_matches("--").to_owned();
        let value = raw.next().unwrap_or_default();
        // A repeated flag (`--header`) keeps every value, one per line.
        flags
            .entry(name)
            .and_modify(|v: &mut String| {
                v.push('\n');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    (command, flags)
}

fn flag<T: std::str::FromStr>(
    flags: &HashMap<String, String>,
    name: &str,
    default: Option<T>,
) -> T {
    match flags.get(name) {
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("--{name} {v:?} is not valid")),
        None => default.unwrap_or_else(|| panic!("--{name} is required")),
    }
}

fn service(flags: &HashMap<String, String>) -> TableServiceClient {
    let endpoint: String = flag(flags, "endpoint", None);
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "the benchmark only talks to 127.0.0.1"
    );
    TableServiceClientBuilder::with_location(
        CloudLocation::Custom {
            account: ACCOUNT.to_owned(),
            uri: endpoint,
        },
        StorageCredentials::access_key(ACCOUNT, KEY.to_owned()),
    )
    // The same pooled transport as the handler's store (the crate's default opens a connection per
    // request), so the baseline measures the store, not connection set-up.
    .transport(azure_core::TransportOptions::new(Arc::new(
        reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
    )))
    .build()
}

#[tokio::main]
async fn main() {
    // Thousands of probe connections (targets) or load connections at once: the hard limit, not
    // a 1,024 soft one, should be what binds.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (command, flags) = args();
    match command.as_str() {
        "preload" => preload(&flags).await,
        "direct" => direct(&flags).await,
        "targets" => targets(&flags).await,
        "load" => load::run(&flags).await,
        "direct-merge" => writes::merge(&flags).await,
        "direct-upsert" => writes::upsert(&flags).await,
        "proxy" => proxy::run(&flags).await,
        other => {
            eprintln!("usage: bench-tool preload|direct|targets|load|direct-merge|direct-upsert|proxy --flag value ... (got {other:?})");
            std::process::exit(2);
        }
    }
}

/// One row to write: its RowKey, the registry entity, and the health entity if any.
struct Row {
    key: String,
    registry: Value,
    health: Option<Value>,
}

/// `--services N --types K --table T [--health-table H --healthy-fraction F [--health-only true]]
/// [--instanced SPEC]`: rows `svc-<i>` of type `type-<i % K>`; when a health table is named, a
/// fraction of them get a healthy row. `--health-only true` writes the health rows alone (in the
/// same transactions of 100, 8 at once): over rows already there, what the store itself takes to
/// rewrite one verdict per service, as a sweep does. `--instanced type-1/fleet-0=1000,type-2/trio=3`
/// adds services with instances, as a registration with `instanceId` writes them: RowKey
/// `<name>:<id>`, property `instanceId`, the recipe's properties; with a health table every
/// instance gets a healthy row with a response time and its EWMA (1 to 20 ms), so healthyOnly and
/// the resolver have candidates.
async fn preload(flags: &HashMap<String, String>) {
    let started = Instant::now();
    let service = service(flags);
    let services: usize = flag(flags, "services", None);
    let types: usize = flag(flags, "types", Some(10));
    // `--targets ok,fail,silent` (ports from `targets`): half the services probe the 200 port, a
    // quarter the 503 port, a quarter the silent one. Without it, endpoints point at a closed port.
    let ports: Vec<u16> = flags
        .get("targets")
        .map(|t| t.split(',').map(|p| p.parse().expect("a port")).collect())
        .unwrap_or_else(|| vec![9, 9, 9]);
    assert_eq!(
        ports.len(),
        3,
        "--targets takes three ports: ok,fail,silent"
    );
    let endpoint_of = move |i: usize| {
        let port = match i % 4 {
            0 | 1 => ports[0],
            2 => ports[1],
            _ => ports[2],
        };
        format!("http://127.0.0.1:{port}/health/{i}")
    };
    let instanced = instanced(flags);
    let registry = service.table_client(flag::<String>(flags, "table", None));
    let _ = registry.create().await;
    let health_table: Option<String> = flags.get("health-table").cloned();
    let healthy_fraction: f64 = flag(flags, "healthy-fraction", Some(0.5));
    let health = health_table.map(|t| service.table_client(t));
    if let Some(h) = &health {
        let _ = h.create().await;
    }
    let with_health = health.is_some();
    let health_only: bool = flag(flags, "health-only", Some(false));
    assert!(
        with_health || !health_only,
        "--health-only needs --health-table"
    );
    let now = "2026-01-01T00:00:00.000Z";
    let mut partitions: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for i in 0..services {
        let pk = format!("type-{}", i % types);
        let name = format!("svc-{i:05}");
        let healthy = (i as f64 / services as f64) < healthy_fraction;
        let registry = json!({
            "PartitionKey": pk, "RowKey": name, "serviceName": name,
            "endpoint": endpoint_of(i), "healthEndpoint": endpoint_of(i),
            "serviceType": pk, "version": "1.0.0", "tags": "[\"bench\",\"preloaded\"]",
            "metadata": "{\"region\":\"local\",\"index\":1}", "registeredAt": now, "lastHeartbeat": now,
        });
        let health = with_health.then(|| {
            json!({
                "PartitionKey": pk, "RowKey": name, "serviceName": name,
                "status": if healthy { "healthy" } else { "unhealthy" },
                "lastChecked": now, "responseTime": 3, "errorMessage": if healthy { "" } else { "HTTP 503" },
            })
        });
        partitions.entry(pk).or_default().push(Row {
            key: name,
            registry,
            health,
        });
    }
    let mut instance_rows = 0;
    for (pk, name, count) in &instanced {
        for j in 0..*count {
            let id = format!("i-{j:04}");
            let key = format!("{name}:{id}");
            let endpoint = format!("http://127.0.0.1:9/{name}/{id}");
            let registry = json!({
                "PartitionKey": pk, "RowKey": key, "serviceName": name,
                "endpoint": endpoint, "healthEndpoint": endpoint,
                "serviceType": pk, "version": "1.0.0", "tags": "[\"bench\",\"instances\"]",
                "metadata": "{\"region\":\"local\",\"index\":1}", "registeredAt": now, "lastHeartbeat": now,
                "instanceId": id,
            });
            let response_time = 1 + j % 20;
            let health = with_health.then(|| {
                json!({
                    "PartitionKey": pk, "RowKey": key, "serviceName": name,
                    "status": "healthy", "lastChecked": now, "responseTime": response_time,
                    "errorMessage": "", "consecutiveFailures": 0, "consecutiveSuccesses": 1,
                    "circuit": "closed", "lastTransition": now,
                    // A fraction, so the service stores a Double as the sweep's write does.
                    "responseTimeEwma": response_time as f64 + 0.5,
                })
            });
            partitions.entry(pk.clone()).or_default().push(Row {
                key,
                registry,
                health,
            });
            instance_rows += 1;
        }
    }
    // Entity-group transactions: at most 100 operations, all in one partition.
    let mut jobs = Vec::new();
    for (pk, rows) in partitions {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            jobs.push((pk.clone(), rows.by_ref().take(100).collect::<Vec<Row>>()));
        }
    }
    let requests = jobs.len();
    futures::stream::iter(jobs)
        .map(|(pk, rows)| {
            let registry = registry.clone();
            let health = health.clone();
            async move {
                let entities = rows
                    .iter()
                    .map(|row| (row.key.clone(), row.registry.clone()));
                if !health_only {
                    upsert_batch(&registry, &pk, entities, rows.len()).await;
                }
                if let Some(health) = health {
                    let entities = rows.iter().map(|row| {
                        let entity = row.health.clone().expect("a health row for every row");
                        (row.key.clone(), entity)
                    });
                    upsert_batch(&health, &pk, entities, rows.len()).await;
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    println!(
        "{}",
        json!({
            "services": services + instanced.len(),
            "single_row_services": services,
            "instanced_services": instanced.len(),
            "instance_rows": instance_rows,
            "registry_rows": services + instance_rows,
            "types": types,
            "batches": requests,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
}

/// `--instanced type-1/fleet-0=1000,type-2/trio=3`: (type, name, instance count) of each service.
fn instanced(flags: &HashMap<String, String>) -> Vec<(String, String, usize)> {
    flags
        .get("instanced")
        .map(|spec| {
            spec.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let (key, count) = s.split_once('=').expect("--instanced type/name=count");
                    let (t, name) = key.split_once('/').expect("--instanced type/name=count");
                    let count = count.parse().expect("an instance count");
                    (t.to_owned(), name.to_owned(), count)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A transaction answers 202 even when operations inside it failed: check each one.
fn check(statuses: Vec<azure_core::StatusCode>, expected: usize) {
    assert_eq!(statuses.len(), expected, "batch answered a different count");
    for status in statuses {
        assert!(status.is_success(), "batch operation failed: {status}");
    }
}

/// Latency summary of one load run.
fn summary(mut latencies: Vec<Duration>, elapsed: Duration, errors: usize) -> Value {
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    json!({
        "requests": latencies.len(),
        "errors": errors,
        "seconds": elapsed.as_secs_f64(),
        "rps": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    })
}

/// Runs `op` with `concurrency` workers until `max_requests` are done or `seconds` have passed.
async fn drive<F, Fut>(concurrency: usize, max_requests: usize, seconds: f64, op: F) -> Value
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    drive_at(concurrency, max_requests, seconds, None, op).await
}

/// `drive`, with request `i` due no earlier than `i / rate` seconds after the start when a rate is
/// given (an open loop: a slow answer does not hold back when the next request is due, up to
/// `concurrency` at once), so a latency is measured at a fixed load rather than at saturation.
async fn drive_at<F, Fut>(
    concurrency: usize,
    max_requests: usize,
    seconds: f64,
    rate: Option<f64>,
    op: F,
) -> Value
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= max_requests || Instant::now() >= deadline {
                        break;
                    }
                    if let Some(rate) = rate {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let t = Instant::now();
                    if op(i).await {
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.expect("worker");
        all.extend(l);
        errors += e;
    }
    summary(all, started.elapsed(), errors)
}

/// `--table T --health-table H [--type X] [--name Y] --concurrency C --requests R --seconds S`
async fn direct(flags: &HashMap<String, String>) {
    let service = service(flags);
    let registry = service.table_client(flag::<String>(flags, "table", None));
    let health = service.table_client(flag::<String>(flags, "health-table", None));
    let service_type = flags.get("type").cloned();
    let service_name = flags.get("name").cloned();
    // `--name-range 1`: the name as discovery reads it (a RowKey range from `name` to `name;`, the
    // service's row and its instances' rows), not as one point read.
    let name_range = flags.contains_key("name-range");
    let concurrency: usize = flag(flags, "concurrency", Some(16));
    let requests: usize = flag(flags, "requests", Some(100_000));
    let seconds: f64 = flag(flags, "seconds", Some(5.0));
    let rate = flags
        .get("rate")
        .map(|r| r.parse::<f64>().expect("--rate: requests per second"));
    let result = drive_at(concurrency, requests, seconds, rate, move |_| {
        let (registry, health) = (registry.clone(), health.clone());
        let (service_type, service_name) = (service_type.clone(), service_name.clone());
        async move {
            let read = |table: TableClient| {
                let (service_type, service_name) = (service_type.clone(), service_name.clone());
                async move {
                    if let (Some(t), Some(n), false) = (&service_type, &service_name, name_range) {
                        return table
                            .partition_key_client(t.clone())
                            .entity_client(n.clone())
                            .get::<Map<String, Value>>()
                            .await
                            // "No such row" is an answer too (a health row the sweep has not
                            // written yet): the store's time is measured all the same.
                            .map_or_else(
                                |e| {
                                    matches!(
                                        e.kind(),
                                        azure_core::error::ErrorKind::HttpResponse { status, .. }
                                            if *status == azure_core::StatusCode::NotFound
                                    )
                                },
                                |_| true,
                            );
                    }
                    let mut query = table.query();
                    match (&service_type, &service_name) {
                        (Some(t), Some(n)) => {
                            query = query.filter(format!(
                                "PartitionKey eq '{t}' and RowKey ge '{n}' and RowKey lt '{n};'"
                            ));
                        }
                        (Some(t), None) => {
                            query = query.filter(format!("PartitionKey eq '{t}'"));
                        }
                        _ => {}
                    }
                    let mut pages = query.into_stream::<Map<String, Value>>();
                    let mut ok = true;
                    while let Some(page) = pages.next().await {
                        ok &= page.is_ok();
                    }
                    ok
                }
            };
            let (a, b) = tokio::join!(read(registry), read(health));
            a && b
        }
    })
    .await;
    println!("{result}");
}

/// Three listeners: `ok` answers 200, `fail` answers 503, `silent` accepts and never answers.
async fn targets(_flags: &HashMap<String, String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    let bind = || TcpListener::bind("127.0.0.1:0");
    let (ok, fail, silent) = (
        bind().await.unwrap(),
        bind().await.unwrap(),
        bind().await.unwrap(),
    );
    println!(
        "{}",
        json!({
            "ok": ok.local_addr().unwrap().port(),
            "fail": fail.local_addr().unwrap().port(),
            "silent": silent.local_addr().unwrap().port(),
        })
    );
    fn answer(listener: TcpListener, response: &'static [u8]) {
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // One request per connection is all a probe sends; answer once the headers end.
                    let mut seen = Vec::new();
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let _ = socket.write_all(response).await;
                            seen.clear();
                        }
                    }
                });
            }
        });
    }
    answer(ok, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    answer(
        fail,
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nfail",
    );
    // Silent: read and never answer; a connection is let go only when the prober closes it, so
    // what is held is what the prober holds open.
    tokio::spawn(async move {
        loop {
            if let Ok((mut socket, _)) = silent.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        }
    });
    // Bounded: stop by ourselves after an hour even if the harness never kills us.
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// One entity-group transaction of upserts in partition `pk`, every operation checked.
async fn upsert_batch(
    table: &TableClient,
    pk: &str,
    entities: impl Iterator<Item = (String, serde_json::Value)>,
    expected: usize,
) {
    let mut tx = table.partition_key_client(pk.to_owned()).transaction();
    for (key, entity) in entities {
        tx = tx.insert_or_replace(key, entity).expect("serializable row");
    }
    let response = tx.await.expect("preload batch");
    check(
        response
            .operation_responses
            .iter()
            .map(|op| op.status_code)
            .collect(),
        expected,
    );
}
