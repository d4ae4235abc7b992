//! A shutdown answers every held Consul read at once (with the index it has), instead of making
//! the graceful drain wait out holds of up to minutes.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_reads_answer_at_once_on_shutdown() {
    let mut h = Handler::start_consul_anonymous().await;
    h.register_ok(&json!({"serviceName": "bye", "serviceType": "api",
                          "endpoint": "http://127.0.0.1:9/"}))
        .await;
    let r = h.request(Method::GET, "/v1/health/service/bye", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seen = r.header("x-consul-index").unwrap();
    let client = http_client();
    let health = client
        .get(h.url(&format!("/v1/health/service/bye?index={seen}&wait=60s")))
        .send();
    let kv = client
        .get(h.url("/v1/kv/fabio/config?index=1&wait=60s"))
        .send();
    let (health, kv) = (tokio::spawn(health), tokio::spawn(kv));
    // Nothing observable marks a request as held (no log line per request): give both a moment
    // to arrive, then check neither has been answered yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!health.is_finished() && !kv.is_finished(), "not held");
    let t0 = Instant::now();
    send_signal(h.pid(), "TERM");
    let (health, kv) = (health.await.unwrap(), kv.await.unwrap());
    let health = health.expect("an answer, not a dropped connection");
    assert_eq!(health.status(), 200);
    assert_eq!(kv.expect("an answer").status(), 404);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let status = h.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{}", h.logs());
}
