//! `tlsExpiryWarningDays` end to end: a certificate (made here, self-signed for 127.0.0.1 and
//! trusted through `HEALTH_PROBE_CA_FILE`) that expires within the days given is `degraded` with
//! the days left, over https and over grpcs; further off it is healthy, and an expired one fails
//! the handshake and stays unhealthy.

use crate::harness::*;
use chrono::Duration;
use serde_json::{json, Value};

async fn rows_after_sweep(h: &Handler) -> Vec<Value> {
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.tables().rows(&h.health_table).await
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["serviceName"] == name)
        .unwrap_or_else(|| panic!("no health row for {name} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_close_to_expiry_are_warnings_over_https_and_grpcs() {
    let soon = TestCertificate::for_loopback(Duration::days(3) + Duration::hours(1));
    let later = TestCertificate::for_loopback(Duration::days(200));
    let expired = TestCertificate::for_loopback(-Duration::days(1));
    let roots = roots_file(&[&soon, &later, &expired]);
    let h = Handler::start_with(&[("HEALTH_PROBE_CA_FILE", &roots)]).await;
    let (soon_https, later_https, expired_https) = (
        TlsTarget::start(&soon),
        TlsTarget::start(&later),
        TlsTarget::start(&expired),
    );
    let soon_grpcs = GrpcHealthServer::start(Some(&soon)).await;
    let grpcs = format!("grpcs://127.0.0.1:{}", soon_grpcs.port);
    let cases = [
        (
            "soon",
            soon_https.url.clone(),
            json!({"tlsExpiryWarningDays": 30}),
            "degraded",
            "certificate expires in 3 days",
        ),
        (
            "soon-short",
            soon_https.url.clone(),
            json!({"tlsExpiryWarningDays": 2}),
            "healthy",
            "",
        ),
        (
            "soon-unasked",
            soon_https.url.clone(),
            json!({}),
            "healthy",
            "",
        ),
        (
            "later",
            later_https.url.clone(),
            json!({"tlsExpiryWarningDays": 30}),
            "healthy",
            "",
        ),
        (
            "expired",
            expired_https.url.clone(),
            json!({"tlsExpiryWarningDays": 30}),
            "unhealthy",
            "connection failed",
        ),
        (
            "grpcs-soon",
            grpcs.clone(),
            json!({"tlsExpiryWarningDays": 7}),
            "degraded",
            "certificate expires in 3 days",
        ),
    ];
    for (name, endpoint, check, _, _) in &cases {
        h.register_ok(
            &json!({"serviceName": name, "endpoint": "tcp://127.0.0.1:9",
                              "healthEndpoint": endpoint, "healthCheck": check}),
        )
        .await;
    }
    let rows = rows_after_sweep(&h).await;
    for (name, _, _, status, reason) in &cases {
        let r = row(&rows, name);
        assert_eq!(
            (&r["status"], &r["errorMessage"]),
            (&json!(status), &json!(reason)),
            "{name}: {r}"
        );
    }
    assert_eq!(
        soon_https.hits(),
        3,
        "each https registration was asked once"
    );
    assert_eq!(
        expired_https.hits(),
        0,
        "no request over a refused handshake"
    );
    assert_eq!(soon_grpcs.checks().await, 1);
    // Shown with the registration's settings.
    let v = h.discover_ok("serviceName=soon").await;
    assert_eq!(
        v["services"][0]["healthCheck"],
        json!({"tlsExpiryWarningDays": 30})
    );
    assert_eq!(v["services"][0]["healthStatus"]["status"], "degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_warnings_need_tls_and_a_sensible_number_of_days() {
    let h = Handler::start().await;
    for (endpoint, check) in [
        ("http://127.0.0.1:1/", json!({"tlsExpiryWarningDays": 30})),
        ("grpc://127.0.0.1:1", json!({"tlsExpiryWarningDays": 30})),
        ("tcp://127.0.0.1:1", json!({"tlsExpiryWarningDays": 30})),
        ("https://127.0.0.1:1/", json!({"tlsExpiryWarningDays": 0})),
        ("https://127.0.0.1:1/", json!({"tlsExpiryWarningDays": 366})),
        (
            "https://127.0.0.1:1/",
            json!({"tlsExpiryWarningDays": 30, "kind": "tcp"}),
        ),
    ] {
        h.register(&json!({"serviceName": "t", "endpoint": "tcp://127.0.0.1:1",
                           "healthEndpoint": endpoint, "healthCheck": check}))
            .await
            .assert_error(400, Some("healthCheck.tlsExpiryWarningDays"));
    }
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}
