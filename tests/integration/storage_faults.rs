//! Storage outage: 503 + Retry-After while Azurite is down, timer envelope 500, the process
//! keeps serving and recovers by itself when storage returns.

use crate::harness::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_outage_and_recovery() {
    let az = Azurite::private();
    let cfg = HandlerConfig::with_storage(Mode::CustomHandler, &az.connection_string())
        .env("HEALTH_PROBE_TIMEOUT_MS", "1000");
    let mut h = Handler::spawn(cfg).await;
    let target = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "before", "serviceType": "api", "endpoint": target.url}))
        .await;
    let v = h.discover_ok("").await;
    assert_eq!(v["count"], 1);

    az.stop();

    // Forwarded registration and discovery: 503 quickly, not hanging.
    let limit = Duration::from_secs(10);
    let t0 = Instant::now();
    let r = h
        .register(&json!({"serviceName": "during", "serviceType": "api", "endpoint": target.url}))
        .await;
    let took = t0.elapsed();
    r.assert_503("registration");
    assert!(took < limit, "registration with storage down took {took:?}");

    let t0 = Instant::now();
    let r = h.discover("").await;
    let took = t0.elapsed();
    r.assert_503("discovery");
    assert!(took < limit, "discovery with storage down took {took:?}");

    let t0 = Instant::now();
    let r = h.discover("serviceType=api&healthyOnly=true").await;
    r.assert_503("filtered discovery");
    assert!(t0.elapsed() < limit);

    // Validation still comes first (no storage needed for a 400).
    let r = h
        .register(&json!({"serviceName": "bad/name", "endpoint": "https://x.example.com"}))
        .await;
    r.assert_error(400, Some("serviceName"));

    // Envelope: HTTP 200, Outputs.res.statusCode 503 with Retry-After in headers.
    let e = ReqEnvelope::new("ServiceDiscovery", "GET").build();
    let t0 = Instant::now();
    let res = h.invoke("ServiceDiscovery", &e).await.envelope_res();
    assert!(t0.elapsed() < limit);
    assert_eq!(res.status, 503, "{}", res.raw);
    assert_error_body(&res.json(), None);
    assert!(
        res.header("Retry-After").is_some(),
        "a 503 in Outputs.res must carry Retry-After in headers: {}",
        res.raw
    );
    let e = ReqEnvelope::new("ServiceRegistrar", "POST")
        .body(&json!({"serviceName": "env", "endpoint": "https://e.example.com"}).to_string())
        .build();
    let res = h.invoke("ServiceRegistrar", &e).await.envelope_res();
    assert_eq!(res.status, 503, "{}", res.raw);
    assert!(res.header("Retry-After").is_some(), "{}", res.raw);

    // Timer: HTTP 500, same envelope shape, the error in Logs.
    let t0 = Instant::now();
    let r = h.sweep().await;
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "sweep with storage down took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        r.status, 500,
        "a sweep that cannot read storage must answer HTTP 500, got {} {}",
        r.status, r.text
    );
    let v = r.json();
    check_envelope_shape(&v);
    let logs = logs_of(&v);
    assert!(
        !logs.is_empty() && logs.iter().any(|l| !l.trim().is_empty()),
        "the storage error must be in Logs: {v}"
    );
    assert!(
        !matches!(sweep_report(&logs), Some(report) if report.probed > 0),
        "a failed sweep must not report probes as done: {v}"
    );

    // Still alive and answering GET / at once.
    assert!(
        h.try_exit_status().is_none(),
        "handler exited during the outage:\n{}",
        h.logs()
    );
    let t0 = Instant::now();
    let r = h
        .client
        .get(h.url("/"))
        .send()
        .await
        .expect("GET / during outage");
    assert_eq!(r.status().as_u16(), 200);
    // Far above a loaded machine's hiccups; GET / needs no storage at all.
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "GET / during the outage took {:?}",
        t0.elapsed()
    );

    // Storage comes back on the same port and location: recovery by itself.
    az.restart();
    let recovered = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let r = h
                .register(
                    &json!({"serviceName": "after", "serviceType": "api", "endpoint": target.url}),
                )
                .await;
            (r.status == 200).then_some(())
        },
    )
    .await;
    assert!(
        recovered.is_some(),
        "registration did not recover within 20 s after storage returned:\n{}",
        h.logs()
    );
    let v = h.discover_ok("").await;
    let names: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["after", "before"],
        "data survives the restart, nothing half-written"
    );
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let SweepReport {
        probed: p,
        healthy: hh,
        unhealthy: u,
        ..
    } = sweep_report(&logs_of(&r.json())).expect("summary");
    assert_eq!((p, hh, u), (2, 2, 0));
    assert!(h.try_exit_status().is_none());
}

/// Storage that accepts connections and never answers: every waiter of one single-flight read gets
/// its 503 when that read gives up, not one storage budget after the previous waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_reaches_every_waiter_at_once() {
    const BUDGET_MS: u64 = 1000;
    const CLIENTS: usize = 12;
    let silent = SilentTarget::start();
    let cfg = HandlerConfig::with_storage(
        Mode::CustomHandler,
        &connection_string_for_port(silent.port),
    )
    .env("STORAGE_TIMEOUT_MS", &BUDGET_MS.to_string());
    let h = Handler::spawn(cfg).await;
    for query in ["serviceType=api", "serviceName=orders&healthyOnly=true"] {
        let started = Instant::now();
        let answers = futures::future::join_all((0..CLIENTS).map(|_| async {
            let r = h.discover(query).await;
            (r, started.elapsed())
        }))
        .await;
        let bound = Duration::from_millis(3 * BUDGET_MS + 2000);
        let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
        for (r, took) in &answers {
            r.assert_503("discovery with silent storage");
            assert!(
                *took < bound,
                "{query}: a 503 took {took:?} (bound {bound:?}); all: {:?}",
                answers.iter().map(|(_, t)| *t).collect::<Vec<_>>()
            );
        }
        eprintln!(
            "{CLIENTS} concurrent discoveries, silent storage: slowest 503 after {slowest:?}"
        );
    }
}
