//! One HealthMonitor run: probe every registered service that is due, then record the verdicts.
//!
//! Probes run with bounded concurrency (the recipe ran them one by one, so about 60 silent services
//! used up the 5-minute Consumption timeout), `concurrency` of them in flight all the time: a probe
//! starts the moment another ends, so a sweep takes about silent targets x timeout / concurrency;
//! results are written in entity-group transactions.
//! What a probe's result *means* for the recorded status (thresholds, the circuit breaker's backoff)
//! is `domain::CircuitPolicy`'s decision; this module only reads the previous rows, asks it, and
//! writes the answer. A shard of a fanned-out sweep (`health::shard`) runs the same phases over
//! its key ranges (`sweep_rows`), so whatever changes here applies to both. A storage failure fails the sweep: a sweep that could not record what it
//! measured must not look like a success.

use super::effective::EffectiveChange;
use super::monitor::SweepContext;
use super::{Prober, SweepReport};
use crate::domain::events::Transition;
use crate::domain::{CircuitPolicy, CircuitState, HealthState, KeySelection};
use crate::store::Store;
use crate::store::{HealthByKey, HealthRecord, ServiceRecord, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Rows per write while probing: one entity-group transaction (at most 100 operations).
const WRITE_BATCH: usize = 100;

/// Weight of the newest probe in the response-time average the resolver ranks instances by: about
/// the last five sweeps count.
const EWMA_ALPHA: f64 = 0.3;

/// What turns one probe's outcome into the row recorded for it, the same for the whole sweep.
#[derive(Clone, Copy)]
struct Recording<'a> {
    circuit: &'a CircuitPolicy,
    checked_by: &'a str,
    /// Every transition of one sweep is dated at its start.
    sweep_time: DateTime<Utc>,
    /// A fanned-out sweep's id, stamped on every verdict.
    sweep_id: Option<&'a str>,
    /// The process-wide probe limit: however many shards run here at once, no more than
    /// `HEALTH_PROBE_CONCURRENCY` probes are in flight.
    slots: &'a tokio::sync::Semaphore,
}

/// A service the sweep will probe, with what the previous sweeps recorded about it.
struct Due<'a> {
    service: &'a ServiceRecord,
    prior: Option<CircuitState>,
    last_checked: Option<DateTime<Utc>>,
    previous_ewma: Option<f64>,
    /// The prior row's `statusRevision`, carried over while the status holds.
    status_revision: Option<u64>,
}

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
    Ok(sweep_rows(context, pass, &services, &previous)
        .await?
        .report)
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
    let mut probed = probe_and_record(plan.due, context, pass, stop_starting_at).await?;
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

/// What one sweep will do with the rows it read, before it contacts anything.
struct Plan<'a> {
    /// To probe, longest-unchecked first.
    due: Vec<Due<'a>>,
    /// Registrations expired beyond the grace period: deleted at the end.
    long_expired: Vec<&'a ServiceRecord>,
    /// Health rows whose registration is gone: deleted at the end.
    orphaned: Vec<&'a HealthRecord>,
    /// Not probed: their circuit's backoff has not elapsed, or their health comes from a TTL only.
    skipped: usize,
    /// Registry rows with keys this handler cannot address.
    invalid_rows: usize,
    /// Verdicts already recorded in this fanned-out sweep (a shard delivered twice, or again
    /// after its worker died): left alone, since probing again would count a failure twice and
    /// move thresholds and circuits two steps in one sweep. They count in the report as stored.
    recounted: Written,
}

/// Sorts the rows read into what to probe, what to skip and what to delete.
fn plan<'a>(
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

/// What probing the due services wrote and left out.
struct Probed {
    written: Written,
    /// Not probed: the start deadline passed first.
    skipped_deadline: usize,
    /// Refused by the SSRF guard (recorded unhealthy, never contacted).
    refused: usize,
}

