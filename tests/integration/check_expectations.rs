//! HTTP checks' expectations end to end: `expectedStatus` (codes and ranges) replaces the
//! below-400 rule, `expectBody` must be in the first 64 KiB of the body, and bad settings are 400s
//! naming the entry at fault that write nothing. Targets are local, with hit counters.

use crate::harness::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_statuses_and_body_text_decide_the_verdict() {
    let h = Handler::start().await;
    let unauthorised = HttpTarget::status(401);
    let limited = HttpTarget::status(429);
    let up = HttpTarget::status(200);
    up.set_body(r#"{"status":"UP","checks":[]}"#);
    let down = HttpTarget::status(200);
    down.set_body(r#"{"status":"DOWN"}"#);
    let late = HttpTarget::status(200);
    // The text only after the first 64 KiB: not searched, so not found.
    late.set_body(format!("{}\"UP\"", " ".repeat(64 * 1024)));
    let cases = [
        (
            "auth-listed",
            &unauthorised,
            json!({"expectedStatus": [200, "401-403"]}),
            "healthy",
            "",
        ),
        (
            "auth-default",
            &unauthorised,
            json!({}),
            "unhealthy",
            "HTTP 401",
        ),
        (
            "ok-unlisted",
            &up,
            json!({"expectedStatus": [204]}),
            "unhealthy",
            "HTTP 200 (not an expected status)",
        ),
        (
            "limit-range",
            &limited,
            json!({"expectedStatus": ["200-299"]}),
            "degraded",
            "HTTP 429 (rate limited)",
        ),
        (
            "limit-listed",
            &limited,
            json!({"expectedStatus": [429]}),
            "healthy",
            "",
        ),
        (
            "body-up",
            &up,
            json!({"expectBody": "\"UP\""}),
            "healthy",
            "",
        ),
        (
            "body-down",
            &down,
            json!({"expectBody": "\"UP\""}),
            "unhealthy",
            "HTTP 200, but the body does not contain expectBody",
        ),
        (
            "body-late",
            &late,
            json!({"expectBody": "\"UP\""}),
            "unhealthy",
            "HTTP 200, but the body does not contain expectBody",
        ),
        (
            "both",
            &up,
            json!({"expectedStatus": [200], "expectBody": "checks"}),
            "healthy",
            "",
        ),
    ];
    for (name, target, check, _, _) in &cases {
        h.register_ok(&json!({"serviceName": name, "endpoint": target.url, "healthCheck": check}))
            .await;
    }
    let report = h.sweep_report().await;
    assert_eq!(report.probed, cases.len() as u64, "{report:?}");
    for (name, _, _, status, reason) in &cases {
        let row = h.health_row(name).await;
        assert_eq!(row["status"], *status, "{name}: {row}");
        assert_eq!(row["errorMessage"], *reason, "{name}: {row}");
    }
    // Every target was asked (once per registration that names it).
    assert_eq!(unauthorised.hits(), 2);
    assert_eq!(limited.hits(), 2);
    assert_eq!(up.hits(), 3);
    assert_eq!((down.hits(), late.hits()), (1, 1));

    // The settings are stored and shown normalised.
    let v = h.discover_ok("serviceName=auth-listed").await;
    assert_eq!(
        v["services"][0]["healthCheck"],
        json!({"expectedStatus": [200, "401-403"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_expectations_are_400s_naming_the_entry_and_write_nothing() {
    let h = Handler::start().await;
    let target = HttpTarget::status(200);
    for (check, field) in [
        (json!({"expectedStatus": []}), "healthCheck.expectedStatus"),
        (json!({"expectedStatus": 200}), "healthCheck.expectedStatus"),
        (
            json!({"expectedStatus": vec![200; 17]}),
            "healthCheck.expectedStatus",
        ),
        (
            json!({"expectedStatus": [200, 99]}),
            "healthCheck.expectedStatus[1]",
        ),
        (
            json!({"expectedStatus": [200, 201, "299-200"]}),
            "healthCheck.expectedStatus[2]",
        ),
        (
            json!({"expectedStatus": ["2xx"]}),
            "healthCheck.expectedStatus[0]",
        ),
        (
            json!({"expectedStatus": [200, 600]}),
            "healthCheck.expectedStatus[1]",
        ),
        (json!({"expectBody": ""}), "healthCheck.expectBody"),
        (
            json!({"expectBody": "x".repeat(257)}),
            "healthCheck.expectBody",
        ),
        (
            json!({"kind": "tcp", "expectBody": "x"}),
            "healthCheck.expectBody",
        ),
        (
            json!({"kind": "tcp", "expectedStatus": [200]}),
            "healthCheck.expectedStatus",
        ),
    ] {
        let r = h
            .register(&json!({"serviceName": "svc", "endpoint": target.url, "healthCheck": check}))
            .await;
        let error = r.assert_error(400, Some(field));
        assert!(
            error["error"].as_str().unwrap().contains(field),
            "{check}: {error}"
        );
    }
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    assert_eq!(target.hits(), 0);
}
