//! A sweep's plan: what to do with the rows it read, before it contacts anything. Which services
//! are due (their circuit's backoff has elapsed), which are skipped (a TTL-only registration, a
//! backoff still running), which verdicts this fanned-out sweep already counted (a shard delivered
//! again), and which rows are deleted at the end (registrations expired beyond their grace, or
//! critical for longer than their `DeregisterCriticalServiceAfter`; health rows whose
//! registration is gone).

use super::record::Written;
use super::Pass;
use crate::domain::{CircuitState, HealthState};
use crate::health::monitor::SweepContext;
use crate::store::{HealthByKey, HealthRecord, ServiceRecord};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A service the sweep will probe, with what the previous sweeps recorded about it.
pub(super) struct Due<'a> {
    pub service: &'a ServiceRecord,
    pub prior: Option<CircuitState>,
    pub last_checked: Option<DateTime<Utc>>,
    pub previous_ewma: Option<f64>,
    /// The prior row's `statusRevision`, carried over while the status holds.
    pub status_revision: Option<u64>,
}

/// What one sweep will do with the rows it read, before it contacts anything.
pub(super) struct Plan<'a> {
    /// To probe, longest-unchecked first.
    pub due: Vec<Due<'a>>,
    /// Registrations expired beyond the grace period: deleted at the end.
    pub long_expired: Vec<&'a ServiceRecord>,
    /// Health rows whose registration is gone: deleted at the end.
    pub orphaned: Vec<&'a HealthRecord>,
    /// Not probed: their circuit's backoff has not elapsed, or their health comes from a TTL only.
    pub skipped: usize,
    /// Registry rows with keys this handler cannot address.
    pub invalid_rows: usize,
    /// Verdicts already recorded in this fanned-out sweep (a shard delivered twice, or again
    /// after its worker died): left alone, since probing again would count a failure twice and
    /// move thresholds and circuits two steps in one sweep. They count in the report as stored.
    pub recounted: Written,
}

/// Sorts the rows read into what to probe, what to skip and what to delete.
pub(super) fn plan<'a>(
    services: &'a [ServiceRecord],
    previous: &'a HealthByKey,
    context: &SweepContext,
    pass: Pass<'_>,
) -> Plan<'a> {
    let (settings, sweep_time) = (&context.settings, pass.sweep_time);
    let mut recounted = Written::default();
    let mut due: Vec<Due> = Vec::with_capacity(services.len());
    let (mut skipped, mut invalid_rows) = (0, 0);
    let mut long_expired: Vec<&ServiceRecord> = Vec::new();
    for service in services.iter() {
        if service.key().is_none() {
            invalid_rows += 1;
            continue;
        }
        let record = previous
            .get(&service.partition_key, &service.row_key)
            .filter(|h| h.describes(service));
        if let Some(counted) =
            record.filter(|h| pass.sweep_id.is_some() && h.sweep_id.as_deref() == pass.sweep_id)
        {
            recounted.rows += 1;
            recounted.healthy += usize::from(counted.is_healthy());
            recounted.degraded +=
                usize::from(counted.status.value() == Some(HealthState::Degraded));
            continue;
        }
        if expired_beyond_grace(service, sweep_time, settings.sweep.expired_grace)
            || critical_too_long(service, record, sweep_time)
        {
            long_expired.push(service);
            continue;
        }
        // Health from a TTL only (a Consul registration without an HTTP or TCP check).
        if !service.probed() {
            skipped += 1;
            continue;
        }
        let prior = record.and_then(HealthRecord::circuit_state);
        if settings.circuit.is_due(prior.as_ref(), sweep_time) {
            due.push(Due {
                service,
                prior,
                last_checked: record.and_then(HealthRecord::last_checked_at),
                previous_ewma: record
                    .and_then(|r| r.response_time_ewma.or(r.response_time.map(|ms| ms as f64))),
                status_revision: record.and_then(|r| r.status_revision),
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
    Plan {
        due,
        long_expired,
        orphaned,
        skipped,
        invalid_rows,
        recounted,
    }
}

/// True when a Consul registration's `DeregisterCriticalServiceAfter` has run out: its checks
/// have been critical (a lapsed TTL, an unhealthy verdict) for longer.
fn critical_too_long(
    service: &ServiceRecord,
    health: Option<&HealthRecord>,
    now: DateTime<Utc>,
) -> bool {
    let Some(after) = service.consul.deregister_critical_after else {
        return false;
    };
    // A warning is not critical (Consul's rule): only an unhealthy verdict counts.
    let unhealthy_since = health
        .filter(|h| !h.is_healthy() && h.status.value() != Some(HealthState::Degraded))
        .and_then(|h| {
            h.last_transition
                .as_ref()
                .and_then(crate::store::Stored::value)
        });
    crate::domain::critical_too_long(
        service.critical_since(unhealthy_since, now),
        Some(Duration::from_secs(u64::from(after))),
        now,
    )
}

/// True when the registration's TTL lapsed more than `grace` before `now`.
fn expired_beyond_grace(service: &ServiceRecord, now: DateTime<Utc>, grace: Duration) -> bool {
    let deletable_from = service
        .expires_at()
        .and_then(|expires| expires.checked_add_signed(chrono::Duration::from_std(grace).ok()?));
    // An overflowing grace ("never") keeps the row.
    deletable_from.is_some_and(|from| from < now)
}
