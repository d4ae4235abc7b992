//! `HealthMonitor`: the one owner of sweeping. Whoever asks for a sweep (the host's timer envelope,
//! our own scheduler, a manual invocation: each through the sweep job) calls `sweep_once`, which
//! holds everything that decides whether and how a sweep runs: the in-process lock, the standalone
//! lease, the sweep itself, and the log line that reports it.
//!
//! - Within a process a second trigger while a sweep runs is answered at once ("already running")
//!   instead of queueing behind it: queued sweeps would run back to back and pile up.
//! - Across standalone replicas, a scheduled tick first claims the sweep lease (`store::lease`), so
//!   exactly one replica sweeps each tick; a manual invocation of a standalone replica claims it too
//!   (for the moment it is made), so it cannot overlap a sweep running elsewhere. Under the Functions
//!   host the timer is already a singleton, so there no lease is taken.
//! - A finished sweep releases the lease (its tick stays recorded, so nobody sweeps that tick again).
//! - Every sweep that ran, succeeded or failed, is recorded in the `(~sweep, last)` row
//!   (`store::sweeps`) before `sweep_once` returns, so whoever triggered it can read it back at once.
//! - What the caller wants done before the probes (Service Connector discovery, composed by
//!   `sweep_job`) runs in the sweep's turn (so under its lease, on one replica), so what it
//!   registers is probed in the same sweep; it never fails the sweep.

use super::enqueue::{start_sweep, Enqueued, Fanout, FanoutError};
use super::slots::ProbeSlots;
use super::sweep::run_sweep;
use super::{ProbeGuard, Prober, SweepReport};
use crate::configuration::{HealthSettings, ServerSettings};
use crate::metrics::metrics;
use crate::store::{LeaseOutcome, Store, StoreError, SweepRecord};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What asked for a sweep, which decides whether it claims the lease and what tick it records.
#[derive(Debug, Clone, Copy)]
pub enum SweepTrigger {
    /// The host's timer envelope (already a singleton) or a manual invocation.
    Invocation,
    /// Our own scheduler's occurrence `tick`: claim the lease first.
    Scheduled { tick: DateTime<Utc> },
}

/// What became of a trigger: the sweep ran (its report), or it was declined. (Whether a sweep that
/// ran succeeded is the `Result` around this.)
#[derive(Debug)]
pub enum SweepOutcome {
    Ran(SweepReport),
    /// Another sweep is running in this process.
    AlreadyRunning,
    /// Another replica holds the lease for this tick.
    LeaseHeldBy(String),
    /// `SWEEP_QUEUE`: the sweep was cut into shards and put on the queue.
    FannedOut(Enqueued),
}

impl SweepOutcome {
    /// The one line for the invocation's Logs.
    pub fn summary(&self) -> String {
        match self {
            SweepOutcome::Ran(report) => report.summary(),
            SweepOutcome::AlreadyRunning => {
                "HealthMonitor sweep skipped: a sweep is already running in this process".to_owned()
            }
            SweepOutcome::LeaseHeldBy(holder) => {
                format!("HealthMonitor sweep skipped: the sweep lease for this tick is held by {holder}")
            }
            SweepOutcome::FannedOut(enqueued) => enqueued.summary(),
        }
    }
}

/// Cheap to clone: every clone shares the one lock.
#[derive(Clone)]
pub struct HealthMonitor {
    context: Arc<SweepContext>,
}

/// What a sweep reads: the tables, the prober, the settings, and who we are.
pub(super) struct SweepContext {
    pub store: Store,
    pub prober: Prober,
    pub settings: HealthSettings,
    /// Recorded as `checkedBy`, and the lease's holder.
    pub checked_by: String,
    /// Standalone mode: replicas share the schedule, so every sweep first claims the lease.
    use_lease: bool,
    /// One sweep at a time in this process.
    lock: tokio::sync::Mutex<()>,
    /// Where the sweep's transitions go once its verdicts are written.
    pub events: super::events::EventPipeline,
    /// The process-wide probe limit (`HEALTH_PROBE_CONCURRENCY`), shared by the in-process sweep
    /// and every shard this process runs at once.
    pub probe_slots: ProbeSlots,
    /// `SWEEP_QUEUE`: ticks enqueue shards instead of sweeping here.
    pub fanout: Option<Fanout>,
}

impl HealthMonitor {
    pub fn new(
        store: Store,
        settings: &HealthSettings,
        server: &ServerSettings,
    ) -> Result<Self, FanoutError> {
        let prober = Prober::new(
            settings.probe.timeout,
            ProbeGuard::from(&settings.probe_guard),
        )
        .with_roots(settings.probe_roots.clone());
        let sinks = super::events::sinks(&settings.events, &store);
        let events = super::events::EventPipeline::new(&settings.events, sinks);
        let fanout = settings
            .fanout
            .as_ref()
            .map(|f| Fanout::new(&store, f))
            .transpose()?;
        Ok(HealthMonitor {
            context: Arc::new(SweepContext {
                events,
                store,
                prober,
                settings: settings.clone(),
                checked_by: server.process_name.clone(),
                use_lease: server.mode.is_standalone(),
                lock: tokio::sync::Mutex::new(()),
                probe_slots: ProbeSlots::new(settings.probe.concurrency),
                fanout,
            }),
        })
    }

    /// Where the sweep's transitions go; a deregistration hands its event here.
    pub fn events(&self) -> &super::events::EventPipeline {
        &self.context.events
    }

    /// The prober the sweep uses, whose SSRF policy registration applies up front.
    pub fn prober(&self) -> &Prober {
        &self.context.prober
    }

