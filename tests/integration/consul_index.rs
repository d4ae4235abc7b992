//! The Consul index: still through heartbeats, re-registrations that change nothing and probe
//! sweeps; moving on a status change, a tag change, a new instance and a deregistration (of the
//! newest row, which a max over the remaining rows would go back on), never backwards. Blocking
//! reads: one returns on a change made through the same process, one holds its whole wait without
//! one, and a change made through a second process reaches a watcher on the first.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn index(h: &Handler, path: &str) -> u64 {
    let r = h.request(Method::GET, path, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("x-consul-index").unwrap().parse().unwrap()
}

fn instance(id: &str, endpoint: &str, tags: Value) -> Value {
    json!({
        "serviceName": "idx", "serviceType": "api", "instanceId": id, "endpoint": endpoint,
        "ttlSeconds": 600, "tags": tags
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_moves_on_visible_changes_only_and_never_back() {
    let h = Handler::start_consul_anonymous().await;
    let target = HttpTarget::status(200);
    let service = "/v1/health/service/idx";
    let catalog = "/v1/catalog/services";
    h.register_ok(&instance("a", &target.url, json!(["v1"])))
        .await;
    let registered = index(&h, service).await;
    let catalog_registered = index(&h, catalog).await;

    for _ in 0..3 {
        let r = h
            .heartbeat(&json!({"serviceName": "idx", "serviceType": "api", "instanceId": "a"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            index(&h, service).await,
            registered,
            "a heartbeat moves nothing"
        );
    }
    // The same registration again: its revision is kept.
    h.register_ok(&instance("a", &target.url, json!(["v1"])))
        .await;
    assert_eq!(index(&h, service).await, registered);

    // The first sweep turns "never checked" (warning) into passing: a change.
    h.sweep_report().await;
    let checked = index(&h, service).await;
    assert!(checked > registered, "{checked} > {registered}");
    let r = h.request(Method::GET, service, None).await;
    assert_eq!(r.json()[0]["Checks"][0]["Status"], "passing");
    // Another sweep measures a new latency and nothing else.
    h.sweep_report().await;
    assert_eq!(
        index(&h, service).await,
        checked,
        "a probe's latency moves nothing"
    );

    h.register_ok(&instance("a", &target.url, json!(["v1", "v2"])))
        .await;
    let retagged = index(&h, service).await;
    assert!(retagged > checked);

    h.register_ok(&instance("b", &target.url, json!([]))).await;
    let added = index(&h, service).await;
    assert!(added > retagged);
    let r = h
        .deregister("serviceName=idx&serviceType=api&instanceId=b")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let removed = index(&h, service).await;
    assert!(
        removed > added,
        "deregistering the newest row: {removed} > {added}"
    );
    let watermark = h
        .tables()
        .row(&h.state_table, "~index", "idx")
        .await
        .expect("a watermark row for the name");
    assert_eq!(
        watermark["revision"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        removed
    );
    let catalog_now = index(&h, catalog).await;
    assert!(catalog_now >= removed && catalog_now > catalog_registered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_read_returns_on_a_change_and_holds_without_one() {
    let h = Handler::start_consul_anonymous().await;
    h.register_ok(&instance("a", "http://10.0.0.1:80", json!([])))
        .await;
    let seen = index(&h, "/v1/health/service/idx").await;

    // Held for its whole wait when nothing changes, answered with the same index.
    let started = Instant::now();
    let path = format!("/v1/health/service/idx?index={seen}&wait=2s");
    let r = h.request(Method::GET, &path, None).await;
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "held {:?}",
        started.elapsed()
    );
    assert_eq!(r.header("x-consul-index").unwrap(), seen.to_string());

    // Returns when a change lands, well before its wait.
    let url = h.url(&format!("/v1/health/service/idx?index={seen}&wait=60s"));
    let watcher = tokio::spawn(async move {
        let started = Instant::now();
        let r = http_client().get(url).send().await.unwrap();
        let index: u64 = r.headers()["x-consul-index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        (
            index,
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!watcher.is_finished(), "held while nothing changed");
    h.register_ok(&instance("a", "http://10.0.0.1:80", json!(["new"])))
        .await;
    let (moved, body, waited) = watcher.await.unwrap();
    assert!(moved > seen);
    assert_eq!(body[0]["Service"]["Tags"], json!(["new"]));
    assert!(waited < Duration::from_secs(30), "woke after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_another_process_reaches_a_watcher_on_this_one() {
    let cfg = HandlerConfig::consul_anonymous();
    let first = Handler::spawn(cfg.clone()).await;
    let second = Handler::spawn(cfg).await;
    first
        .register_ok(&instance("a", "http://10.0.0.1:80", json!([])))
        .await;
    let seen = index(&first, "/v1/catalog/services").await;
    let url = first.url(&format!("/v1/catalog/services?index={seen}&wait=60s"));
    let watcher = tokio::spawn(async move {
        let r = http_client().get(url).send().await.unwrap();
        let index: u64 = r.headers()["x-consul-index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        (
            index,
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    second
        .register_ok(&json!({"serviceName": "other", "endpoint": "http://10.0.0.2:80"}))
        .await;
    // Within the read cache's TTL (2 s) and a re-check (at most 2 s), with room to spare.
    let (moved, body) = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the watcher woke")
        .unwrap();
    assert!(moved > seen, "{moved} > {seen}");
    assert!(body.get("other").is_some(), "{body}");
}
