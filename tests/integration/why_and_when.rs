//! Why an instance is unhealthy and when it is probed again: discovery's and the resolver's 404's
//! `healthStatus` show the last probe's `errorMessage` (only when there is one) and an open
//! circuit's `nextProbeAt` (only while it is open), beside the circuit state.

use crate::harness::*;
use serde_json::{json, Value};

fn health_of(v: &Value) -> Value {
    let services = v["services"].as_array().expect("services");
    assert_eq!(services.len(), 1, "{v}");
    services[0]["healthStatus"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_the_resolvers_404_show_the_error_and_the_next_probe() {
    const BACKOFF_MS: i64 = 600_000;
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "0"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
        ("HEALTH_FAILURES_TO_UNHEALTHY", "2"),
        ("HEALTH_CIRCUIT_BACKOFF_MS", &BACKOFF_MS.to_string()),
    ])
    .await;
    let up = HttpTarget::status(200);
    let down = HttpTarget::status(503);
    let registration = |endpoint: &str| json!({"serviceName": "orders", "serviceType": "api", "instanceId": "pod-1", "endpoint": endpoint});
    h.register_ok(&registration(&up.url)).await;

    // Healthy: no errorMessage (it is empty in the row), no nextProbeAt.
    h.sweep_report().await;
    let health = health_of(&h.discover_ok("serviceName=orders").await);
    assert_eq!(
        (health["status"].clone(), health["circuit"].clone()),
        (json!("healthy"), json!("closed"))
    );
    assert!(health.get("errorMessage").is_none(), "{health}");
    assert!(health.get("nextProbeAt").is_none(), "{health}");
    let row = h
        .tables()
        .row(&h.health_table, "api", "orders:pod-1")
        .await
        .unwrap();
    assert_eq!(row["errorMessage"], "", "{row}");

    // Re-registering the same key keeps its health. One failure: still healthy and closed (the
    // threshold is two), but the reason is shown at once.
    h.register_ok(&registration(&down.url)).await;
    h.sweep_report().await;
    let health = health_of(&h.discover_ok("serviceName=orders").await);
    assert_eq!(
        (
            health["status"].clone(),
            health["circuit"].clone(),
            health["errorMessage"].clone()
        ),
        (json!("healthy"), json!("closed"), json!("HTTP 503")),
        "{health}"
    );
    assert!(
        health.get("nextProbeAt").is_none(),
        "closed: no next probe: {health}"
    );

    // The second failure opens the circuit: nextProbeAt is the sweep's start plus the backoff.
    h.sweep_report().await;
    let v = h.discover_ok("serviceName=orders").await;
    let health = health_of(&v);
    assert_eq!(
        (
            health["status"].clone(),
            health["circuit"].clone(),
            health["errorMessage"].clone()
        ),
        (json!("unhealthy"), json!("open"), json!("HTTP 503")),
        "{health}"
    );
    let opened = parse_iso(health["lastTransition"].as_str().unwrap());
    let next = parse_iso(
        health["nextProbeAt"]
            .as_str()
            .expect("nextProbeAt while open"),
    );
    assert_eq!((next - opened).num_milliseconds(), BACKOFF_MS, "{health}");
    let row = h
        .tables()
        .row(&h.health_table, "api", "orders:pod-1")
        .await
        .unwrap();
    assert_eq!(
        health["nextProbeAt"], row["nextProbeAt"],
        "as stored: {row}"
    );
    assert_eq!(
        health["errorMessage"], row["errorMessage"],
        "as stored: {row}"
    );

    // Nothing eligible: the 404 lists the instance it judged, exactly as discovery shows it.
    let r = h
        .request(
            reqwest::Method::GET,
            "/api/ServiceResolver?serviceName=orders",
            None,
        )
        .await;
    let body = r.assert_error(404, Some("serviceName"));
    assert_eq!(
        body["error"], "service *:orders has no healthy instance to resolve",
        "{body}"
    );
    assert_eq!(body["instances"], v["services"], "{body}");

    // A name with no registration: the same 404 with an empty list.
    let r = h
        .request(
            reqwest::Method::GET,
            "/api/ServiceResolver?serviceName=ghost",
            None,
        )
        .await;
    assert_eq!(
        r.assert_error(404, Some("serviceName"))["instances"],
        json!([])
    );

    // The envelope path carries the same body.
    let e = ReqEnvelope::new("ServiceResolver", "GET")
        .query(&[("serviceName", "orders")])
        .build();
    let res = h.invoke("ServiceResolver", &e).await.envelope_res();
    assert_eq!(res.status, 404, "{}", res.raw);
    assert_eq!(res.json()["instances"], v["services"], "{}", res.raw);
}
