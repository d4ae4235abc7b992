//! The fanned-out sweep's rows in the state table, and the reads a shard makes.
//!
//! - `(~sweep, current)`: the sweep the last tick started (`sweepId`, `startedAt`, `deadline`,
//!   `shards`, `services`, `startedBy`). A worker compares a shard's sweep with it: a shard of an
//!   older sweep is stale.
//! - `(~shards-<sweepId>, <shard>)`: one marker per shard that ended (`outcome` `done` or
//!   `dropped`, `checkedBy`, `finishedAt`, and the shard's counters under the summary's names,
//!   Int64). Insert-or-replace: a shard run twice writes the same row twice, and no two workers
//!   ever contend on one row (a shared counter would, with ETags, at every shard).
//!
//! `~` can never start a service type, so none of these rows meets a registration. Which counters
//! there are is the health module's business: this file stores the names it is given.
//!
//! The reads: the registry's keys only (`$select=PartitionKey,RowKey`: a tick never holds whole
//! rows), and a shard's rows of both tables, one range query per key range, past the read cache
//! (a shard's rows are read once, and caching thousands of ranges would only hold memory).

use super::error::is_row_missing;
use super::filter::range_filter;
use super::properties::{integer, put_int64, put_text, string};
use super::{HealthByKey, HealthRecord, ServiceRecord, Store, StoreError};
use crate::domain::{KeyRange, SweepId};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

const SWEEP_PARTITION: &str = "~sweep";
const CURRENT_ROW: &str = "current";
const MARKER_PREFIX: &str = "~shards-";
/// Range reads of one shard at once.
const RANGE_READS: usize = 8;

/// The sweep a tick started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSweep {
    pub id: SweepId,
    pub started_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub shards: u32,
    pub services: u64,
    pub started_by: String,
    /// The scheduled occurrence that started it (standalone timer); `None`: an invocation.
    pub tick: Option<String>,
}

/// One shard that ended, as its marker row holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMarker {
    pub shard: u32,
    /// Dropped (its window was over when it arrived) rather than probed.
    pub dropped: bool,
    pub checked_by: String,
    pub finished_at: DateTime<Utc>,
    /// The shard's counters by name.
    pub counters: Vec<(String, u64)>,
}

/// What the `(~sweep, last)` row adds for a fanned-out sweep (written by the worker that ends its
/// last shard, or by the next tick for a sweep that did not finish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutRecord {
    pub sweep_id: String,
    /// The end of the sweep's window.
    pub deadline: String,
    pub shards: u64,
    pub shards_done: u64,
    pub shards_dropped: u64,
    /// Every shard ended (done or dropped).
    pub finished: bool,
    /// Finished, none dropped, and the last shard ended before the deadline.
    pub in_window: bool,
    /// Who did the work: shards and services probed per process.
    pub by_process: Vec<ProcessShare>,
}

/// One process's part of a fanned-out sweep.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessShare {
    pub process: String,
    pub shards: u64,
    pub probed: u64,
}

/// The fan-out's properties on the summary row.
pub(super) fn put_fanout(row: &mut Map<String, Value>, fanout: &FanoutRecord) {
    put_text(row, "sweepId", &fanout.sweep_id);
    put_text(row, "deadline", &fanout.deadline);
    put_int64(row, "shards", fanout.shards);
    put_int64(row, "shardsDone", fanout.shards_done);
    put_int64(row, "shardsDropped", fanout.shards_dropped);
    row.insert("finished".into(), fanout.finished.into());
    row.insert("finishedInWindow".into(), fanout.in_window.into());
    let shares = serde_json::to_string(&fanout.by_process).expect("shares serialise");
    put_text(row, "byProcess", &shares);
}

/// The fan-out's properties read back; `None` for an in-process sweep's row.
pub(super) fn fanout_from(entity: &Map<String, Value>) -> Option<FanoutRecord> {
    let count = |name: &str| integer(entity, name).and_then(|n| u64::try_from(n).ok());
    let flag = |name: &str| entity.get(name).and_then(Value::as_bool).unwrap_or(false);
    Some(FanoutRecord {
        sweep_id: string(entity, "sweepId")?,
        deadline: string(entity, "deadline").unwrap_or_default(),
        shards: count("shards")?,
        shards_done: count("shardsDone").unwrap_or(0),
        shards_dropped: count("shardsDropped").unwrap_or(0),
        finished: flag("finished"),
        in_window: flag("finishedInWindow"),
        by_process: string(entity, "byProcess")
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
    })
}

