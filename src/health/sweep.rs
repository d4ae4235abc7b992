//! One HealthMonitor run: probe every registered service that is due, then record the verdicts.
//!
//! Probes run with bounded concurrency (the recipe ran them one by one, so about 60 silent services
//! used up the 5-minute Consumption timeout); results are written in entity-group transactions.
//! What a probe's result *means* for the recorded status (thresholds, the circuit breaker's backoff)
//! is `domain::CircuitPolicy`'s decision; this module only reads the previous rows, asks it, and
//! writes the answer. A storage failure fails the sweep: a sweep that could not record what it
//! measured must not look like a success.

use super::Prober;
use crate::domain::{CircuitPolicy, CircuitState, HealthState, KeySelection};
use crate::store::{HealthRecord, ServiceRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Weight of the newest probe in the response-time average the resolver ranks instances by: about
/// the last five sweeps count.
const EWMA_ALPHA: f64 = 0.3;

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
    /// An instance whose TTL lapsed longer ago than this is deleted by the sweep.
    pub expired_grace: Duration,
    /// Standalone replicas claim the sweep lease for this long (released early when the sweep
    /// ends): about the longest a sweep can run.
    pub lease_ttl: Duration,
    /// Standalone mode: replicas share the schedule, so every sweep first claims the lease.
    pub use_lease: bool,
    /// The default probe timeout, which `start_deadline` already leaves room for.
    pub probe_timeout: Duration,
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
    /// Not probed: the sweep's start deadline passed first (they lead the queue next time: the
    /// queue is ordered by when each service was last checked).
    pub skipped_deadline: usize,
    pub write_requests: usize,
    /// Registrations deleted because their TTL lapsed more than the grace period ago.
    pub deleted_expired: usize,
    /// Registry rows written by other clients with keys this handler cannot address safely.
    pub invalid_rows: usize,
    /// Health rows deleted because their registration no longer exists.
    pub deleted_orphans: usize,
    pub duration: Duration,
}

impl SweepReport {
    /// The one-line summary for the invocation's Logs and our own log.
    pub fn summary(&self) -> String {
        format!(
            "HealthMonitor sweep: probed {}, healthy {}, unhealthy {}, duration_ms {}, write_requests {}, refused {}, skipped {}, skipped_deadline {}, invalid_rows {}, deleted_orphans {}, deleted_expired {}",
            self.probed,
            self.healthy,
            self.unhealthy,
            self.duration.as_millis(),
            self.write_requests,
            self.refused,
            self.skipped,
            self.skipped_deadline,
            self.invalid_rows,
            self.deleted_orphans,
            self.deleted_expired
        )
    }
}

/// A service the sweep will probe, with what the previous sweeps recorded about it.
struct Due<'a> {
    service: &'a ServiceRecord,
    prior: Option<CircuitState>,
    last_checked: Option<DateTime<Utc>>,
    previous_ewma: Option<f64>,
}