/// Probes the due services, `concurrency` at a time, writing their verdicts as they come.
async fn probe_and_record(
    due: Vec<Due<'_>>,
    context: &SweepContext,
    pass: Pass<'_>,
    stop_starting_at: Instant,
) -> Result<Probed, StoreError> {
    let SweepContext {
        store,
        prober,
        settings,
        checked_by,
        ..
    } = context;
    let jitter_seed = std::collections::hash_map::RandomState::new();
    let recording = Recording {
        circuit: &settings.circuit,
        checked_by,
        sweep_time: pass.sweep_time,
        sweep_id: pass.sweep_id,
        slots: &context.probe_slots,
    };
    // The futures are built up front (they do nothing until polled) rather than in a `map` closure
    // over borrowed rows, which the compiler cannot prove `Send` for the spawned scheduler task.
    // The jitter is an earliest start counted from when probing begins, not a delay taken after a
    // slot frees: it spreads the opening burst over the jitter window, and once that window has
    // passed every slot starts its next probe at once, so the sweep keeps `concurrency` probes in
    // flight and the jitter costs it at most one window, not one per round of probes.
    let probes_start = Instant::now();
    let probes: Vec<_> = due
        .into_iter()
        .map(|due| {
            let jitter = jitter_for(&jitter_seed, due.service, settings.probe.jitter);
            probe_one(
                due,
                prober,
                recording,
                probes_start + jitter,
                stop_starting_at,
            )
        })
        .collect();
    // Verdicts are written while the sweep still probes: a partition's rows go out as soon as they
    // fill one entity-group transaction, so what is left to write once the last probe ends is at
    // most one part-filled transaction per partition, and the writes do not stretch the sweep.
    let mut probing =
        futures::stream::iter(probes).buffer_unordered(settings.probe.concurrency.max(1));
    let mut writing = futures::stream::FuturesUnordered::new();
    let mut filling: HashMap<String, Vec<Verdict>> = HashMap::new();
    // What was written is kept (counts, rows and transitions) until the summary's effective counts
    // are made and the transitions handed on.
    let mut written = Written::default();
    let (mut skipped_deadline, mut refused) = (0, 0);
    loop {
        tokio::select! {
            next = probing.next() => match next {
                None => break,
                Some(None) => skipped_deadline += 1,
                Some(Some((verdict, was_refused))) => {
                    refused += usize::from(was_refused);
                    let partition = verdict.record.partition_key.clone();
                    let rows = filling.entry(partition.clone()).or_default();
                    rows.push(verdict);
                    if rows.len() >= WRITE_BATCH {
                        let rows = filling.remove(&partition).unwrap_or_default();
                        writing.push(write(store, rows));
                    }
                }
            },
            Some(write) = writing.next(), if !writing.is_empty() => written.add(write?),
        }
    }
    if skipped_deadline > 0 {
        tracing::warn!(
            skipped_deadline,
            "sweep start deadline reached; the rest are probed first next time"
        );
    }
    let rest: Vec<Verdict> = filling.into_values().flatten().collect();
    if !rest.is_empty() {
        writing.push(write(store, rest));
    }
    while let Some(write) = writing.next().await {
        written.add(write?);
    }
    Ok(Probed {
        written,
        skipped_deadline,
        refused,
    })
}

/// A health row to write, and the transition it makes (published once it is written).
struct Verdict {
    record: HealthRecord,
    transition: Option<Transition>,
}