impl Store {
    /// The registry's keys, sorted: all a tick needs to cut shards.
    pub async fn registry_keys(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut keys: Vec<KeyRow> = self
            .with_tables(|| async {
                let pages = self
                    .registry
                    .query()
                    .select("PartitionKey,RowKey")
                    .into_stream::<KeyRow>();
                let mut pages = std::pin::pin!(pages);
                let mut rows = Vec::new();
                while let Some(page) = self
                    .within_budget(async { Ok(pages.next().await.transpose()?) })
                    .await?
                {
                    rows.extend(page.entities);
                }
                Ok(rows)
            })
            .await?;
        keys.sort_unstable();
        Ok(keys
            .into_iter()
            .map(|k| (k.partition_key, k.row_key))
            .collect())
    }

    /// The registry rows in a shard's ranges, in key order, read from storage (not the cache).
    pub async fn find_services_in(
        &self,
        ranges: &[KeyRange],
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let mut rows: Vec<ServiceRecord> = self.find_in(|s| &s.registry, ranges).await?;
        rows.sort_unstable_by(|a, b| {
            (&a.partition_key, &a.row_key).cmp(&(&b.partition_key, &b.row_key))
        });
        Ok(rows)
    }

    /// The health rows in a shard's ranges, read from storage (not the cache).
    pub async fn find_health_in(&self, ranges: &[KeyRange]) -> Result<HealthByKey, StoreError> {
        let rows: Vec<HealthRecord> = self.find_in(|s| &s.health, ranges).await?;
        Ok(HealthByKey::new(rows))
    }

