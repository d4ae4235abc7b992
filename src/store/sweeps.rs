//! The last sweep's summary: one row, `(~sweep, last)`, in the state table beside the sweep
//! lease, so that what the last sweep did (or why it failed) can be read through the API
//! (`GET /api/Sweep`) instead of only from the logs.
//!
//! Every sweep that ran writes it when it ends, succeeded or failed, whoever triggered it; the last
//! writer wins. `~sweep` can never be a service type (types start with a letter or digit), so the
//! row never meets a registration: discovery never joins it, and the sweep leaves it alone like
//! every row whose keys do not parse (the lease row among them). That matters for a row an older
//! version left in HealthStatus, where this row used to live: nothing reads it there any more, and
//! an operator may delete it.
//!
//! Properties: `outcome` (`succeeded` or `failed`), `startedAt` and `finishedAt` (String (time)),
//! `checkedBy`, `trigger` (`invocation` or `schedule`), `tick` (String (time), schedule only),
//! `error` (failed only, redacted), and each counter of the sweep's summary under its summary-line
//! name (`probed`, `duration_ms`, …; Int64, succeeded only). Which counters there are is the health
//! module's business: this file stores the names it is given.

use super::error::is_row_missing;
use super::properties::{integer, put_int64, put_text, string};
use super::shards::{fanout_from, put_fanout, FanoutRecord};
use super::{Store, StoreError};
use serde_json::{json, Map, Value};

const SWEEP_PARTITION: &str = "~sweep";
const SWEEP_ROW: &str = "last";

/// The last sweep as stored. Times are ISO-8601 UTC text with milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRecord {
    pub started_at: String,
    pub finished_at: String,
    pub checked_by: String,
    /// The scheduled occurrence this process's timer swept; `None` for a sweep an invocation
    /// triggered.
    pub tick: Option<String>,
    /// The summary's counters by name, or why the sweep failed (redacted).
    pub result: Result<Vec<(String, u64)>, String>,
    /// A fanned-out sweep's shards and who probed them; `None` for an in-process sweep.
    pub fanout: Option<FanoutRecord>,
}

impl Store {
    /// Replaces the summary row with this sweep's.
    pub async fn record_sweep(&self, record: &SweepRecord) -> Result<(), StoreError> {
        self.within_budget(async {
            // A sweep may have failed because a table vanished: this recreates it.
            self.ensure_tables().await?;
            self.state
                .partition_key_client(SWEEP_PARTITION)
                .entity_client(SWEEP_ROW)
                .insert_or_replace(to_entity(record))?
                .await?;
            Ok(())
        })
        .await
    }

