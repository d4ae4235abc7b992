//! `HealthMonitor`: the one owner of sweeping. Whoever asks for a sweep (the host's timer envelope,
//! our own scheduler, a manual invocation) calls `sweep_once`, which holds everything that decides
//! whether and how a sweep runs: the in-process lock, the standalone lease, the sweep itself, and the
//! log line that reports it.
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
//! - Service Connector discovery runs first, in the sweep's turn (so under its lease, on one
//!   replica), so what it registers is probed in the same sweep; it never fails the sweep.

use super::sweep::run_sweep;
use super::{Prober, SweepReport, TargetPolicy};
use crate::configuration::{ConnectorSettings, HealthSettings, ServerSettings};
use crate::metrics::metrics;
use crate::store::{LeaseOutcome, Store, StoreError, SweepRecord};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub enum SweepTrigger {
    /// The host's timer envelope (already a singleton) or a manual invocation.
    Invocation,
    /// Our own scheduler's occurrence `tick`: claim the lease first.
    Scheduled { tick: DateTime<Utc> },
}

#[derive(Debug)]
pub enum SweepOutcome {
    Ran(SweepReport),
    /// Another sweep is running in this process.
    AlreadyRunning,
    /// Another replica holds the lease for this tick.
    LeaseHeldBy(String),
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
        }
    }
}

/// Cheap to clone: every clone shares the one lock.
#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

/// What a sweep reads: the tables, the prober, the settings, and who we are.
pub(super) struct Inner {
    pub store: Store,
    pub prober: Prober,
    pub settings: HealthSettings,
    /// Recorded as `checkedBy`, and the lease's holder.
    pub checked_by: String,
    /// Standalone mode: replicas share the schedule, so every sweep first claims the lease.
    use_lease: bool,
    /// Service Connector self-registration, run before each sweep's probes (`register_connections`).
    connector: ConnectorSettings,
    /// One sweep at a time in this process.
    lock: tokio::sync::Mutex<()>,
    /// The Service Connector sync from Azure Resource Manager, when configured.
    arm_sync: Option<crate::connector::arm::ArmSync>,
}

impl HealthMonitor {
    pub fn new(
        store: Store,
        settings: &HealthSettings,
        server: &ServerSettings,
        connector: &ConnectorSettings,
    ) -> Self {
        let prober = Prober::new(
            settings.probe.timeout,
            TargetPolicy::from(&settings.targets),
        );
        HealthMonitor {
            inner: Arc::new(Inner {
                store,
                prober,
                settings: settings.clone(),
                checked_by: server.instance_id.clone(),
                use_lease: server.mode.is_standalone(),
                connector: connector.clone(),
                lock: tokio::sync::Mutex::new(()),
                arm_sync: None,
            }),
        }
    }

    /// Runs the Service Connector sync at the start of every sweep. Call right after `new`.
    pub fn with_arm_sync(mut self, sync: Option<crate::connector::arm::ArmSync>) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_arm_sync is called before the monitor is shared")
            .arm_sync = sync;
        self
    }

    /// The prober the sweep uses, whose SSRF policy registration applies up front.
    pub fn prober(&self) -> &Prober {
        &self.inner.prober
    }

    /// Registers the services Service Connector connected this app to, when switched on
    /// (`SERVICE_CONNECTOR_SELF_REGISTER`): before each sweep's probes, under its lease, and once
    /// at start-up. Never fails: faults are logged and the next sweep tries again.
    pub async fn register_connections(&self) {
        let connector = &self.inner.connector;
        if connector.self_register {
            crate::connector::self_register::run(&self.inner.store, &connector.variables).await;
        }
    }

    /// Runs one sweep unless one is running here or (standalone) another replica holds the lease,
    /// and logs what happened.
    pub async fn sweep_once(&self, trigger: SweepTrigger) -> Result<SweepOutcome, StoreError> {
        let Ok(_one_at_a_time) = self.inner.lock.try_lock() else {
            tracing::info!(
                function = "HealthMonitor",
                "a sweep is already running; this trigger is skipped"
            );
            metrics().sweep_skipped();
            return Ok(SweepOutcome::AlreadyRunning);
        };
        let started_at = Utc::now();
        let result = self.sweep_with_lease(trigger, started_at).await;
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
            checked_by: self.inner.checked_by.clone(),
            tick: match trigger {
                SweepTrigger::Invocation => None,
                SweepTrigger::Scheduled { tick } => Some(crate::iso(tick)),
            },
            // StoreError's text is redacted when it is made.
            result: result
                .map(SweepReport::counters)
                .map_err(ToString::to_string),
        };
        if let Err(e) = self.inner.store.record_sweep(&record).await {
            tracing::warn!(function = "HealthMonitor", error = %e, "could not store the sweep's summary row");
        }
    }

    /// `started_at` dates the sweep: its start in the summary row, and every transition it records.
    async fn sweep_with_lease(
        &self,
        trigger: SweepTrigger,
        started_at: DateTime<Utc>,
    ) -> Result<SweepOutcome, StoreError> {
        let inner = &*self.inner;
        let tick = match trigger {
            SweepTrigger::Scheduled { tick } => Some(tick),
            SweepTrigger::Invocation if inner.use_lease => Some(Utc::now()),
            SweepTrigger::Invocation => None,
        };
        let Some(tick) = tick else {
            return self
                .discover_and_probe(started_at)
                .await
                .map(SweepOutcome::Ran);
        };
        let holder = &inner.checked_by;
        let lease = inner
            .store
            .take_sweep_lease(holder, tick, inner.settings.sweep.lease_ttl, Utc::now())
            .await?;
        if let LeaseOutcome::HeldBy(holder) = lease {
            return Ok(SweepOutcome::LeaseHeldBy(holder));
        }
        let result = self.discover_and_probe(started_at).await;
        // Released whether or not the sweep succeeded: the next tick must not wait for the expiry.
        if let Err(e) = inner.store.release_sweep_lease(holder).await {
            tracing::warn!(error = %e, "could not release the sweep lease; it lapses at its expiry");
        }
        result.map(SweepOutcome::Ran)
    }
}

impl HealthMonitor {
    /// What a sweep that may run does: first learn the connected services, so they are probed in
    /// this very sweep, then probe.
    async fn discover_and_probe(
        &self,
        started_at: DateTime<Utc>,
    ) -> Result<SweepReport, StoreError> {
        // The ARM sync first: where both see a service, its row (with the linker) is the one kept,
        // and self-registration leaves a row the sync owns alone.
        if let Some(sync) = &self.inner.arm_sync {
            sync.run().await;
        }
        self.register_connections().await;
        run_sweep(&self.inner, started_at).await
    }
}

fn tick_of(trigger: SweepTrigger) -> String {
    match trigger {
        SweepTrigger::Invocation => "invocation".to_owned(),
        SweepTrigger::Scheduled { tick } => crate::iso(tick),
    }
}