    async fn find_in<T: super::query::FromEntity>(
        &self,
        table: fn(&Store) -> &azure_data_tables::prelude::TableClient,
        ranges: &[KeyRange],
    ) -> Result<Vec<T>, StoreError> {
        let reads: Vec<_> = ranges
            .iter()
            .map(|range| async move { self.find(table(self), Some(&range_filter(range))).await })
            .collect();
        let pages: Vec<Vec<T>> = futures::stream::iter(reads)
            .buffer_unordered(RANGE_READS)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Records the sweep a tick starts; it replaces the one before.
    pub async fn start_sweep(&self, sweep: &CurrentSweep) -> Result<(), StoreError> {
        let row = json!({
            "PartitionKey": SWEEP_PARTITION,
            "RowKey": CURRENT_ROW,
            "sweepId": sweep.id.as_str(),
            "startedAt": crate::iso(sweep.started_at),
            "deadline": crate::iso(sweep.deadline),
            "startedBy": sweep.started_by,
        });
        let tick = sweep.tick.clone();
        let mut row = row;
        let map = row.as_object_mut().expect("a JSON object literal");
        put_int64(map, "shards", u64::from(sweep.shards));
        put_int64(map, "services", sweep.services);
        if let Some(tick) = &tick {
            put_text(map, "tick", tick);
        }
        self.within_budget(async {
            self.ensure_tables().await?;
            self.state
                .partition_key_client(SWEEP_PARTITION)
                .entity_client(CURRENT_ROW)
                .insert_or_replace(row)?
                .await?;
            Ok(())
        })
        .await
    }

    /// The sweep the last tick started; `None` before the first fanned-out tick (or when the row
    /// cannot be read as one).
    pub async fn current_sweep(&self) -> Result<Option<CurrentSweep>, StoreError> {
        self.within_budget(async {
            self.ensure_tables().await?;
            let entity = self
                .state
                .partition_key_client(SWEEP_PARTITION)
                .entity_client(CURRENT_ROW);
            match entity.get::<Map<String, Value>>().await {
                Ok(found) => Ok(current_from(&found.entity)),
                Err(e) if is_row_missing(&e) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Records that a shard ended (insert or replace: a shard run twice writes the same row).
    pub async fn record_shard(
        &self,
        sweep: &SweepId,
        marker: &ShardMarker,
    ) -> Result<(), StoreError> {
        let partition = marker_partition(sweep);
        let mut row = json!({
            "PartitionKey": partition,
            "RowKey": marker_row(marker.shard),
            "outcome": if marker.dropped { "dropped" } else { "done" },
            "checkedBy": marker.checked_by,
            "finishedAt": crate::iso(marker.finished_at),
        });
        let map = row.as_object_mut().expect("a JSON object literal");
        put_int64(map, "shard", u64::from(marker.shard));
        for (name, n) in &marker.counters {
            put_int64(map, name, *n);
        }
        self.within_budget(async {
            self.ensure_tables().await?;
            self.state
                .partition_key_client(partition.as_str())
                .entity_client(marker_row(marker.shard))
                .insert_or_replace(row)?
                .await?;
            Ok(())
        })
        .await
    }

    /// Every marker of a sweep, with the counters of these names.
    pub async fn shard_markers(
        &self,
        sweep: &SweepId,
        counters: &[&str],
    ) -> Result<Vec<ShardMarker>, StoreError> {
        let filter = format!("PartitionKey eq '{}'", marker_partition(sweep));
        let rows: Vec<MarkerRow> = self.find(&self.state, Some(&filter)).await?;
        Ok(rows
            .iter()
            .filter_map(|MarkerRow(row)| marker_from(row, counters))
            .collect())
    }

    /// Deletes a summarised sweep's markers, 100 to a transaction. Best effort for the caller: a
    /// leftover marker is a few bytes nobody reads again.
    pub async fn forget_shards(&self, sweep: &SweepId, shards: &[u32]) -> Result<(), StoreError> {
        let partition = marker_partition(sweep);
        for chunk in shards.chunks(100) {
            self.within_budget(async {
                let mut transaction = self
                    .state
                    .partition_key_client(partition.as_str())
                    .transaction();
                for shard in chunk {
                    transaction = transaction.delete(marker_row(*shard), None)?;
                }
                transaction.await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

fn marker_partition(sweep: &SweepId) -> String {
    format!("{MARKER_PREFIX}{sweep}")
}

/// Zero-padded, so markers list in shard order.
fn marker_row(shard: u32) -> String {
    format!("{shard:06}")
}

fn time(entity: &Map<String, Value>, name: &str) -> Option<DateTime<Utc>> {
    string(entity, name).as_deref().and_then(crate::parse_iso)
}

fn current_from(entity: &Map<String, Value>) -> Option<CurrentSweep> {
    Some(CurrentSweep {
        id: SweepId::parse(&string(entity, "sweepId")?).ok()?,
        started_at: time(entity, "startedAt")?,
        deadline: time(entity, "deadline")?,
        shards: u32::try_from(integer(entity, "shards")?).ok()?,
        services: u64::try_from(integer(entity, "services")?).ok()?,
        started_by: string(entity, "startedBy").unwrap_or_default(),
        tick: string(entity, "tick"),
    })
}

fn marker_from(entity: &Map<String, Value>, counters: &[&str]) -> Option<ShardMarker> {
    Some(ShardMarker {
        shard: u32::try_from(integer(entity, "shard")?).ok()?,
        dropped: string(entity, "outcome")? == "dropped",
        checked_by: string(entity, "checkedBy").unwrap_or_default(),
        finished_at: time(entity, "finishedAt")?,
        counters: counters
            .iter()
            .filter_map(|name| {
                let n = u64::try_from(integer(entity, name)?).ok()?;
                Some(((*name).to_owned(), n))
            })
            .collect(),
    })
}

/// A registry row's keys, as a keys-only page holds them.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
struct KeyRow {
    #[serde(rename = "PartitionKey")]
    partition_key: String,
    #[serde(rename = "RowKey")]
    row_key: String,
}

/// A marker row as read.
struct MarkerRow(Map<String, Value>);

impl super::query::FromEntity for MarkerRow {
    fn from_entity(entity: &Map<String, Value>) -> Self {
        MarkerRow(entity.clone())
    }

    fn row_key(&self) -> &str {
        self.0.get("RowKey").and_then(Value::as_str).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_marker_round_trips_with_its_counters() {
        let sweep = SweepId::parse("20261207T105500000Z-00ab").unwrap();
        assert_eq!(marker_partition(&sweep), "~shards-20261207T105500000Z-00ab");
        assert_eq!(marker_row(12), "000012");
        let finished = Utc.with_ymd_and_hms(2026, 12, 7, 10, 56, 0).unwrap();
        let mut row = json!({
            "outcome": "done", "checkedBy": "replica-1", "finishedAt": crate::iso(finished),
        });
        let map = row.as_object_mut().unwrap();
        put_int64(map, "shard", 12);
        put_int64(map, "probed", 250);
        put_text(map, "unrelated", "x");
        let marker = marker_from(map, &["probed", "healthy"]).unwrap();
        assert_eq!(
            marker,
            ShardMarker {
                shard: 12,
                dropped: false,
                checked_by: "replica-1".into(),
                finished_at: finished,
                counters: vec![("probed".into(), 250)],
            }
        );
    }
}
