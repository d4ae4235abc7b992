//! Thresholds, flap damping and the circuit breaker across several sweeps, against a local target
//! whose answer the test switches between 200 and 503.

use crate::harness::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
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

/// A stored time (`lastTransition`, `nextProbeAt`, ...) of a health row.
fn stored_time(row: &Value, name: &str) -> DateTime<Utc> {
    parse_iso(
        row[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} must be a time: {row}")),
    )
}

/// Sweeps once and returns (its report, the service's health row).
async fn sweep_and_row(h: &Handler) -> (SweepReport, Value) {
    let summary = h.sweep_report().await;
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
        ("WEBSITE_INSTANCE_ID", "circuit-checker"),
    ])
    .await;
    let target = SwitchTarget::start(200).await;
    h.register_ok(&json!({"serviceName": "flappy", "endpoint": target.url}))
        .await;

    // First ever probe decides at once: a new service is not hidden for three sweeps.
    let (_, row) = sweep_and_row(&h).await;
    assert_eq!(
        (row["status"].clone(), row["circuit"].clone()),
        (json!("healthy"), json!("closed"))
    );
    assert_eq!(healthy_only_names(&h).await, vec!["flappy"]);
    let became_healthy = row["lastTransition"].clone();

    // Two failures: still healthy (default threshold 3), counting.
    target.set(503);
    for expected in 1..=2 {
        let (_, row) = sweep_and_row(&h).await;
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
    let (_, row) = sweep_and_row(&h).await;
    assert_eq!(
        (row["status"].clone(), row["circuit"].clone()),
        (json!("unhealthy"), json!("open"))
    );
    assert_eq!(row["consecutiveFailures"], 3);
    assert_ne!(row["lastTransition"], became_healthy);
    assert!(healthy_only_names(&h).await.is_empty());
    let opened_at = row["lastChecked"].clone();
    // Both times are the sweep's start, so the gap is the configured backoff to the millisecond.
    let next_probe_at = stored_time(&row, "nextProbeAt");
    assert_eq!(
        (next_probe_at - stored_time(&row, "lastTransition")).num_milliseconds(),
        1500,
        "HEALTH_CIRCUIT_BACKOFF_MS=1500: {row}"
    );

    // Within the backoff the service is not probed at all. Whether this sweep starts within it
    // is up to the machine (the backoff counts from the last sweep's start), so the test judges
    // what it did by when it was sent and answered: a sweep that skipped the service started
    // before nextProbeAt, one that probed it may have started after.
    target.set(200);
    let sent = Utc::now();
    let (summary, row) = sweep_and_row(&h).await;
    let answered = Utc::now();
    let trial = if summary.skipped == 1 {
        assert_eq!((summary.probed, summary.skipped), (0, 1), "{summary:?}");
        assert!(
            sent < next_probe_at,
            "skipped by a sweep sent at {sent}, after the backoff ended at {next_probe_at}"
        );
        assert_eq!(
            row["lastChecked"], opened_at,
            "not probed, not rewritten: {row}"
        );
        // After the backoff (by the stored time, not a guessed duration), the next sweep is the trial.
        wait_until_past(next_probe_at).await;
        sweep_and_row(&h).await.1
    } else {
        // Only a machine too slow to send the next sweep within 1.5 s ends up here.
        assert!(
            answered >= next_probe_at,
            "probed within the backoff (it ends at {next_probe_at}): {summary:?}"
        );
        row
    };

    // After the backoff, a passing trial half-opens it: still isolated.
    let row = trial;
    assert_eq!(
        (row["status"].clone(), row["circuit"].clone()),
        (json!("unhealthy"), json!("half-open"))
    );
    assert!(healthy_only_names(&h).await.is_empty());

    // The second consecutive success (default threshold 2) closes it and restores the service.
    let (_, row) = sweep_and_row(&h).await;
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
    assert_eq!(
        row["checkedBy"], "circuit-checker",
        "WEBSITE_INSTANCE_ID names the checker"
    );
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

    let (_, row) = sweep_and_row(&h).await;
    assert_eq!(row["circuit"], "open");
    assert_eq!(row["openTrials"], 0);
    let first_next = stored_time(&row, "nextProbeAt");
    assert_eq!(
        (first_next - stored_time(&row, "lastTransition")).num_milliseconds(),
        300,
        "the first backoff is HEALTH_CIRCUIT_BACKOFF_MS: {row}"
    );
    wait_until_past(first_next).await;
    let sent = to_millis(Utc::now());
    let (_, row) = sweep_and_row(&h).await;
    assert_eq!(row["circuit"], "open", "the trial failed: {row}");
    assert_eq!(row["openTrials"], 1, "{row}");
    let checked = stored_time(&row, "lastChecked");
    let next = stored_time(&row, "nextProbeAt");
    // The backoff counts from the sweep's start, which no row records (lastTransition stays at the
    // first opening: still unhealthy, no transition). That start lies between the moment the test
    // sent the sweep and lastChecked, when the probe finished: nextProbeAt - 600 ms must too.
    let wait = (next - checked).num_milliseconds();
    let started = next - chrono::Duration::milliseconds(600);
    assert!(
        sent <= started && started <= checked && wait <= 600,
        "backoff doubles to 600 ms: nextProbeAt {next} - 600 ms is not within the sweep \
         (sent {sent}, probe done {checked}); {wait} ms after lastChecked: {row}"
    );
}