/// Probes one due service no earlier than `not_before` and works out its new health row; `None`
/// when the start deadline passed first. The flag says whether the SSRF guard refused the target.
async fn probe_one(
    due: Due<'_>,
    prober: &Prober,
    recording: Recording<'_>,
    not_before: Instant,
    stop_starting_at: Instant,
) -> Option<(Verdict, bool)> {
    tokio::time::sleep_until(not_before.into()).await;
    if Instant::now() >= stop_starting_at {
        return None;
    }
    // Closed only if the process is going away; then no probe starts.
    let _slot = recording.slots.acquire().await.ok()?;
    if Instant::now() >= stop_starting_at {
        return None;
    }
    let service = due.service;
    // Boxed: the probe's state (the HTTP client's request future, about 1 KiB) then exists only
    // while it runs, `concurrency` at a time, and not inline in each of the sweep's futures, all
    // of which are built up front (10,000 services held about 10 MiB of them).
    let verdict =
        Box::pin(prober.probe(&service.health_endpoint, service.health_check.as_ref())).await;
    // Every transition of one sweep is dated at its start, so a backoff of five minutes comes due
    // at the next five-minute tick, not one tick later. A warning (degraded) is not a failure.
    let state = recording
        .circuit
        .record(due.prior.as_ref(), verdict.state, recording.sweep_time);
    if state.last_transition == recording.sweep_time {
        // One line per change of status (a first verdict included), not per probe: enough to
        // query which services are unhealthy now (docs/operations.md) at a cost bounded by churn.
        tracing::info!(
            function = "HealthMonitor",
            service_type = %service.partition_key,
            service_key = %service.row_key,
            status = state.status.as_str(),
            circuit = state.circuit.as_str(),
            error = %crate::telemetry::redact(&verdict.error_message),
            response_ms = verdict.response_time_ms,
            "service health changed"
        );
    }
    // The events hook: the stored state against the one about to be written.
    let transition = super::events::verdict_transition(
        service,
        due.prior.as_ref(),
        &state,
        &verdict.error_message,
        recording.sweep_time,
    );
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
        checked_by: Some(recording.checked_by.to_owned()),
        // A change of status is a change Consul's clients see: the store writes a new revision.
        // A probe that only moves the latency or the counts keeps the one the row had.
        status_revision: match due.prior.as_ref() {
            Some(prior) if prior.status == state.status => due.status_revision,
            _ => None,
        },
        sweep_id: recording.sweep_id.map(str::to_owned),
        timestamp: None,
        etag: None,
        response_time_ewma: Some(match due.previous_ewma {
            Some(previous) => EWMA_ALPHA * response_ms + (1.0 - EWMA_ALPHA) * previous,
            None => response_ms,
        }),
    };
    Some((Verdict { record, transition }, verdict.refused))
}

/// What writes stored, for the sweep's report: one write's, or the sum so far.
#[derive(Default)]
struct Written {
    requests: usize,
    rows: usize,
    healthy: usize,
    /// The verdicts written, for the summary's effective counts (`EffectiveCounts`).
    verdicts: Vec<HealthRecord>,
    /// The transitions of the rows written (only those: a verdict that was not stored is
    /// detected again by the next sweep).
    transitions: Vec<Transition>,
    degraded: usize,
}

impl Written {
    fn add(&mut self, other: Written) {
        self.requests += other.requests;
        self.rows += other.rows;
        self.healthy += other.healthy;
        self.verdicts.extend(other.verdicts);
        self.transitions.extend(other.transitions);
        self.degraded += other.degraded;
    }
}

/// Writes verdicts; the rows go back with their counts and transitions, for the summary's
/// effective counts and the events.
async fn write(store: &Store, verdicts: Vec<Verdict>) -> Result<Written, StoreError> {
    let (rows, transitions): (Vec<HealthRecord>, Vec<Option<Transition>>) = verdicts
        .into_iter()
        .map(|v| (v.record, v.transition))
        .unzip();
    let requests = store.write_health(&rows).await?;
    Ok(Written {
        requests,
        rows: rows.len(),
        healthy: rows.iter().filter(|r| r.is_healthy()).count(),
        transitions: transitions.into_iter().flatten().collect(),
        degraded: rows
            .iter()
            .filter(|r| r.status.value() == Some(HealthState::Degraded))
            .count(),
        verdicts: rows,
    })
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
