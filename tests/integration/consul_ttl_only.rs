//! A Consul registration whose health comes from a TTL check only (or from no check at all) is
//! never probed: its address may refuse a probe, and Consul would never contact it either. The
//! target behind it counts no hits through sweeps while TTL passes arrive, the Consul view stays
//! passing, and the native API counts it healthy (its `healthyOnly` and the resolver's rule).

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn put(h: &Handler, path: &str, body: Option<Value>) -> Resp {
    h.request(Method::PUT, path, body.map(|b| b.to_string()))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_only_consul_registration_is_never_probed() {
    let h = Handler::start_consul_anonymous().await;
    // Answers 503 to anything: a probe would mark it unhealthy and open its circuit.
    let target = HttpTarget::status(503);
    for (id, check) in [("ttl-1", json!({"TTL": "30s"})), ("bare-1", Value::Null)] {
        let mut body = json!({"Name": "quiet", "ID": id, "Address": "127.0.0.1",
                              "Port": target.port});
        if !check.is_null() {
            body["Check"] = check;
        }
        let r = put(&h, "/v1/agent/service/register", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for _ in 0..3 {
        let r = put(&h, "/v1/agent/check/pass/service:ttl-1", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let report = h.sweep_report().await;
        assert_eq!(report.skipped, 2, "{report:?}");
    }
    assert_eq!(target.hits(), 0, "a TTL-only registration was probed");

    let r = h
        .request(Method::GET, "/v1/health/service/quiet?passing=1", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.iter().any(|id| id == "ttl-1"), "{}", r.text);
    let v = h.discover_ok("serviceName=quiet&healthyOnly=true").await;
    assert_eq!(v["count"], 2, "{v}");
    let health_rows = h.tables().rows(&h.health_table).await;
    assert!(
        health_rows.is_empty(),
        "no probe verdict stored: {health_rows:?}"
    );

    // A fail is what makes it unhealthy, natively too.
    let r = put(&h, "/v1/agent/check/fail/service:ttl-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = h.discover_ok("serviceName=quiet&healthyOnly=true").await;
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(target.hits(), 0);
}
