//! One HealthMonitor run: probe every registered service that is due, then record the verdicts.
//! The phases, in order: read (this file), plan (`plan`: what is due, skipped, already counted or
//! to delete), probe and record (`record`), delete what lapsed, and sum up with the effective
//! statuses and the events (this file, `sweep_rows`).
//!
//! Probes run with bounded concurrency (the recipe ran them one by one, so about 60 silent services
//! used up the 5-minute Consumption timeout), `concurrency` of them in flight all the time: a probe
//! starts the moment another ends, so a sweep takes about silent targets x timeout / concurrency.
//! What a probe's result *means* for the recorded status (thresholds, the circuit breaker's
//! backoff) is `domain::CircuitPolicy`'s decision; the sweep only reads the previous rows, asks
//! it, and writes the answer. A shard of a fanned-out sweep (`health::shard`) runs the same phases
//! over its key ranges (`sweep_rows`), so whatever changes here applies to both. A storage failure
//! fails the sweep: a sweep that could not record what it measured must not look like a success.

mod plan;
mod record;

use super::effective::EffectiveChange;
use super::monitor::SweepContext;
use super::SweepReport;
use crate::domain::KeySelection;
use crate::store::{HealthByKey, ServiceRecord, StoreError};
use chrono::{DateTime, Utc};
use plan::{plan, Due};
use record::probe_and_record;
use std::time::{Duration, Instant};

/// One sweep, start to finish, as its phases: read, plan, probe and record, delete what is gone.
/// `HealthMonitor::sweep_once` decides whether it may run, and dates it (`sweep_time`: every
/// transition this sweep records).
pub(super) async fn run_sweep(
    context: &SweepContext,
    sweep_time: DateTime<Utc>,
) -> Result<SweepReport, StoreError> {
    let store = &context.store;
    let started = Instant::now();
    let everything = KeySelection::all();
    // Two reads, side by side: the registry and what the last sweeps recorded.
    let (services, previous) = tokio::try_join!(
        store.find_services(&everything, None),
        store.find_health(&everything, None)
    )?;
    let pass = Pass {
        sweep_time,
        started,
        sweep_id: None,
        window_left: None,
    };
    let swept = sweep_rows(context, pass, &services, &previous).await;
    // The verdicts, even those of a sweep that failed half-way, are read back afresh from now on
    // (`Store::write_health` leaves the caches alone while the sweep writes).
    store.read_afresh();
    Ok(swept?.report)
}

/// How one pass over some rows is run: the whole registry in process, or one shard of a
/// fanned-out sweep (`health::shard`), which runs the same phases over its key ranges.
#[derive(Clone, Copy)]
pub(super) struct Pass<'a> {
    /// Every transition is dated at the sweep's start.
    pub sweep_time: DateTime<Utc>,
    /// When this pass started (its reads included): `duration_ms` and the start deadline count
    /// from here.
    pub started: Instant,
    /// A fanned-out sweep's id: stamped on every verdict, and a row that already carries it was
    /// counted in this sweep (a shard delivered again) and is not probed twice.
    pub sweep_id: Option<&'a str>,
    /// What is left of a fanned-out sweep's window: no probe starts after it, less one timeout.
    pub window_left: Option<Duration>,
}

/// What a pass did: its report, and (a shard delivered again) how many verdicts it found already
/// counted in this sweep, which the report includes.
pub(super) struct Swept {
    pub report: SweepReport,
    pub recounted: usize,
}

/// The phases after the reads, over the rows read: plan, probe and record, delete what is gone.
pub(super) async fn sweep_rows(
    context: &SweepContext,
    pass: Pass<'_>,
    services: &[ServiceRecord],
    previous: &HealthByKey,
) -> Result<Swept, StoreError> {
    let store = &context.store;
    let started = pass.started;
    let plan = plan(services, previous, context, pass);
    let recounted = &plan.recounted;
    let stop_starting_at = start_deadline(&plan.due, context, started, pass.window_left);
    let mut probed = probe_and_record(plan.due, context, pass, stop_starting_at).await;
    if let Some(failure) = probed.failure.take() {
        // The verdicts written before the failure are stored: the next sweep reads them as the
        // prior state and would never see their transitions again, so they are published now.
        let transitions = std::mem::take(&mut probed.written.transitions);
        context.events.after_sweep(store, transitions).await;
        return Err(failure);
    }
    let deleted_expired = store.delete_expired(&plan.long_expired).await?;
    let deleted_orphans = store.delete_orphaned_health(&plan.orphaned).await?;
    let verdicts = std::mem::take(&mut probed.written.verdicts);
    // A shard judges its own rows: a dependency in another shard reads as not registered (unknown).
    let change = EffectiveChange::of(services, previous, verdicts, pass.sweep_time);
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut transitions = std::mem::take(&mut probed.written.transitions);
    transitions.extend(deleted_expired.iter().filter_map(|service| {
        let health = previous.get(&service.partition_key, &service.row_key);
        super::events::expiry_transition(service, health, pass.sweep_time)
    }));
    change.connect(&mut transitions, pass.sweep_time);
    let effective = change.counts;
    // After the writes, bounded, never failing the sweep.
    let events = context.events.after_sweep(store, transitions).await;
    let count = |n: usize| n as u64;
    let report = SweepReport {
        effective_healthy: effective.healthy,
        effective_degraded: effective.degraded,
        effective_unhealthy: effective.unhealthy,
        effective_unknown: effective.unknown,
        probed: count(probed.written.rows + recounted.rows),
        healthy: count(probed.written.healthy + recounted.healthy),
        degraded: count(probed.written.degraded + recounted.degraded),
        unhealthy: count(
            probed.written.rows + recounted.rows
                - (probed.written.healthy + recounted.healthy)
                - (probed.written.degraded + recounted.degraded),
        ),
        duration_ms,
        write_requests: count(probed.written.requests),
        refused: count(probed.refused),
        skipped: count(plan.skipped),
        skipped_deadline: count(probed.skipped_deadline),
        invalid_rows: count(plan.invalid_rows),
        deleted_orphans: count(deleted_orphans),
        deleted_expired: count(deleted_expired.len()),
        transitions: events.transitions,
        events_published: events.published,
        events_publish_failures: events.publish_failures,
        events_pending: events.pending,
        events_dropped: events.dropped,
    };
    Ok(Swept {
        report,
        recounted: recounted.rows,
    })
}

/// When the sweep stops starting probes, counted from its start. A registration may ask for a
/// longer timeout than the default the start deadline was computed with: start the last probes
/// earlier by the difference, so the sweep still ends in time.
fn start_deadline(
    due: &[Due],
    context: &SweepContext,
    started: Instant,
    window_left: Option<Duration>,
) -> Instant {
    let settings = &context.settings;
    let longest_timeout = due
        .iter()
        .filter_map(|d| d.service.health_check.as_ref().and_then(|c| c.timeout))
        .max()
        .unwrap_or_default();
    // A shard stops starting probes one timeout before its sweep's window ends.
    let deadline = match window_left {
        Some(left) => settings
            .sweep
            .start_deadline
            .min(left.saturating_sub(settings.probe.timeout)),
        None => settings.sweep.start_deadline,
    };
    started + deadline.saturating_sub(longest_timeout.saturating_sub(settings.probe.timeout))
}
