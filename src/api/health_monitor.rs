//! `HealthMonitor`: one sweep, whoever asks for it (the host's timer envelope or our own scheduler).

use super::AppState;
use crate::health::{run_sweep, SweepReport};
use crate::store::StoreError;

/// Runs one sweep, waiting for any sweep already running in this process to finish first.
pub async fn sweep_once(state: &AppState) -> Result<SweepReport, StoreError> {
    let _one_at_a_time = state.sweep_lock.lock().await;
    let result = run_sweep(&state.store, &state.prober, &state.sweep).await;
    match &result {
        Ok(report) => tracing::info!(
            function = "HealthMonitor",
            probed = report.probed,
            healthy = report.healthy,
            unhealthy = report.unhealthy,
            refused = report.refused,
            skipped = report.skipped,
            write_requests = report.write_requests,
            duration_ms = report.duration.as_millis() as u64,
            "health sweep finished"
        ),
        Err(e) => tracing::error!(function = "HealthMonitor", error = %e, "health sweep failed"),
    }
    result
}
