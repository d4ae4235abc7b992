//! One shard of a fanned-out sweep: the same phases as the in-process sweep (`sweep::sweep_rows`:
//! plan, probe under the process-wide limit, record in batches, delete what lapsed), over the
//! shard's key ranges instead of the whole registry, with every verdict stamped with the sweep's
//! id. Both deliveries run this one function: the host's `ProbeShard` queue trigger and the
//! standalone poller.
//!
//! - A shard of an older sweep (a newer tick has started) is *stale*: dropped with a log line,
//!   nothing recorded (its sweep was summarised at that tick).
//! - A shard of the current sweep whose window is over is *late*: dropped with a log line, and
//!   recorded as dropped, so the summary shows the sweep did not finish inside its window.
//! - A shard delivered twice, or again after its worker died, finds the verdicts already written
//!   in this sweep and leaves them alone (`sweep::plan`): no failure counts twice.
//! - A storage failure is an error (the delivery fails, and the queue delivers it again); a probe
//!   that fails is a result.
//!
//! When its marker is written the worker looks whether every shard has ended, and if so writes
//! the sweep's summary (`fanout::summarise`).

use super::fanout::complete_if_last;
use super::monitor::SweepContext;
use super::sweep::{sweep_rows, Pass};
use super::SweepReport;
use crate::domain::{ShardFate, ShardMessage};
use crate::metrics::metrics;
use crate::store::{ShardMarker, StoreError};
use chrono::Utc;
use std::time::Instant;

/// What became of one shard.
#[derive(Debug)]
pub enum ShardOutcome {
    /// Probed and recorded: its report (verdicts found already counted included).
    Done {
        report: SweepReport,
        recounted: usize,
    },
    /// Its sweep's window was over: recorded as dropped.
    Late,
    /// Its sweep is not the current one: nothing recorded.
    Stale(&'static str),
}

impl ShardOutcome {
    /// The one line for the invocation's `Logs`.
    pub fn summary(&self, message: &ShardMessage) -> String {
        let which = format!(
            "shard {}/{} of sweep {}",
            message.shard + 1,
            message.of,
            message.sweep
        );
        match self {
            ShardOutcome::Done { report, recounted } => format!(
                "ProbeShard {which}: probed {}, healthy {}, unhealthy {}, already counted {recounted}, duration_ms {}",
                report.probed, report.healthy, report.unhealthy, report.duration_ms
            ),
            ShardOutcome::Late => {
                format!("ProbeShard {which} dropped: the sweep's window is over")
            }
            ShardOutcome::Stale(why) => format!("ProbeShard {which} dropped: {why}"),
        }
    }
}

/// Runs one shard to its end (see the module's comment).
pub(super) async fn run_shard(
    context: &SweepContext,
    message: &ShardMessage,
) -> Result<ShardOutcome, StoreError> {
    let result = run(context, message).await;
    let outcome = match &result {
        Ok(ShardOutcome::Done { .. }) => "done",
        Ok(ShardOutcome::Late) => "dropped",
        Ok(ShardOutcome::Stale(_)) => "stale",
        Err(_) => "failed",
    };
    metrics().shards(outcome, 1);
    match &result {
        Ok(done @ ShardOutcome::Done { .. }) => tracing::info!(
            function = "ProbeShard",
            sweep = %message.sweep,
            shard = message.shard,
            "{}",
            done.summary(message)
        ),
        Ok(dropped) => tracing::info!(
            function = "ProbeShard",
            sweep = %message.sweep,
            shard = message.shard,
            "{}",
            dropped.summary(message)
        ),
        Err(e) => tracing::warn!(
            function = "ProbeShard",
            sweep = %message.sweep,
            shard = message.shard,
            error = %e,
            "shard failed; the queue delivers it again"
        ),
    }
    result
}

async fn run(context: &SweepContext, message: &ShardMessage) -> Result<ShardOutcome, StoreError> {
    let store = &context.store;
    let started = Instant::now();
    let current = store.current_sweep().await?;
    match message.fate(current.as_ref().map(|c| &c.id), Utc::now()) {
        ShardFate::Stale(why) => return Ok(ShardOutcome::Stale(why)),
        ShardFate::Late => {
            let marker = ShardMarker {
                shard: message.shard,
                dropped: true,
                checked_by: context.checked_by.clone(),
                finished_at: Utc::now(),
                counters: Vec::new(),
            };
            store.record_shard(&message.sweep, &marker).await?;
            if let Some(current) = &current {
                complete_if_last(context, current).await;
            }
            return Ok(ShardOutcome::Late);
        }
        ShardFate::Run => {}
    }
    let (services, previous) = tokio::try_join!(
        store.find_services_in(&message.ranges),
        store.find_health_in(&message.ranges)
    )?;
    let pass = Pass {
        sweep_time: message.started,
        started,
        sweep_id: Some(message.sweep.as_str()),
        window_left: Some((message.deadline - Utc::now()).to_std().unwrap_or_default()),
    };
    let swept = sweep_rows(context, pass, &services, &previous).await?;
    drop((services, previous));
    let marker = ShardMarker {
        shard: message.shard,
        dropped: false,
        checked_by: context.checked_by.clone(),
        finished_at: Utc::now(),
        counters: swept.report.counters(),
    };
    store.record_shard(&message.sweep, &marker).await?;
    if let Some(current) = &current {
        complete_if_last(context, current).await;
    }
    Ok(ShardOutcome::Done {
        report: swept.report,
        recounted: swept.recounted,
    })
}
