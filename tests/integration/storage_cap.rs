//! `STORAGE_MAX_CONNECTIONS`: a burst of API requests never puts more storage requests or
//! connections in flight than the setting allows (counted by a proxy in front of Azurite), and a
//! request that cannot get a slot within its storage budget answers 503 with `Retry-After`.

use crate::harness::*;
use serde_json::json;
use std::time::Duration;

fn service_at_port_9(name: &str) -> serde_json::Value {
    json!({"serviceName": name, "serviceType": "api", "endpoint": "http://127.0.0.1:9/"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_keeps_to_the_storage_connection_cap_and_every_request_is_answered() {
    const CLIENTS: usize = 24;
    let proxy = CountingProxy::start(Azurite::shared().port).await;
    // No read cache, so every discovery is a storage read of its own.
    let h = Handler::behind(
        &proxy,
        &[
            ("STORAGE_MAX_CONNECTIONS", "2"),
            ("DISCOVERY_CACHE_TTL_MS", "0"),
        ],
    )
    .await;
    let said = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { h.logs().contains("storage_max_connections=2").then_some(()) },
    )
    .await;
    assert!(
        said.is_some(),
        "the start-up line names the cap: {}",
        h.logs()
    );
    let before = proxy.requests().len();

    let names: Vec<String> = (0..CLIENTS).map(|i| format!("burst-{i:02}")).collect();
    let bodies: Vec<_> = names.iter().map(|n| service_at_port_9(n)).collect();
    let registrations = futures::future::join_all(bodies.iter().map(|b| h.register(b)));
    // Each a different read, so none shares another's storage request (single flight).
    let queries: Vec<String> = names
        .iter()
        .map(|n| format!("serviceType=api&serviceName={n}"))
        .collect();
    let discoveries = futures::future::join_all(queries.iter().map(|q| h.discover(q)));
    let (registered, discovered) = tokio::join!(registrations, discoveries);

    for (name, r) in names.iter().zip(&registered) {
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_eq!(r.json()["serviceId"], format!("api:{name}"));
    }
    for r in &discovered {
        assert_eq!(r.status, 200, "{}", r.text);
        // Before or after its registration.
        let count = r.json()["count"].as_u64().unwrap();
        assert!(count <= 1, "{}", r.text);
    }
    let rows = h.tables().rows(&h.registry_table).await;
    let mut stored: Vec<&str> = rows
        .iter()
        .map(|row| row["RowKey"].as_str().unwrap())
        .collect();
    stored.sort_unstable();
    assert_eq!(stored, names.iter().map(String::as_str).collect::<Vec<_>>());
    // Afterwards every discovery sees all of them.
    assert_eq!(
        h.discover_ok("serviceType=api").await["count"],
        CLIENTS as u64
    );

    let sent = proxy.since(before).len();
    assert!(
        sent >= 2 * CLIENTS,
        "each request reached storage: {sent} storage requests"
    );
    let peaks = proxy.peaks();
    eprintln!(
        "{sent} storage requests for {CLIENTS} registrations and {CLIENTS} discoveries; {peaks:?}"
    );
    assert!(
        peaks.requests <= 2,
        "STORAGE_MAX_CONNECTIONS=2, yet storage saw {peaks:?}"
    );
    // Connections: the two in use and at most two idle. More than two can be open for a moment:
    // a request that gets its slot just as the last one's connection is going back to the pool
    // finds the pool empty and opens one, which the pool then keeps as idle (or closes) (see
    // `store::transport`).
    assert!(
        peaks.connections <= 4,
        "STORAGE_MAX_CONNECTIONS=2, yet storage saw {peaks:?}"
    );
    assert_eq!(peaks.requests, 2, "{peaks:?}");
}

/// Storage that takes 600 ms per request, one slot, a 1 s budget: the requests queued behind the
/// slot get their 503 when their budget runs out, without waiting for a turn that would come later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_gets_no_storage_slot_within_its_budget_answers_503() {
    const CLIENTS: usize = 10;
    let proxy =
        CountingProxy::start_delayed(Azurite::shared().port, Duration::from_millis(600)).await;
    let h = Handler::behind(
        &proxy,
        &[
            ("STORAGE_MAX_CONNECTIONS", "1"),
            ("STORAGE_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let idle = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async { (proxy.requests_in_flight() == 0).then_some(()) },
    )
    .await;
    assert!(idle.is_some(), "table creation still in flight");
    let before = proxy.requests().len();

    let names: Vec<String> = (0..CLIENTS).map(|i| format!("queued-{i}")).collect();
    let bodies: Vec<_> = names.iter().map(|n| service_at_port_9(n)).collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| h.register(b))).await;

    let mut refused = 0;
    for (name, r) in names.iter().zip(&answers) {
        if r.status == 503 {
            r.assert_503(name);
            refused += 1;
        } else {
            assert_eq!(r.status, 200, "{name}: {}", r.text);
            assert!(
                h.tables()
                    .row(&h.registry_table, "api", name)
                    .await
                    .is_some(),
                "{name} answered 200 but is not stored"
            );
        }
    }
    // Served one at a time, 600 ms each, a 1 s budget cannot serve them all: without the wait
    // inside the budget every request would have waited its turn and answered 200.
    assert!(
        refused >= CLIENTS / 2,
        "{refused} of {CLIENTS} answered 503"
    );
    let sent = proxy.since(before).len();
    assert!(
        sent < CLIENTS,
        "the refused requests were answered without reaching storage: {sent} storage requests"
    );
    assert_eq!(
        proxy.peaks().requests,
        1,
        "STORAGE_MAX_CONNECTIONS=1: {:?}",
        proxy.peaks()
    );

    // Once the burst is over the store serves again.
    let drained = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async { (proxy.requests_in_flight() == 0).then_some(()) },
    )
    .await;
    assert!(drained.is_some(), "storage requests still in flight");
    h.register_ok(&service_at_port_9("after-the-burst")).await;
}

/// The sweep's storage calls share the slots: with one, its side-by-side reads and its concurrent
/// transactions queue for it and the sweep still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_with_one_storage_slot_still_reads_and_writes_everything() {
    let proxy = CountingProxy::start(Azurite::shared().port).await;
    let h = Handler::behind(&proxy, &[("STORAGE_MAX_CONNECTIONS", "1")]).await;
    let target = HttpTarget::status(200);
    // Three partitions: three transactions, which the sweep writes side by side.
    for kind in ["api", "worker", "cache"] {
        for name in ["one", "two"] {
            h.register_ok(
                &json!({"serviceName": name, "serviceType": kind, "endpoint": target.url}),
            )
            .await;
        }
    }
    let before = proxy.requests().len();
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let SweepReport {
        probed,
        healthy,
        unhealthy,
        ..
    } = sweep_report(&logs_of(&r.json())).expect("a sweep summary");
    assert_eq!((probed, healthy, unhealthy), (6, 6, 0), "{}", r.text);
    assert_eq!(h.tables().rows(&h.health_table).await.len(), 6);
    let batches = proxy
        .since(before)
        .iter()
        .filter(|r| r.ends_with("$batch"))
        .count();
    assert_eq!(batches, 3, "{:?}", proxy.since(before));
    assert_eq!(proxy.peaks().requests, 1, "{:?}", proxy.peaks());
}
