//! The Consul API when storage misbehaves: a removal whose index watermark cannot be written
//! removes nothing (503, the row stays, the index never goes back), and the sweep's expiry does
//! the same. Storage faults come from a counting proxy in front of Azurite that fails one kind of
//! write, or stops answering altogether.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

/// What every write of an index watermark carries (the state table's `~index` partition, in its
/// path or its body).
const WATERMARKS: &str = "~index";

async fn index(h: &Handler, path: &str) -> u64 {
    let r = h.request(Method::GET, path, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("x-consul-index").unwrap().parse().unwrap()
}

async fn behind_proxy() -> (Handler, CountingProxy) {
    let proxy = CountingProxy::start(Azurite::shared().port).await;
    (
        Handler::behind(&proxy, &[("REGISTRY_ALLOW_ANONYMOUS", "true")]).await,
        proxy,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deregistration_without_its_watermark_deletes_nothing() {
    let (h, proxy) = behind_proxy().await;
    let body = json!({"serviceName": "wm", "serviceType": "api", "instanceId": "a",
                      "endpoint": "http://127.0.0.1:9/"});
    h.register_ok(&body).await;
    let before = index(&h, "/v1/health/service/wm").await;

    proxy.fail_writes_to(Some(WATERMARKS));
    let r = h
        .deregister("serviceName=wm&serviceType=api&instanceId=a")
        .await;
    r.assert_503("deregistration whose watermark cannot be written");
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(rows.len(), 1, "nothing may be deleted: {rows:?}");
    assert!(
        proxy.requests().iter().any(|r| r.starts_with("FAILED")),
        "the watermark write was attempted: {:?}",
        proxy.requests()
    );
    assert!(
        !proxy.requests().iter().any(|r| r.starts_with("DELETE")),
        "no delete was sent: {:?}",
        proxy.requests()
    );
    assert!(index(&h, "/v1/health/service/wm").await >= before);

    proxy.fail_writes_to(None);
    let r = h
        .deregister("serviceName=wm&serviceType=api&instanceId=a")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    let after = index(&h, "/v1/health/service/wm").await;
    assert!(after > before, "{after} > {before}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deregistration_raises_its_watermarks_before_and_after_the_delete() {
    // A watcher woken by the first watermark may read the row still there; only a second one,
    // after the delete, moves its index again and shows the row gone.
    let (h, proxy) = behind_proxy().await;
    let body = json!({"serviceName": "twice", "serviceType": "api", "instanceId": "a",
                      "endpoint": "http://127.0.0.1:9/"});
    h.register_ok(&body).await;
    let before = index(&h, "/v1/health/service/twice").await;
    let from = proxy.requests().len();
    let r = h
        .deregister("serviceName=twice&serviceType=api&instanceId=a")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = proxy.since(from);
    let delete = seen
        .iter()
        .position(|r| r.starts_with("DELETE") && r.contains(&h.registry_table))
        .unwrap_or_else(|| panic!("the registration was deleted: {seen:?}"));
    let watermark_writes = |requests: &[String]| {
        requests
            .iter()
            .filter(|r| !r.starts_with("GET") && r.contains(&h.state_table))
            .count()
    };
    assert!(
        watermark_writes(&seen[..delete]) >= 1,
        "a watermark before the delete: {seen:?}"
    );
    assert!(
        watermark_writes(&seen[delete..]) >= 1,
        "a watermark after the delete: {seen:?}"
    );
    assert!(index(&h, "/v1/health/service/twice").await > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_expires_nothing_without_its_watermarks() {
    let (h, proxy) = behind_proxy().await;
    for id in ["a", "b"] {
        h.register_ok(
            &json!({"serviceName": "exp", "serviceType": "api", "instanceId": id,
                              "endpoint": "http://127.0.0.1:9/", "ttlSeconds": 5}),
        )
        .await;
        let long_ago = chrono::Utc::now() - chrono::Duration::hours(2);
        h.set_last_heartbeat("api", &format!("exp:{id}"), long_ago)
            .await;
    }
    proxy.fail_writes_to(Some(WATERMARKS));
    let r = h.sweep().await;
    assert_eq!(r.status, 500, "{}", r.text);
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(rows.len(), 2, "nothing may be deleted: {rows:?}");

    proxy.fail_writes_to(None);
    assert_eq!(h.sweep_report().await.deleted_expired, 2);
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    let marks = h.tables().all_rows(&h.state_table).await;
    assert!(
        marks
            .iter()
            .any(|m| m["PartitionKey"] == "~index" && m["RowKey"] == "exp"),
        "{marks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_read_answers_within_its_hold_when_storage_stops_answering() {
    let proxy = CountingProxy::start(Azurite::shared().port).await;
    // A storage budget far longer than the hold: a re-check that waited for storage would
    // overrun the hold by seconds and end in a 503.
    let h = Handler::behind(
        &proxy,
        &[
            ("STORAGE_TIMEOUT_MS", "15000"),
            ("DISCOVERY_CACHE_TTL_MS", "200"),
            ("REGISTRY_ALLOW_ANONYMOUS", "true"),
        ],
    )
    .await;
    h.register_ok(&json!({"serviceName": "held", "serviceType": "api",
                          "endpoint": "http://127.0.0.1:9/"}))
        .await;
    let seen = index(&h, "/v1/health/service/held").await;

    proxy.stall(true);
    let hold = std::time::Duration::from_secs(3);
    let started = std::time::Instant::now();
    let r = h
        .request(
            Method::GET,
            &format!("/v1/health/service/held?index={seen}&wait=3s"),
            None,
        )
        .await;
    let took = started.elapsed();
    proxy.stall(false);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-consul-index"), Some(seen.to_string()));
    assert_eq!(r.json()[0]["Service"]["Service"], "held");
    // The hold plus its jitter (at most a sixteenth), and time to answer.
    let limit = hold + hold / 16 + std::time::Duration::from_millis(1500);
    assert!(
        took >= hold && took < limit,
        "held {took:?}, limit {limit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_kv_read_needs_no_storage() {
    let proxy = CountingProxy::start(Azurite::shared().port).await;
    let h = Handler::behind(
        &proxy,
        &[
            ("STORAGE_TIMEOUT_MS", "15000"),
            ("REGISTRY_ALLOW_ANONYMOUS", "true"),
        ],
    )
    .await;
    proxy.stall(true);
    let started = std::time::Instant::now();
    let r = h
        .request(Method::GET, "/v1/kv/fabio/config?index=1&wait=1s", None)
        .await;
    let took = started.elapsed();
    proxy.stall(false);
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.header("x-consul-index").as_deref(), Some("1"));
    let hold = std::time::Duration::from_secs(1);
    assert!(
        took >= hold && took < hold * 3,
        "held {took:?} with storage stalled"
    );
}
