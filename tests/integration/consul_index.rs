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
    h.register_ok(&instance("a", "http://127.0.0.1:80", json!([])))
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
    h.register_ok(&instance("a", "http://127.0.0.1:80", json!(["new"])))
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
        .register_ok(&instance("a", "http://127.0.0.1:80", json!([])))
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
        .register_ok(&json!({"serviceName": "other", "endpoint": "http://127.0.0.1:80"}))
        .await;
    // Within the read cache's TTL (2 s) and a re-check (at most 2 s), with room to spare.
    let (moved, body) = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the watcher woke")
        .unwrap();
    assert!(moved > seen, "{moved} > {seen}");
    assert!(body.get("other").is_some(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapse_moves_the_index_and_a_revival_moves_it_again() {
    let h = Handler::start_consul_anonymous().await;
    h.register_ok(&json!({
        "serviceName": "brief", "instanceId": "a", "endpoint": "http://127.0.0.1:80", "ttlSeconds": 5
    }))
    .await;
    let path = "/v1/health/service/brief";
    let registered = index(&h, path).await;
    // Lapsed after 5 s: its check turns critical, and the lapse counts in the index.
    let lapsed = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let r = h.request(Method::GET, path, None).await;
            (r.json()[0]["Checks"][0]["Status"] == "critical")
                .then(|| r.header("x-consul-index").unwrap().parse::<u64>().unwrap())
        },
    )
    .await
    .expect("the TTL lapsed");
    assert!(lapsed > registered, "{lapsed} > {registered}");
    // A heartbeat revives it: a change too, and the index does not drop back.
    let r = h
        .heartbeat(&json!({"serviceName": "brief", "instanceId": "a"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h.request(Method::GET, path, None).await;
    assert_ne!(r.json()[0]["Checks"][0]["Status"], "critical");
    let revived: u64 = r.header("x-consul-index").unwrap().parse().unwrap();
    assert!(revived > lapsed, "{revived} > {lapsed}");
}

/// The handler's resident memory, from /proc (kB).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_held_watchers_all_wake_on_one_change() {
    const WATCHERS: usize = 1000;
    let h = Handler::start_consul_anonymous().await;
    h.register_ok(&instance("a", "http://127.0.0.1:80", json!([])))
        .await;
    let seen = index(&h, "/v1/health/service/idx").await;
    let before = rss_kb(h.pid());
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let url = h.url(&format!("/v1/health/service/idx?index={seen}&wait=60s"));
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let r = client.get(url).send().await.unwrap();
                let index: u64 = r.headers()["x-consul-index"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                (index, Instant::now())
            })
        })
        .collect();
    // Every watcher is held (none answered) once the requests have all arrived.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        watchers.iter().all(|w| !w.is_finished()),
        "held while nothing changed"
    );
    let held = rss_kb(h.pid());
    let changed_at = Instant::now();
    h.register_ok(&instance("a", "http://127.0.0.1:80", json!(["woke"])))
        .await;
    let mut slowest = Duration::ZERO;
    for w in watchers {
        let (index, at) = tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("every watcher woke")
            .unwrap();
        assert!(index > seen);
        slowest = slowest.max(at.saturating_duration_since(changed_at));
    }
    println!(
        "{WATCHERS} held watchers: handler RSS {before} kB before, {held} kB held ({:.1} kB per watcher); the last woke {} ms after the change",
        (held.saturating_sub(before)) as f64 / WATCHERS as f64,
        slowest.as_millis()
    );
    assert!(slowest < Duration::from_secs(10), "woke after {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_watchers_cost_no_storage_reads_of_their_own() {
    const WATCHERS: usize = 200;
    let proxy = CountingProxy::start(Azurite::shared().port).await;
    let h = Handler::behind(&proxy, &[("REGISTRY_ALLOW_ANONYMOUS", "true")]).await;
    h.register_ok(&instance("a", "http://127.0.0.1:80", json!([])))
        .await;
    let seen = index(&h, "/v1/health/service/idx").await;
    let from = proxy.requests().len();
    let url = h.url(&format!("/v1/health/service/idx?index={seen}&wait=5s"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for w in watchers {
        assert_eq!(w.await.unwrap(), 200);
    }
    // About 5 s of holds (plus jitter): the snapshot's three cached reads (registry, health,
    // watermarks), each refreshed ahead at most once per half TTL (1 s), whatever the number of
    // watchers: 200 watchers re-checking every 1-2 s would otherwise be hundreds.
    let reads = proxy.since(from);
    println!(
        "{WATCHERS} watchers held 5 s: {} storage requests",
        reads.len()
    );
    assert!(
        reads.len() <= 3 * 7,
        "{} storage requests: {reads:?}",
        reads.len()
    );
}
