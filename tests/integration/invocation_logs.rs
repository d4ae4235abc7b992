//! Under the host, what an invocation did is read from its `Logs` and the handler's log lines:
//! the cache reads it made (hits and misses) and, for a sweep, the most probes it had in flight.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The `name N` pairs at the end of a Logs line (the sweep summary's form).
fn counter(line: &str, name: &str) -> Option<u64> {
    line.split(", ").find_map(|pair| {
        let (left, n) = pair.trim().rsplit_once(' ')?;
        let named = left == name || left.ends_with(&format!(" {name}"));
        named.then(|| n.parse().ok()).flatten()
    })
}

fn only_log_line(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    let logs = logs_of(&r.json());
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs[0].clone()
}

fn discovery_envelope() -> Value {
    ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[("serviceType", "logs")])
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_logs_carry_cache_reads_and_the_sweeps_peak_probes() {
    // A long cache life, so the second discovery is served from what the first read.
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "60000"),
        ("RUST_LOG_FORMAT", "json"),
    ])
    .await;
    let targets: Vec<HttpTarget> = (0..3).map(|_| HttpTarget::status(200)).collect();
    for (i, t) in targets.iter().enumerate() {
        h.register_ok(
            &json!({"serviceName": format!("svc-{i}"), "serviceType": "logs", "endpoint": t.url}),
        )
        .await;
    }

    let cold = only_log_line(&h.invoke("ServiceDiscovery", &discovery_envelope()).await);
    assert!(
        cold.starts_with("ServiceDiscovery answered 200, "),
        "{cold}"
    );
    assert_eq!(counter(&cold, "cache_hits"), Some(0), "{cold}");
    assert!(counter(&cold, "cache_misses").unwrap_or(0) >= 1, "{cold}");
    let warm = only_log_line(&h.invoke("ServiceDiscovery", &discovery_envelope()).await);
    assert!(counter(&warm, "cache_hits").unwrap_or(0) >= 1, "{warm}");
    assert_eq!(counter(&warm, "cache_misses"), Some(0), "{warm}");

    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let logs = logs_of(&r.json());
    assert_eq!(
        logs.len(),
        2,
        "the summary, then the invocation's counters: {logs:?}"
    );
    let report = sweep_report(&logs[..1]).unwrap_or_else(|| panic!("no summary: {logs:?}"));
    assert_eq!(report.probed, 3, "{logs:?}");
    let swept = &logs[1];
    assert!(
        swept.starts_with("HealthMonitor invocation: probes_in_flight_peak "),
        "{swept}"
    );
    assert!(
        targets.iter().all(|t| t.hits() == 1),
        "each target probed once"
    );
    let peak = counter(swept, "probes_in_flight_peak").unwrap_or_else(|| panic!("{swept}"));
    assert!((1..=3).contains(&peak), "{swept}");
    assert!(counter(swept, "cache_hits").is_some(), "{swept}");
    assert!(counter(swept, "cache_misses").is_some(), "{swept}");

    // The same facts as fields of a structured line, for queries over the host's traces.
    let logs = h
        .wait_for_log("\"probes_in_flight_peak\"", Duration::from_secs(10))
        .await;
    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["function"] == "HealthMonitor" && l["probes_in_flight_peak"].is_u64())
        .unwrap_or_else(|| panic!("no structured counters line for the sweep:\n{logs}"));
    assert_eq!(line["probes_in_flight_peak"], peak, "{line}");
    assert!(
        line["cache_hits"].is_u64() && line["cache_misses"].is_u64(),
        "{line}"
    );
    assert!(
        !line["invocation_id"].as_str().unwrap_or("").is_empty(),
        "{line}"
    );
    let discovery = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["function"] == "ServiceDiscovery" && l["cache_hits"].is_u64())
        .count();
    assert_eq!(
        discovery, 2,
        "one counters line per discovery invocation:\n{logs}"
    );
}