    /// Standalone with `SWEEP_QUEUE`: takes shards from the queue until `shutdown`
    /// (`health::poller`); returns at once otherwise.
    pub async fn poll_shards(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let polls = self
            .context
            .fanout
            .as_ref()
            .is_some_and(|f| f.settings.poll);
        if polls {
            super::poller::poll(self.context.clone(), shutdown).await;
        }
    }

    /// Runs one shard of a fanned-out sweep (the host's `ProbeShard` trigger, or this process's
    /// poller): the sweep's own phases over the shard's key ranges (`health::shard`). No lock and
    /// no lease: shards run side by side, under the process-wide probe limit.
    pub async fn probe_shard(
        &self,
        message: &crate::domain::ShardMessage,
    ) -> Result<super::ShardOutcome, StoreError> {
        super::shard::run_shard(&self.context, message).await
    }

    /// Runs one sweep unless one is running here or (standalone) another replica holds the lease,
    /// and logs what happened. `before_probes` runs only when the sweep does, in its turn (under
    /// the lock and any lease), before the registry is read: it may register what is to be probed.
    pub(crate) async fn sweep_once(
        &self,
        trigger: SweepTrigger,
        before_probes: impl Future<Output = ()>,
    ) -> Result<SweepOutcome, StoreError> {
        let Ok(_one_at_a_time) = self.context.lock.try_lock() else {
            tracing::info!(
                function = "HealthMonitor",
                "a sweep is already running; this trigger is skipped"
            );
            metrics().sweep_skipped();
            return Ok(SweepOutcome::AlreadyRunning);
        };
        let started_at = Utc::now();
        let result = self
            .sweep_with_lease(trigger, started_at, before_probes)
            .await;
        match &result {
            Ok(SweepOutcome::Ran(report)) => {
                report.log_finished(&tick_of(trigger));
                metrics().sweep_succeeded(
                    Duration::from_millis(report.duration_ms),
                    &report.named_counters(),
                );
                self.record(trigger, started_at, Ok(report)).await;
            }
            Ok(SweepOutcome::LeaseHeldBy(holder)) => {
                metrics().sweep_skipped();
                tracing::info!(
                    function = "HealthMonitor",
                    holder = %holder,
                    tick = tick_of(trigger),
                    "sweep lease held elsewhere; this replica skips the tick"
                )
            }
            Ok(SweepOutcome::FannedOut(_)) => {}
            Ok(SweepOutcome::AlreadyRunning) => {}
            Err(e) => {
                metrics().sweep_failed(e.kind());
                tracing::error!(function = "HealthMonitor", error = %e, "health sweep failed");
                self.record(trigger, started_at, Err(e)).await;
            }
        }
        result
    }

    /// Stores what a sweep that ran did. A failure to store it is logged, not raised: the sweep's
    /// own outcome (and, under the host, the invocation's status) must not depend on its summary.
    async fn record(
        &self,
        trigger: SweepTrigger,
        started_at: DateTime<Utc>,
        result: Result<&SweepReport, &StoreError>,
    ) {
        let record = SweepRecord {
            started_at: crate::iso(started_at),
            finished_at: crate::now_iso(),
            checked_by: self.context.checked_by.clone(),
            tick: match trigger {
                SweepTrigger::Invocation => None,
                SweepTrigger::Scheduled { tick } => Some(crate::iso(tick)),
            },
            // StoreError's text is redacted when it is made.
            result: result
                .map(SweepReport::counters)
                .map_err(ToString::to_string),
            fanout: None,
        };
        if let Err(e) = self.context.store.record_sweep(&record).await {
            tracing::warn!(function = "HealthMonitor", error = %e, "could not store the sweep's summary row");
        }
    }

    /// `started_at` dates the sweep: its start in the summary row, and every transition it records.
    async fn sweep_with_lease(
        &self,
        trigger: SweepTrigger,
        started_at: DateTime<Utc>,
        before_probes: impl Future<Output = ()>,
    ) -> Result<SweepOutcome, StoreError> {
        let context = &*self.context;
        let tick = match trigger {
            SweepTrigger::Scheduled { tick } => Some(tick),
            SweepTrigger::Invocation if context.use_lease => Some(Utc::now()),
            SweepTrigger::Invocation => None,
        };
        let Some(tick) = tick else {
            before_probes.await;
            return self.run(started_at, None).await;
        };
        let holder = &context.checked_by;
        let lease = context
            .store
            .take_sweep_lease(holder, tick, context.settings.sweep.lease_ttl, Utc::now())
            .await?;
        if let LeaseOutcome::HeldBy(holder) = lease {
            return Ok(SweepOutcome::LeaseHeldBy(holder));
        }
        before_probes.await;
        let scheduled = matches!(trigger, SweepTrigger::Scheduled { .. }).then_some(tick);
        let result = self.run(started_at, scheduled).await;
        // Released whether or not the sweep succeeded: the next tick must not wait for the expiry.
        if let Err(e) = context.store.release_sweep_lease(holder).await {
            tracing::warn!(error = %e, "could not release the sweep lease; it lapses at its expiry");
        }
        result
    }

    /// The sweep itself: in process, or (`SWEEP_QUEUE`) cut into shards and enqueued.
    async fn run(
        &self,
        started_at: DateTime<Utc>,
        tick: Option<DateTime<Utc>>,
    ) -> Result<SweepOutcome, StoreError> {
        let context = &*self.context;
        match &context.fanout {
            None => run_sweep(context, started_at).await.map(SweepOutcome::Ran),
            Some(fanout) => start_sweep(context, fanout, started_at, tick)
                .await
                .map(SweepOutcome::FannedOut),
        }
    }
}

fn tick_of(trigger: SweepTrigger) -> String {
    match trigger {
        SweepTrigger::Invocation => "invocation".to_owned(),
        SweepTrigger::Scheduled { tick } => crate::iso(tick),
    }
}
