//! Thresholds, flap damping and the circuit breaker across several sweeps, against a local target
//! whose answer the test switches between 200 and 503.

use crate::harness::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP target answering whatever status `status` holds at the time of the request.
struct SwitchTarget {
    url: String,
    status: Arc<AtomicU16>,
}

impl SwitchTarget {
    async fn start(initial: u16) -> SwitchTarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/health",
            listener.local_addr().unwrap().port()
        );
        let status = Arc::new(AtomicU16::new(initial));
        let shared = status.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let status = shared.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let code = status.load(Ordering::SeqCst);
                            let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                            let _ = socket.write_all(reply.as_bytes()).await;
                            seen.clear();
                        }
                    }
                });
            }
        });
        SwitchTarget { url, status }
    }

    fn set(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

/// Sweeps once and returns (the summary line, the service's health row).
async fn sweep(h: &Handler) -> (String, Value) {
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let logs = logs_of(&r.json());
    let summary = logs
        .iter()
        .find(|l| l.contains("HealthMonitor sweep:"))
        .cloned()
        .unwrap_or_else(|| panic!("no summary in {logs:?}"));
    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    (summary, rows[0].clone())
}

async fn healthy_only_names(h: &Handler) -> Vec<String> {
    let v = h.discover_ok("healthyOnly=true").await;
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["serviceName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_damp_flapping_and_the_circuit_isolates_then_restores() {
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_TIMEOUT_MS", "1000"),
        ("HEALTH_CIRCUIT_BACKOFF_MS", "1500"),
    ])
    .await;
    let target = SwitchTarget::start(200).await;
    h.register_ok(&json!({"serviceName": "flappy", "endpoint": target.url}))
        .await;

    // First ever probe decides at once: a new service is not hidden for three sweeps.
    let (_, row) = sweep(&h).await;
    assert_eq!(
        (row["status"].clone(), row["circuit"].clone()),
        (json!("healthy"), json!("closed"))
    );
    assert_eq!(healthy_only_names(&h).await, vec!["flappy"]);
    let became_healthy = row["lastTransition"].clone();

    // Two failures: still healthy (default threshold 3), counting.
    target.set(503);
    for expected in 1..=2 {
        let (_, row) = sweep(&h).await;
        assert_eq!(
            row["status"], "healthy",
            "failure {expected} must not flip it: {row}"
        );
        assert_eq!(row["consecutiveFailures"], expected, "{row}");
        assert_eq!(
            row["errorMessage"], "HTTP 503",
            "the last failure's reason is kept: {row}"
        );
        assert_eq!(row["lastTransition"], became_healthy, "{row}");
    }
    assert_eq!(healthy_only_names(&h).await, vec!["flappy"]);

    // The third opens the circuit: unhealthy, isolated from healthyOnly, transition recorded.
    let (_, row) = sweep(&h).await;
    assert_eq!(
        (row["status"].clone(), row["circuit"].clone()),
        (json!("unhealthy"), json!("open"))
    );
    assert_eq!(row["consecutiveFailures"], 3);
    assert_ne!(row["lastTransition"], became_healthy);
    assert!(healthy_only_names(&h).await.is_empty());
    let opened_at = row["lastChecked"].clone();

    // Within the backoff the service is not probed at all.
    target.set(200);
    let (summary, row) = sweep(&h).await;
    assert!(
        summary.contains("probed 0") && summary.contains("skipped 1"),
        "{summary}"
    );
    assert_eq!(
        row["lastChecked"], opened_at,
        "not probed, not rewritten: {row}"
    );

    // After the backoff, a passing trial half-opens it: still isolated.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (_, row) = sweep(&h).await;
    assert_eq!(
        (row["status"].clone(), row["circuit"].clone()),
        (json!("unhealthy"), json!("half-open"))
    );
    assert!(healthy_only_names(&h).await.is_empty());

    // The second consecutive success (default threshold 2) closes it and restores the service.
    let (_, row) = sweep(&h).await;
    assert_eq!(
        (row["status"].clone(), row["circuit"].clone()),
        (json!("healthy"), json!("closed"))
    );
    assert_eq!(row["consecutiveSuccesses"], 2);
    assert_eq!(healthy_only_names(&h).await, vec!["flappy"]);
    let v = h.discover_ok("serviceName=flappy").await;
    let hs = &v["services"][0]["healthStatus"];
    assert_eq!(hs["circuit"], "closed", "{v}");
    assert_eq!(hs["consecutiveSuccesses"], 2, "{v}");
    assert_eq!(hs["checkedBy"], row["checkedBy"], "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_half_open_trial_reopens_with_a_longer_backoff() {
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_TIMEOUT_MS", "1000"),
        ("HEALTH_CIRCUIT_BACKOFF_MS", "300"),
        ("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
    ])
    .await;
    let target = SwitchTarget::start(503).await;
    h.register_ok(&json!({"serviceName": "down", "endpoint": target.url}))
        .await;

    let (_, row) = sweep(&h).await;
    assert_eq!(row["circuit"], "open");
    assert_eq!(row["openTrials"], 0);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, row) = sweep(&h).await;
    assert_eq!(row["circuit"], "open", "the trial failed: {row}");
    assert_eq!(row["openTrials"], 1, "{row}");
    let checked = parse_iso(row["lastChecked"].as_str().unwrap());
    let next = parse_iso(row["nextProbeAt"].as_str().unwrap());
    // The backoff counts from the sweep's start; lastChecked is when the probe finished, a few ms on.
    let wait = (next - checked).num_milliseconds();
    assert!(
        (500..=620).contains(&wait),
        "backoff doubles to 600 ms, got {wait} ms: {row}"
    );
}
