//! `bench-tool load`: the HTTP load generator `bench/run.py` drives the handler and the recipe with.
//!
//! It replaced `oha` because the fleet figures need what oha does not give, or gives at a cost:
//! a fixed request rate shared by all workers (heartbeats at 333/s), a distinct body per request
//! (from a file, line `i % lines`, or a template whose `{i}` is the request's index, so new
//! registrations are really new), every status counted (304s between real changes), and no
//! separate tool to build (oha took minutes to compile on a clean clone; this shares the handler's
//! dependencies). Latency is measured to when a response's body has been read, so body size
//! counts; from when the request was sent, or with `--rate`, for a request that could not go out on
//! time (every worker still waiting on a slow answer), from when it was due: its wait counts too, so
//! a stall shows in the tail instead of being hidden by the requests it delayed (coordinated
//! omission). A request an idle worker slept for counts from when it is sent: the timer's own
//! lateness in waking the worker (up to about 2 ms: tokio's timer counts whole milliseconds, and a
//! 15-byte `GET /` measured from its due time took p50 1.9 ms where a sequential client saw 0.2 ms)
//! is the tool's, not the server's, and `bench-tool direct`, the store's baseline, never counted
//! it either.
//!
//! Bounded by `--requests` and `--seconds`, whichever comes first; 127.0.0.1 only.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Plan {
    url: String,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    bodies: Vec<String>,
    template: Option<String>,
    modulo: usize,
    rate: Option<f64>,
    max_requests: usize,
    deadline: Instant,
    started: Instant,
}

impl Plan {
    fn body(&self, i: usize) -> Option<String> {
        if let Some(t) = &self.template {
            return Some(t.replace("{i}", &(i % self.modulo).to_string()));
        }
        (!self.bodies.is_empty()).then(|| self.bodies[i % self.bodies.len()].clone())
    }
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    errors: usize,
    body_bytes: u64,
}

pub async fn run(flags: &HashMap<String, String>) {
    let url: String = super::flag(flags, "url", None);
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "the benchmark only talks to 127.0.0.1"
    );
    let concurrency: usize = super::flag(flags, "concurrency", Some(16));
    let seconds: f64 = super::flag(flags, "seconds", Some(3.0));
    let mut headers = reqwest::header::HeaderMap::new();
    for line in flags
        .get("header")
        .map(String::as_str)
        .unwrap_or("")
        .lines()
    {
        let (name, value) = line.split_once(':').expect("--header 'Name: value'");
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            value.trim().parse().expect("header value"),
        );
    }
    let bodies = flags
        .get("bodies")
        .map(|path| {
            std::fs::read_to_string(path)
                .expect("--bodies file")
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let started = Instant::now();
    let plan = Arc::new(Plan {
        url,
        method: flags
            .get("method")
            .map_or(reqwest::Method::GET, |m| m.parse().expect("--method")),
        headers,
        bodies,
        template: flags.get("template").cloned(),
        modulo: super::flag(flags, "modulo", Some(usize::MAX)),
        rate: flags
            .get("rate")
            .map(|r| r.parse().expect("--rate per second")),
        max_requests: super::flag(flags, "requests", Some(1_000_000)),
        deadline: started + Duration::from_secs_f64(seconds),
        started,
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (plan, client, next) = (plan.clone(), client.clone(), next.clone());
            tokio::spawn(async move { worker(&plan, &client, &next).await })
        })
        .collect();
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.expect("worker");
        all.latencies.extend(t.latencies);
        for (status, n) in t.statuses {
            *all.statuses.entry(status).or_default() += n;
        }
        all.errors += t.errors;
        all.body_bytes += t.body_bytes;
    }
    println!("{}", report(all, started.elapsed()));
}

async fn worker(plan: &Plan, client: &reqwest::Client, next: &AtomicUsize) -> Tally {
    let mut tally = Tally::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.max_requests {
            break;
        }
        let due = plan
            .rate
            .map(|rate| plan.started + Duration::from_secs_f64(i as f64 / rate));
        // Whether this worker was idle and waited for the request to fall due.
        let mut waited = false;
        if let Some(due) = due {
            if due >= plan.deadline {
                break;
            }
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
                waited = true;
            }
        }
        if Instant::now() >= plan.deadline {
            break;
        }
        let mut request = client
            .request(plan.method.clone(), &plan.url)
            .headers(plan.headers.clone());
        if let Some(body) = plan.body(i) {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        // From when it was due if it went out late (every worker was still waiting on an answer:
        // that wait counts), from when it is sent if an idle worker woke for it: the timer wakes a
        // sleeper up to a couple of milliseconds late (tokio's timer counts whole milliseconds),
        // which is this tool's lateness, not the server's.
        let t = match due {
            Some(due) if !waited => due,
            _ => Instant::now(),
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => {
                        tally.latencies.push(t.elapsed());
                        tally.body_bytes += body.len() as u64;
                        *tally.statuses.entry(status).or_default() += 1;
                    }
                    Err(_) => tally.errors += 1,
                }
            }
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

fn report(mut tally: Tally, elapsed: Duration) -> Value {
    tally.latencies.sort();
    let pct = |p: f64| -> f64 {
        if tally.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((tally.latencies.len() as f64 - 1.0) * p).round() as usize;
        tally.latencies[i].as_secs_f64() * 1000.0
    };
    let answered = tally.latencies.len();
    json!({
        "requests": answered,
        "errors": tally.errors,
        "statuses": tally.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "seconds": elapsed.as_secs_f64(),
        "rps": answered as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "body_bytes_per_response": if answered > 0 { tally.body_bytes / answered as u64 } else { 0 },
    })
}
