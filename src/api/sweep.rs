//! `Sweep`: GET what the last HealthMonitor sweep did, as stored in its `(~sweep, last)` row: the
//! summary's counters (or why it failed), when it started and ended, who swept and what triggered
//! it. The answer an operator wants before reading logs: is the monitor running, and what did it see.
//! For admins, like the manual sweep.

use super::openapi::{Forbidden, InternalError, StorageUnavailable, Unauthorized};
use super::AppState;
use crate::error::ApiResult;
use crate::health::SweepReport;
use crate::security::Caller;
use crate::store::{FanoutRecord, SweepRecord};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SweepStatus {
    /// `null` until a sweep has run against these tables.
    #[schema(required = true)]
    last_sweep: Option<LastSweep>,
    /// The last health-change transitions the sweeps recorded (at most 100), newest first: status
    /// changes, first verdicts, expiry removals and deregistrations.
    recent_transitions: Vec<RecentTransition>,
}

/// One transition, as its CloudEvent says it (`docs/events.md`).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RecentTransition {
    /// When it happened: the start of the sweep that recorded it, or the deregistration.
    time: String,
    /// `serviceType:serviceName`, or `serviceType:serviceName/instanceId`.
    subject: String,
    /// `registry.health.changed`, `registry.instance.registered`, `registry.instance.deregistered`
    /// or `registry.instance.expired`.
    #[serde(rename = "type")]
    kind: String,
    /// `healthy`, `degraded`, `unhealthy`, `unknown` or `absent` (not registered).
    from: String,
    to: String,
    reason: String,
    /// The event's id, as published.
    #[serde(default)]
    id: String,
}

/// The last sweep that ran, whichever process ran it. Times are ISO-8601 UTC text with
/// milliseconds, like every time in the tables.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LastSweep {
    outcome: LastSweepOutcome,
    /// When the sweep started: every circuit transition it recorded is dated at this instant.
    started_at: String,
    /// When it ended (failed or not).
    finished_at: String,
    /// The process that swept (`WEBSITE_INSTANCE_ID`, `CONTAINER_APP_REPLICA_NAME`, `HOSTNAME`, else
    /// `handler`), as in the health rows' `checkedBy`.
    checked_by: String,
    trigger: LastSweepTrigger,
    /// The timer occurrence swept, for `trigger` `schedule` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    tick: Option<String>,
    /// The summary line's counters, for a sweep that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    counters: Option<SweepReport>,
    /// Why the sweep failed (what its `Logs` say, secrets redacted), for a sweep that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<String>,
    /// A sweep fanned out over the shard queue (`SWEEP_QUEUE`): its shards and who probed them.
    /// Absent for a sweep that ran in one process.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    fanout: Option<FanoutSweep>,
}

/// A fanned-out sweep's shards. `counters` then sum its shards (`duration_ms`: from the sweep's
/// start to its last shard's end); a sweep summarised at the next tick with shards still out has
/// `finished` false.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FanoutSweep {
    sweep_id: String,
    /// The end of the sweep's window (its start plus the schedule's interval).
    deadline: String,
    shards: u64,
    shards_done: u64,
    /// Shards that arrived after the window ended: not probed.
    shards_dropped: u64,
    /// Every shard ended (done or dropped).
    finished: bool,
    /// Finished with none dropped, the last shard ending before the deadline.
    finished_in_window: bool,
    /// Shards and services probed per process (`checkedBy` names).
    by_process: Vec<ProcessCount>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProcessCount {
    process: String,
    shards: u64,
    probed: u64,
}

impl From<FanoutRecord> for FanoutSweep {
    fn from(f: FanoutRecord) -> Self {
        FanoutSweep {
            sweep_id: f.sweep_id,
            deadline: f.deadline,
            shards: f.shards,
            shards_done: f.shards_done,
            shards_dropped: f.shards_dropped,
            finished: f.finished,
            finished_in_window: f.in_window,
            by_process: f
                .by_process
                .into_iter()
                .map(|p| ProcessCount {
                    process: p.process,
                    shards: p.shards,
                    probed: p.probed,
                })
                .collect(),
        }
    }
}

// Named apart from `health::SweepOutcome` (did a trigger sweep at all); its schema keeps its name.
/// Whether the sweep ran to its end.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SweepOutcome)]
enum LastSweepOutcome {
    /// Every due service was probed (or left for the next sweep by the deadline) and every verdict
    /// written: `counters` holds the summary.
    Succeeded,
    /// Storage failed the sweep part-way (`error` says why); what it wrote before stays written.
    Failed,
}

/// What started the sweep: `invocation`, a timer envelope (`POST /HealthMonitor`: the Functions
/// host's timer, or a manual run); `schedule`, this process's own timer (standalone mode), for the
/// occurrence in `tick`.
// Named apart from `health::SweepTrigger` (the runtime trigger, with its tick); its schema keeps
// its name.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SweepTrigger)]
enum LastSweepTrigger {
    Invocation,
    Schedule,
}

impl From<SweepRecord> for LastSweep {
    fn from(record: SweepRecord) -> Self {
        let (outcome, counters, error) = match record.result {
            Ok(counters) => (
                LastSweepOutcome::Succeeded,
                SweepReport::from_counters(&counters),
                None,
            ),
            Err(reason) => (LastSweepOutcome::Failed, None, Some(reason)),
        };
        LastSweep {
            outcome,
            started_at: record.started_at,
            finished_at: record.finished_at,
            checked_by: record.checked_by,
            trigger: match record.tick {
                Some(_) => LastSweepTrigger::Schedule,
                None => LastSweepTrigger::Invocation,
            },
            tick: record.tick,
            counters,
            error,
            fanout: record.fanout.map(FanoutSweep::from),
        }
    }
}

/// An admin's question, like the manual sweep: the summary counts every service, whatever scope a
/// reader is limited to.
#[utoipa::path(
    get,
    path = "/api/Sweep",
    tag = "operations",
    operation_id = "lastSweep",
    summary = "What the last health sweep did, or why it failed",
    responses(
        (status = 200, description = "The last sweep that ran (whichever process ran it).", body = SweepStatus),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
        (status = 503, response = StorageUnavailable),
    ),
)]
pub async fn last_sweep(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SweepStatus>> {
    caller.may_administer()?;
    let (record, recent) = tokio::try_join!(
        state.store.last_sweep(SweepReport::COUNTERS),
        state.store.recent_transitions()
    )?;
    Ok(Json(SweepStatus {
        last_sweep: record.map(LastSweep::from),
        // Read tolerantly: an entry this version cannot read is left out.
        recent_transitions: recent
            .into_iter()
            .filter_map(|entry| serde_json::from_value(entry).ok())
            .collect(),
    }))
}