pub async fn run_sweep(
    store: &Store,
    prober: &Prober,
    settings: &SweepSettings,
) -> Result<SweepReport, StoreError> {
    let started = Instant::now();
    let sweep_time = Utc::now();
    let everything = KeySelection::all();
    // Two reads, side by side: the registry and what the last sweeps recorded.
    let (services, previous) = tokio::try_join!(
        store.find_services(&everything),
        store.find_health(&everything)
    )?;

    let mut due: Vec<Due> = Vec::with_capacity(services.len());
    let (mut skipped, mut invalid_rows) = (0, 0);
    let mut long_expired: Vec<&ServiceRecord> = Vec::new();
    for service in services.iter() {
        if service.key().is_none() {
            invalid_rows += 1;
            continue;
        }
        if expired_beyond_grace(service, sweep_time, settings.expired_grace) {
            long_expired.push(service);
            continue;
        }
        let record = previous.get(&(service.partition_key.clone(), service.row_key.clone()));
        let prior = record.and_then(HealthRecord::circuit_state);
        if settings.circuit.is_due(prior.as_ref(), sweep_time) {
            due.push(Due {
                service,
                prior,
                last_checked: record.and_then(HealthRecord::last_checked_at),
                previous_ewma: record
                    .and_then(|r| r.response_time_ewma.or(r.response_time.map(|ms| ms as f64))),
            });
        } else {
            skipped += 1;
        }
    }
    // Health rows whose registration is gone (deregistered while a sweep was writing, or left by a
    // failed delete): a later registration of the same key must not inherit their state. Rows whose
    // keys do not parse (the sweep lease among them) are not ours to judge.
    let registered: std::collections::HashSet<(&str, &str)> = services
        .iter()
        .map(|s| (s.partition_key.as_str(), s.row_key.as_str()))
        .collect();
    let orphaned: Vec<&HealthRecord> = previous
        .values()
        .filter(|h| !registered.contains(&(h.partition_key.as_str(), h.row_key.as_str())))
        .filter(|h| crate::domain::InstanceKey::from_stored(&h.partition_key, &h.row_key).is_ok())
        .collect();
    if invalid_rows > 0 {
        tracing::warn!(
            invalid_rows,
            "registry rows with keys this handler cannot address were skipped (written by another client?)"
        );
    }
    // Longest-unchecked first (never-checked before all): whatever cuts a sweep short, the services
    // it skipped lead the queue next time, so none can starve.
    due.sort_by_key(|d| d.last_checked.map_or(i64::MIN, |t| t.timestamp_millis()));

    // A registration may ask for a longer timeout than the default the start deadline was computed
    // with: start the last probes earlier by the difference, so the sweep still ends in time.
    let longest_timeout = due
        .iter()
        .filter_map(|d| d.service.health_check.as_ref().and_then(|c| c.timeout))
        .max()
        .unwrap_or_default();
    let stop_starting_at = started
        + settings
            .start_deadline
            .saturating_sub(longest_timeout.saturating_sub(settings.probe_timeout));
    let jitter_seed = std::collections::hash_map::RandomState::new();
    // The futures are built up front (they do nothing until polled) rather than in a `map` closure
    // over borrowed rows, which the compiler cannot prove `Send` for the spawned scheduler task.
    let probes: Vec<_> = due
        .into_iter()
        .map(|due| {
            let jitter = jitter_for(&jitter_seed, due.service, settings.jitter);
            probe_one(due, prober, settings, sweep_time, jitter, stop_starting_at)
        })
        .collect();
    let results: Vec<Option<(HealthRecord, bool)>> = futures::stream::iter(probes)
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;

    let skipped_deadline = results.iter().filter(|r| r.is_none()).count();
    if skipped_deadline > 0 {
        tracing::warn!(
            skipped_deadline,
            "sweep start deadline reached; the rest are probed first next time"
        );
    }
    let probed: Vec<(HealthRecord, bool)> = results.into_iter().flatten().collect();
    let refused = probed.iter().filter(|(_, refused)| *refused).count();
    let records: Vec<HealthRecord> = probed.into_iter().map(|(record, _)| record).collect();
    let write_requests = store.write_health(&records).await?;
    let deleted_expired = store.delete_expired(&long_expired).await?;
    let deleted_orphans = store.delete_orphaned_health(&orphaned).await?;
    let healthy = records.iter().filter(|r| r.is_healthy()).count();
    Ok(SweepReport {
        probed: records.len(),
        healthy,
        unhealthy: records.len() - healthy,
        refused,
        skipped,
        skipped_deadline,
        write_requests,
        deleted_expired,
        deleted_orphans,
        invalid_rows,
        duration: started.elapsed(),
    })
}

/// Probes one due service after its jitter and works out its new health row; `None` when the start
/// deadline passed first. The flag says whether the SSRF guard refused the target.
async fn probe_one(
    due: Due<'_>,
    prober: &Prober,
    settings: &SweepSettings,
    sweep_time: DateTime<Utc>,
    jitter: Duration,
    stop_starting_at: Instant,
) -> Option<(HealthRecord, bool)> {
    tokio::time::sleep(jitter).await;
    if Instant::now() >= stop_starting_at {
        return None;
    }
    let service = due.service;
    let verdict = prober
        .probe(&service.health_endpoint, service.health_check.as_ref())
        .await;
    let success = verdict.state == HealthState::Healthy;
    // Every transition of one sweep is dated at its start, so a backoff of five minutes comes due
    // at the next five-minute tick, not one tick later.
    let state = settings
        .circuit
        .next(due.prior.as_ref(), success, sweep_time);
    let response_ms = f64::from(verdict.response_time_ms);
    let record = HealthRecord {
        partition_key: service.partition_key.clone(),
        row_key: service.row_key.clone(),
        service_name: service.service_name.clone(),
        status: state.status.into(),
        last_checked: Some(Utc::now().into()),
        response_time: Some(i64::from(verdict.response_time_ms)),
        error_message: verdict.error_message,
        consecutive_failures: Some(state.consecutive_failures),
        consecutive_successes: Some(state.consecutive_successes),
        last_transition: Some(state.last_transition.into()),
        circuit: Some(state.circuit.into()),
        open_trials: Some(state.open_trials),
        next_probe_at: state.next_probe_at,
        checked_by: Some(settings.checked_by.clone()),
        etag: None,
        response_time_ewma: Some(match due.previous_ewma {
            Some(previous) => EWMA_ALPHA * response_ms + (1.0 - EWMA_ALPHA) * previous,
            None => response_ms,
        }),
    };
    Some((record, verdict.refused))
}

/// True when the registration's TTL lapsed more than `grace` before `now`.
fn expired_beyond_grace(service: &ServiceRecord, now: DateTime<Utc>, grace: Duration) -> bool {
    let deletable_from = service
        .expires_at()
        .and_then(|expires| expires.checked_add_signed(chrono::Duration::from_std(grace).ok()?));
    // An overflowing grace ("never") keeps the row.
    deletable_from.is_some_and(|from| from < now)
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
