//! One HealthMonitor run: probe every registered service that is due, then record the verdicts.
//!
//! Probes run with bounded concurrency (the recipe ran them one by one, so about 60 silent services
//! used up the 5-minute Consumption timeout); results are written in entity-group transactions.
//! What a probe's result *means* for the recorded status (thresholds, the circuit breaker's backoff)
//! is `domain::CircuitPolicy`'s decision; this module only reads the previous rows, asks it, and
//! writes the answer. A storage failure fails the sweep: a sweep that could not record what it
//! measured must not look like a success.

use super::Prober;
use crate::domain::{Circuit, CircuitPolicy, CircuitState, DiscoveryQuery, HealthState};
use crate::store::{HealthRecord, ServiceRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SweepSettings {
    pub concurrency: usize,
    pub circuit: CircuitPolicy,
    /// Who probed: recorded as `checkedBy` (the Functions instance id or the host name).
    pub checked_by: String,
    /// No probe starts later than this after the sweep began, so the sweep (last probe plus the
    /// writes) ends before the function timeout; what was not started is reported as skipped.
    pub start_deadline: Duration,
    /// Each probe waits a random delay below this before it starts, so a fleet is not hit in one burst.
    pub jitter: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub probed: usize,
    pub healthy: usize,
    pub unhealthy: usize,
    /// Unhealthy because the SSRF guard refused the address (never contacted).
    pub refused: usize,
    /// Not probed: their circuit is open and its backoff has not elapsed.
    pub skipped: usize,
    /// Not probed: the sweep's start deadline passed first (probed first next time: never-checked
    /// services lead, and rows not rewritten keep their old `lastChecked`).
    pub skipped_deadline: usize,
    pub write_requests: usize,
    pub duration: Duration,
}

impl SweepReport {
    /// The one-line summary for the invocation's Logs and our own log.
    pub fn summary(&self) -> String {
        format!(
            "HealthMonitor sweep: probed {}, healthy {}, unhealthy {}, duration_ms {}, write_requests {}, refused {}, skipped {}, skipped_deadline {}",
            self.probed,
            self.healthy,
            self.unhealthy,
            self.duration.as_millis(),
            self.write_requests,
            self.refused,
            self.skipped,
            self.skipped_deadline
        )
    }
}

pub async fn run_sweep(
    store: &Store,
    prober: &Prober,
    settings: &SweepSettings,
) -> Result<SweepReport, StoreError> {
    let started = Instant::now();
    let sweep_time = Utc::now();
    let everything = DiscoveryQuery::default();
    // Two reads, side by side: the registry and what the last sweeps recorded.
    let (services, mut previous) = tokio::try_join!(
        store.find_services(&everything),
        store.find_health(&everything)
    )?;

    let mut due: Vec<(ServiceRecord, Option<CircuitState>)> = Vec::with_capacity(services.len());
    let mut skipped = 0;
    for service in services {
        let key = (service.partition_key.clone(), service.row_key.clone());
        let prior = previous.remove(&key).as_ref().and_then(circuit_state_of);
        if settings.circuit.is_due(prior.as_ref(), sweep_time) {
            due.push((service, prior));
        } else {
            skipped += 1;
        }
    }
    // Never-checked services first: whatever cuts a sweep short must not keep hiding new services.
    due.sort_by_key(|(_, prior)| prior.is_some());

    let stop_starting_at = started + settings.start_deadline;
    let jitter_seed = std::collections::hash_map::RandomState::new();
    let results: Vec<Option<(HealthRecord, bool)>> = futures::stream::iter(due)
        .map(|(service, prior)| {
            let prober = prober.clone();
            let settings = settings.clone();
            let jitter = jitter_for(&jitter_seed, &service, settings.jitter);
            async move {
                tokio::time::sleep(jitter).await;
                if Instant::now() >= stop_starting_at {
                    return None;
                }
                let verdict = prober.probe(&service.health_endpoint).await;
                let now = Utc::now();
                let success = verdict.state == HealthState::Healthy;
                let state = settings.circuit.next(prior.as_ref(), success, now);
                let record = HealthRecord {
                    partition_key: service.partition_key,
                    row_key: service.row_key,
                    service_name: service.service_name,
                    status: state.status.as_str().to_owned(),
                    last_checked: Some(iso(now)),
                    response_time: Some(i64::from(verdict.response_time_ms)),
                    error_message: verdict.error_message,
                    consecutive_failures: Some(i64::from(state.consecutive_failures)),
                    consecutive_successes: Some(i64::from(state.consecutive_successes)),
                    last_transition: Some(iso(state.last_transition)),
                    circuit: Some(state.circuit.as_str().to_owned()),
                    open_trials: Some(i64::from(state.open_trials)),
                    next_probe_at: state.next_probe_at.map(iso),
                    checked_by: Some(settings.checked_by.clone()),
                };
                Some((record, verdict.refused))
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;

    let skipped_deadline = results.iter().filter(|r| r.is_none()).count();
    if skipped_deadline > 0 {
        tracing::warn!(
            skipped_deadline,
            "sweep start deadline reached; the rest are probed next time"
        );
    }
    let probed: Vec<(HealthRecord, bool)> = results.into_iter().flatten().collect();
    let refused = probed.iter().filter(|(_, refused)| *refused).count();
    let records: Vec<HealthRecord> = probed.into_iter().map(|(record, _)| record).collect();
    let write_requests = store.write_health(&records).await?;
    let healthy = records
        .iter()
        .filter(|r| r.status == HealthState::Healthy.as_str())
        .count();
    Ok(SweepReport {
        probed: records.len(),
        healthy,
        unhealthy: records.len() - healthy,
        refused,
        skipped,
        skipped_deadline,
        write_requests,
        duration: started.elapsed(),
    })
}

/// A random delay below `window`, different for every service and every sweep.
fn jitter_for(
    seed: &std::collections::hash_map::RandomState,
    service: &ServiceRecord,
    window: Duration,
) -> Duration {
    use std::hash::BuildHasher;
    let window_ms = window.as_millis() as u64;
    if window_ms == 0 {
        return Duration::ZERO;
    }
    let hash = seed.hash_one((&service.partition_key, &service.row_key));
    Duration::from_millis(hash % window_ms)
}

fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_time(text: Option<&String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The circuit state a stored row describes. A row without our properties (written by the recipe)
/// is read from its `status`; a row with an unknown status counts as never checked.
fn circuit_state_of(record: &HealthRecord) -> Option<CircuitState> {
    let status = match record.status.as_str() {
        "healthy" => HealthState::Healthy,
        "unhealthy" => HealthState::Unhealthy,
        _ => return None,
    };
    let last_checked = parse_time(record.last_checked.as_ref()).unwrap_or(DateTime::UNIX_EPOCH);
    let Some(circuit) = record.circuit.as_deref().and_then(Circuit::parse) else {
        return Some(CircuitState::from_recipe_status(status, last_checked));
    };
    let count = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Some(CircuitState {
        status,
        circuit,
        consecutive_failures: count(record.consecutive_failures),
        consecutive_successes: count(record.consecutive_successes),
        last_transition: parse_time(record.last_transition.as_ref()).unwrap_or(last_checked),
        open_trials: count(record.open_trials),
        next_probe_at: parse_time(record.next_probe_at.as_ref()),
    })
}