    /// The last sweep's summary, with the counters of these names; `None` before the first sweep
    /// that ran. A point read, never cached: it is read rarely and should be current.
    pub async fn last_sweep(&self, counters: &[&str]) -> Result<Option<SweepRecord>, StoreError> {
        self.within_budget(async {
            self.ensure_tables().await?;
            let entity = self
                .state
                .partition_key_client(SWEEP_PARTITION)
                .entity_client(SWEEP_ROW);
            match entity.get::<Map<String, Value>>().await {
                Ok(found) => Ok(Some(from_entity(&found.entity, counters))),
                Err(e) if is_row_missing(&e) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }
}

fn to_entity(record: &SweepRecord) -> Value {
    let mut entity = json!({
        "PartitionKey": SWEEP_PARTITION,
        "RowKey": SWEEP_ROW,
        "outcome": if record.result.is_ok() { "succeeded" } else { "failed" },
        "startedAt": record.started_at,
        "finishedAt": record.finished_at,
        "checkedBy": record.checked_by,
        "trigger": if record.tick.is_some() { "schedule" } else { "invocation" },
    });
    let row = entity.as_object_mut().expect("a JSON object literal");
    if let Some(tick) = &record.tick {
        put_text(row, "tick", tick);
    }
    match &record.result {
        Ok(counters) => {
            for (name, n) in counters {
                put_int64(row, name, *n);
            }
        }
        Err(reason) => put_text(row, "error", reason),
    }
    if let Some(fanout) = &record.fanout {
        put_fanout(row, fanout);
    }
    entity
}

/// Read tolerantly, like every row: a counter missing or unreadable is left out.
fn from_entity(entity: &Map<String, Value>, counters: &[&str]) -> SweepRecord {
    let text = |name: &str| string(entity, name).unwrap_or_default();
    let result = if text("outcome") == "succeeded" {
        Ok(counters
            .iter()
            .filter_map(|name| {
                let n = u64::try_from(integer(entity, name)?).ok()?;
                Some(((*name).to_owned(), n))
            })
            .collect())
    } else {
        Err(string(entity, "error").unwrap_or_default())
    };
    SweepRecord {
        started_at: text("startedAt"),
        finished_at: text("finishedAt"),
        checked_by: text("checkedBy"),
        tick: string(entity, "tick").filter(|_| text("trigger") == "schedule"),
        result,
        fanout: fanout_from(entity),
    }
}

#[cfg(test)]
mod tests {
    use super::super::shards::ProcessShare;
    use super::*;

    const COUNTERS: &[&str] = &["probed", "duration_ms"];

    #[test]
    fn a_succeeded_sweep_round_trips_with_int64_counters() {
        let record = SweepRecord {
            started_at: "2026-11-25T09:15:00.000Z".into(),
            finished_at: "2026-11-25T09:15:00.087Z".into(),
            checked_by: "replica-1".into(),
            tick: Some("2026-11-25T09:15:00.000Z".into()),
            result: Ok(vec![("probed".into(), 4), ("duration_ms".into(), 87)]),
            fanout: None,
        };
        let entity = to_entity(&record);
        assert_eq!(entity["probed"], "4");
        assert_eq!(entity["duration_ms@odata.type"], "Edm.Int64");
        assert_eq!(
            (entity["outcome"].as_str(), entity["trigger"].as_str()),
            (Some("succeeded"), Some("schedule"))
        );
        assert!(entity.get("error").is_none());
        assert_eq!(from_entity(entity.as_object().unwrap(), COUNTERS), record);
        // A counter the reader asks for but the row lacks is left out, not made up.
        let read = from_entity(entity.as_object().unwrap(), &["probed", "refused"]);
        assert_eq!(read.result, Ok(vec![("probed".into(), 4)]));
    }

    #[test]
    fn a_failed_sweep_has_its_reason_and_no_counters() {
        let record = SweepRecord {
            started_at: "2026-11-25T09:15:00.000Z".into(),
            finished_at: "2026-11-25T09:15:10.000Z".into(),
            checked_by: "handler".into(),
            tick: None,
            result: Err("storage unavailable: no answer from storage within 10000 ms".into()),
            fanout: None,
        };
        let entity = to_entity(&record);
        assert_eq!(
            (entity["outcome"].as_str(), entity["trigger"].as_str()),
            (Some("failed"), Some("invocation"))
        );
        assert!(entity.get("probed").is_none() && entity.get("tick").is_none());
        assert_eq!(from_entity(entity.as_object().unwrap(), COUNTERS), record);
    }

    #[test]
    fn a_fanned_out_sweep_keeps_its_shards_and_shares() {
        let record = SweepRecord {
            started_at: "2026-11-25T09:15:00.000Z".into(),
            finished_at: "2026-11-25T09:16:10.000Z".into(),
            checked_by: "replica-1".into(),
            tick: None,
            result: Ok(vec![("probed".into(), 500)]),
            fanout: Some(FanoutRecord {
                sweep_id: "20261125T091500000Z-0001".into(),
                deadline: "2026-11-25T09:20:00.000Z".into(),
                shards: 2,
                shards_done: 2,
                shards_dropped: 0,
                finished: true,
                in_window: true,
                by_process: vec![ProcessShare {
                    process: "replica-2".into(),
                    shards: 2,
                    probed: 500,
                }],
            }),
        };
        let entity = to_entity(&record);
        assert_eq!(entity["shardsDone@odata.type"], "Edm.Int64");
        assert_eq!(entity["finishedInWindow"], true);
        assert_eq!(
            entity["byProcess"],
            r#"[{"process":"replica-2","shards":2,"probed":500}]"#
        );
        assert_eq!(
            from_entity(entity.as_object().unwrap(), &["probed"]),
            record
        );
    }
}
