//! Warnings end to end: HTTP 429 and 503 with `Retry-After` are recorded `degraded` with their
//! reason (Consul's rule), shown as such by discovery, the resolver and the Consul API, and never
//! counted as failures; a 503 without `Retry-After` stays unhealthy.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_and_retry_after_answers_are_degraded_not_failures() {
    let h = Handler::start_with(&[("REGISTRY_ALLOW_ANONYMOUS", "true")]).await;
    let limited = HttpTarget::status(429);
    let busy = HttpTarget::with_headers(503, vec![("Retry-After".into(), "30".into())]);
    let down = HttpTarget::status(503);
    let up = HttpTarget::status(200);
    for (name, target) in [
        ("limited", &limited),
        ("busy", &busy),
        ("down", &down),
        ("up", &up),
    ] {
        h.register_ok(&json!({"serviceName": name, "endpoint": target.url}))
            .await;
    }
    // Five sweeps: more than the failure threshold (3), so a warning counted as a failure would
    // have opened the circuit by now. (`down` opens its circuit at once and waits out its backoff.)
    for round in 1..=5u64 {
        let report = h.sweep_report().await;
        assert_eq!(
            (report.healthy, report.degraded, report.unhealthy),
            (1, 2, u64::from(round == 1)),
            "round {round}: {report:?}"
        );
    }
    for (name, reason) in [
        ("limited", "HTTP 429 (rate limited)"),
        ("busy", "HTTP 503 with Retry-After (overloaded)"),
    ] {
        let row = h.health_row(name).await;
        assert_eq!(row["status"], "degraded", "{name}: {row}");
        assert_eq!(row["errorMessage"], reason, "{name}: {row}");
        assert_eq!(row["circuit"], "closed", "{name}: {row}");
        assert_eq!(row["consecutiveFailures"], 0, "{name}: {row}");
    }
    assert!(limited.hits() >= 5 && busy.hits() >= 5);
    let row = h.health_row("down").await;
    assert_eq!(
        (&row["status"], &row["errorMessage"]),
        (&json!("unhealthy"), &json!("HTTP 503"))
    );

    // Discovery shows the verdict; healthyOnly admits degraded instances, never unhealthy ones.
    let v = h.discover_ok("serviceName=limited").await;
    assert_eq!(
        v["services"][0]["healthStatus"]["status"], "degraded",
        "{v}"
    );
    assert_eq!(
        v["services"][0]["healthStatus"]["errorMessage"],
        "HTTP 429 (rate limited)"
    );
    let mut listed: Vec<String> = h.discover_ok("healthyOnly=true").await["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["serviceName"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["busy", "limited", "up"]);
    let r = h.resolve("serviceName=busy").await;
    assert_eq!(
        r.status, 200,
        "a degraded instance is resolvable: {}",
        r.text
    );

    // The Consul API reads a degraded instance as `warning`.
    let r = h
        .request(Method::GET, "/v1/health/service/limited", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let checks = r.json()[0]["Checks"].clone();
    let check = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CheckID"] != "serfHealth")
        .unwrap_or_else(|| panic!("no service check in {checks}"))
        .clone();
    assert_eq!(check["Status"], "warning", "{checks}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_instance_recovers_and_degrades_at_once() {
    // The same target answering 200, then 429, then 200: each verdict is recorded at the sweep that
    // saw it (a warning is not damped like a failure is).
    let h = Handler::start().await;
    let flipping = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "flip", "endpoint": flipping.url}))
        .await;
    for (status, expected) in [(200, "healthy"), (429, "degraded"), (200, "healthy")] {
        flipping.set_status(status);
        h.sweep_report().await;
        let row = h.health_row("flip").await;
        assert_eq!(row["status"], expected, "{status}: {row}");
    }
}
