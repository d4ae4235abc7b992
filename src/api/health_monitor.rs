//! `HealthMonitor`: one sweep, whoever asks for it (the host's timer envelope or our own scheduler),
//! never two at once.
//!
//! Within a process a second trigger while a sweep runs is answered at once ("already running")
//! instead of queueing behind it: queued sweeps would run back to back and pile up. Across standalone
//! replicas, a scheduled tick first claims the sweep lease (`store::lease`), so exactly one replica
//! sweeps each tick; a manual invocation of a standalone replica claims it too (for the moment it
//! is made), so it cannot overlap a sweep running elsewhere. Under the Functions host the timer is
//! already a singleton, so there the envelope path needs no lease. A finished sweep releases the
//! lease (its tick stays recorded, so nobody sweeps that tick again).

use super::AppState;
use crate::health::{run_sweep, SweepReport};
use crate::store::{LeaseOutcome, StoreError};
use chrono::{DateTime, Utc};

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
    /// The one line for the invocation's Logs and our log.
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

pub async fn sweep_once(
    state: &AppState,
    trigger: SweepTrigger,
) -> Result<SweepOutcome, StoreError> {
    let Ok(_one_at_a_time) = state.sweep_lock.try_lock() else {
        tracing::info!(
            function = "HealthMonitor",
            "a sweep is already running; this trigger is skipped"
        );
        return Ok(SweepOutcome::AlreadyRunning);
    };
    let result = sweep_with_lease(state, trigger).await;
    match &result {
        Ok(SweepOutcome::Ran(report)) => tracing::info!(
            function = "HealthMonitor",
            probed = report.probed,
            healthy = report.healthy,
            unhealthy = report.unhealthy,
            refused = report.refused,
            skipped = report.skipped,
            skipped_deadline = report.skipped_deadline,
            invalid_rows = report.invalid_rows,
            deleted_orphans = report.deleted_orphans,
            deleted_expired = report.deleted_expired,
            write_requests = report.write_requests,
            duration_ms = report.duration.as_millis() as u64,
            tick = tick_of(trigger),
            "health sweep finished"
        ),
        Ok(SweepOutcome::LeaseHeldBy(holder)) => tracing::info!(
            function = "HealthMonitor",
            holder = %holder,
            tick = tick_of(trigger),
            "sweep lease held elsewhere; this replica skips the tick"
        ),
        Ok(SweepOutcome::AlreadyRunning) => {}
        Err(e) => tracing::error!(function = "HealthMonitor", error = %e, "health sweep failed"),
    }
    result
}

async fn sweep_with_lease(
    state: &AppState,
    trigger: SweepTrigger,
) -> Result<SweepOutcome, StoreError> {
    let tick = match trigger {
        SweepTrigger::Scheduled { tick } => Some(tick),
        SweepTrigger::Invocation if state.sweep.use_lease => Some(Utc::now()),
        SweepTrigger::Invocation => None,
    };
    let Some(tick) = tick else {
        return run_sweep(&state.store, &state.prober, &state.sweep)
            .await
            .map(SweepOutcome::Ran);
    };
    let holder = &state.sweep.checked_by;
    let lease = state
        .store
        .take_sweep_lease(holder, tick, state.sweep.lease_ttl, Utc::now())
        .await?;
    if let LeaseOutcome::HeldBy(holder) = lease {
        return Ok(SweepOutcome::LeaseHeldBy(holder));
    }
    let result = run_sweep(&state.store, &state.prober, &state.sweep).await;
    // Released whether or not the sweep succeeded: the next tick must not wait for the expiry.
    if let Err(e) = state.store.release_sweep_lease(holder).await {
        tracing::warn!(error = %e, "could not release the sweep lease; it lapses at its expiry");
    }
    result.map(SweepOutcome::Ran)
}

fn tick_of(trigger: SweepTrigger) -> String {
    match trigger {
        SweepTrigger::Invocation => "invocation".to_owned(),
        SweepTrigger::Scheduled { tick } => crate::iso(tick),
    }
}
