//! Probing the due services and recording their verdicts: `concurrency` probes in flight under the
//! process-wide limit, each verdict turned into its health row by the circuit policy, and the rows
//! written in entity-group transactions while the sweep still probes.

use super::plan::Due;
use super::Pass;
use crate::domain::events::Transition;
use crate::domain::{CircuitPolicy, HealthState};
use crate::health::monitor::SweepContext;
use crate::health::slots::{Planned, ProbeSlots};
use crate::health::Prober;
use crate::store::{HealthRecord, ServiceRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Rows per write while probing: one entity-group transaction (at most 100 operations).
const WRITE_BATCH: usize = 100;
/// Partitions' last part-filled transactions written at once when probing ends.
const TAIL_WRITES: usize = 4;

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
    slots: &'a ProbeSlots,
    /// This pass's probes that wait for a slot (the poller reads their sum, `ProbeSlots`).
    planned: &'a Planned<'a>,
}

/// What probing the due services wrote and left out.
pub(super) struct Probed {
    pub written: Written,
    /// Not probed: the start deadline passed first.
    pub skipped_deadline: usize,
    /// Refused by the SSRF guard (recorded unhealthy, never contacted).
    pub refused: usize,
    /// The first write that failed: the sweep has failed, though what was written stays written.
    pub failure: Option<StoreError>,
}

/// Probes the due services, `concurrency` at a time, writing their verdicts as they come. A
/// failed write stops it (`Probed::failure`), with what was written before it kept.
pub(super) async fn probe_and_record(
    due: Vec<Due<'_>>,
    context: &SweepContext,
    pass: Pass<'_>,
    stop_starting_at: Instant,
) -> Probed {
    let SweepContext {
        store,
        prober,
        settings,
        checked_by,
        ..
    } = context;
    let jitter_seed = std::collections::hash_map::RandomState::new();
    let planned = context.probe_slots.plan(due.len());
    let recording = Recording {
        circuit: &settings.circuit,
        checked_by,
        sweep_time: pass.sweep_time,
        sweep_id: pass.sweep_id,
        slots: &context.probe_slots,
        planned: &planned,
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
    let mut failure = None;
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
            Some(write) = writing.next(), if !writing.is_empty() => {
                if !written.take(write, &mut failure) {
                    break;
                }
            }
        }
    }
    // After a failed write no probe starts: the sweep has failed. The writes already sent still
    // count (each transaction lands whole or not at all), so their transitions are not lost.
    drop(probing);
    if skipped_deadline > 0 {
        tracing::warn!(
            skipped_deadline,
            "sweep start deadline reached; the rest are probed first next time"
        );
    }
    while let Some(write) = writing.next().await {
        written.take(write, &mut failure);
    }
    if failure.is_none() {
        // What is left: one write per partition (one transaction each), so a partition whose
        // write fails does not hide what the others stored.
        let rest: Vec<_> = filling
            .into_values()
            .filter(|rows| !rows.is_empty())
            .map(|rows| write(store, rows))
            .collect();
        let mut tail = futures::stream::iter(rest).buffer_unordered(TAIL_WRITES);
        while let Some(write) = tail.next().await {
            written.take(write, &mut failure);
        }
    }
    Probed {
        written,
        skipped_deadline,
        refused,
        failure,
    }
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
        recording.planned.start();
        return None;
    }
    // Closed only if the process is going away; then no probe starts.
    let _slot = recording.slots.acquire().await?;
    recording.planned.start();
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
    let transition = crate::health::events::verdict_transition(
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
pub(super) struct Written {
    pub requests: usize,
    pub rows: usize,
    pub healthy: usize,
    /// The verdicts written, for the summary's effective counts (`EffectiveCounts`).
    pub verdicts: Vec<HealthRecord>,
    /// The transitions of the rows written (only those: a verdict that was not stored is
    /// detected again by the next sweep).
    pub transitions: Vec<Transition>,
    pub degraded: usize,
}

impl Written {
    /// One write's outcome: what it stored is added; its failure is kept if it is the first.
    /// False when it failed.
    fn take(
        &mut self,
        write: Result<Written, StoreError>,
        failure: &mut Option<StoreError>,
    ) -> bool {
        match write {
            Ok(stored) => {
                self.add(stored);
                true
            }
            Err(e) => {
                failure.get_or_insert(e);
                false
            }
        }
    }

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
