//! `GET /v1/agent/service/<id>` blocks on the index it answers with: a client that sends back the
//! `X-Consul-Index` it was given is held while that service is unchanged, whatever else changes.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_service_read_holds_on_its_own_index() {
    let h = Handler::start_consul_anonymous().await;
    for name in ["first", "later"] {
        h.register_ok(&json!({"serviceName": name, "serviceType": "api",
                              "endpoint": "http://127.0.0.1:9/"}))
            .await;
    }
    let r = h
        .request(Method::GET, "/v1/agent/service/first", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let given: u64 = r.header("x-consul-index").unwrap().parse().unwrap();

    let wait = Duration::from_secs(2);
    let started = Instant::now();
    let r = h
        .request(
            Method::GET,
            &format!("/v1/agent/service/first?index={given}&wait=2s"),
            None,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-consul-index"), Some(given.to_string()));
    assert!(
        took >= wait,
        "answered at once ({took:?}): a client would spin"
    );
}
