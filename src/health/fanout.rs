//! A fanned-out sweep's summary: what its shards' markers add up to, written to the
//! `(~sweep, last)` row that `GET /api/Sweep` reads, either by the worker whose shard was the last
//! to end (`complete_if_last`) or, for a sweep that never finished, by the next tick
//! (`summarise_previous`), which reports it as unfinished.

use super::monitor::SweepContext;
use super::SweepReport;
use crate::store::{
    CurrentSweep, FanoutRecord, ProcessShare, ShardMarker, StoreError, SweepRecord,
};
use std::collections::BTreeMap;

/// After a shard's marker is written: if every shard of `current` has now ended, write the
/// summary. Never fails the shard (its work is recorded): a failure here is logged, and the next
/// tick writes the summary instead.
pub(super) async fn complete_if_last(context: &SweepContext, current: &CurrentSweep) {
    let result = async {
        let markers = context
            .store
            .shard_markers(&current.id, SweepReport::COUNTERS)
            .await?;
        if markers.len() < current.shards as usize {
            return Ok::<_, StoreError>(());
        }
        let record = summarise(current, &markers);
        context.store.record_sweep(&record).await?;
        log_summary(&record);
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(function = "ProbeShard", sweep = %current.id, error = %e,
            "could not check or write the sweep's summary; the next tick writes it");
    }
}

/// At a tick, before a new sweep starts: the previous one's summary, unless it was written
/// already (every shard ended). A sweep with shards still out is reported as unfinished. Its
/// markers are deleted afterwards: nothing reads them once it is summarised.
pub(super) async fn summarise_previous(
    context: &SweepContext,
    previous: &CurrentSweep,
) -> Result<(), StoreError> {
    let store = &context.store;
    let markers = store
        .shard_markers(&previous.id, SweepReport::COUNTERS)
        .await?;
    let written = store
        .last_sweep(&[])
        .await?
        .and_then(|last| last.fanout)
        .is_some_and(|f| f.sweep_id == previous.id.as_str());
    if !written {
        let record = summarise(previous, &markers);
        store.record_sweep(&record).await?;
        log_summary(&record);
    }
    let shards: Vec<u32> = markers.iter().map(|m| m.shard).collect();
    if let Err(e) = store.forget_shards(&previous.id, &shards).await {
        tracing::warn!(sweep = %previous.id, error = %e, "could not delete a summarised sweep's shard markers");
    }
    Ok(())
}

fn log_summary(record: &SweepRecord) {
    let Some(fanout) = &record.fanout else { return };
    tracing::info!(
        function = "HealthMonitor",
        sweep = %fanout.sweep_id,
        shards = fanout.shards,
        shards_done = fanout.shards_done,
        shards_dropped = fanout.shards_dropped,
        finished = fanout.finished,
        finished_in_window = fanout.in_window,
        processes = fanout.by_process.len(),
        "fanned-out sweep summarised"
    );
}

/// What a sweep's markers add up to: the summary's counters summed over the shards that ran
/// (`duration_ms`: from the sweep's start to the last shard's end), shards done and dropped, who
/// ran them, and whether the sweep finished inside its window.
pub(super) fn summarise(current: &CurrentSweep, markers: &[ShardMarker]) -> SweepRecord {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut shares: BTreeMap<&str, ProcessShare> = BTreeMap::new();
    for marker in markers {
        let share = shares
            .entry(&marker.checked_by)
            .or_insert_with(|| ProcessShare {
                process: marker.checked_by.clone(),
                shards: 0,
                probed: 0,
            });
        share.shards += 1;
        for (name, n) in &marker.counters {
            *totals.entry(name).or_default() += n;
            if name == "probed" {
                share.probed += n;
            }
        }
    }
    let last_end = markers
        .iter()
        .map(|m| m.finished_at)
        .max()
        .unwrap_or(current.started_at);
    let duration_ms = (last_end - current.started_at).num_milliseconds().max(0) as u64;
    let counters = SweepReport::COUNTERS
        .iter()
        .map(|name| {
            let n = match *name {
                "duration_ms" => duration_ms,
                name => totals.get(name).copied().unwrap_or(0),
            };
            ((*name).to_owned(), n)
        })
        .collect();
    let dropped = markers.iter().filter(|m| m.dropped).count() as u64;
    let ended = markers.len() as u64;
    let finished = ended >= u64::from(current.shards);
    SweepRecord {
        started_at: crate::iso(current.started_at),
        finished_at: crate::iso(last_end),
        checked_by: current.started_by.clone(),
        tick: current.tick.clone(),
        result: Ok(counters),
        fanout: Some(FanoutRecord {
            sweep_id: current.id.to_string(),
            deadline: crate::iso(current.deadline),
            shards: u64::from(current.shards),
            shards_done: ended - dropped,
            shards_dropped: dropped,
            finished,
            in_window: finished && dropped == 0 && last_end <= current.deadline,
            by_process: shares.into_values().collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SweepId;
    use chrono::{Duration, TimeZone, Utc};

    fn marker(shard: u32, by: &str, after_s: i64, probed: u64, dropped: bool) -> ShardMarker {
        let start = Utc.with_ymd_and_hms(2026, 12, 7, 10, 55, 0).unwrap();
        ShardMarker {
            shard,
            dropped,
            checked_by: by.into(),
            finished_at: start + Duration::seconds(after_s),
            counters: if dropped {
                Vec::new()
            } else {
                vec![
                    ("probed".into(), probed),
                    ("healthy".into(), probed - 1),
                    ("unhealthy".into(), 1),
                    ("duration_ms".into(), 999),
                ]
            },
        }
    }

    fn sweep(shards: u32) -> CurrentSweep {
        let start = Utc.with_ymd_and_hms(2026, 12, 7, 10, 55, 0).unwrap();
        CurrentSweep {
            id: SweepId::new(start, 1),
            started_at: start,
            deadline: start + Duration::minutes(5),
            shards,
            services: 1000,
            started_by: "a".into(),
            tick: None,
        }
    }

    fn counter(record: &SweepRecord, name: &str) -> u64 {
        let counters = record.result.as_ref().unwrap();
        counters.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn a_finished_sweep_sums_its_shards_and_says_who_did_them() {
        let markers = [
            marker(0, "a", 30, 250, false),
            marker(1, "b", 40, 250, false),
            marker(2, "b", 61, 200, false),
        ];
        let record = summarise(&sweep(3), &markers);
        assert_eq!(counter(&record, "probed"), 700);
        assert_eq!(counter(&record, "healthy"), 697);
        assert_eq!(counter(&record, "duration_ms"), 61_000);
        assert_eq!(record.finished_at, "2026-12-07T10:56:01.000Z");
        let fanout = record.fanout.unwrap();
        assert_eq!((fanout.shards_done, fanout.shards_dropped), (3, 0));
        assert!(fanout.finished && fanout.in_window);
        assert_eq!(
            fanout.by_process,
            vec![
                ProcessShare {
                    process: "a".into(),
                    shards: 1,
                    probed: 250
                },
                ProcessShare {
                    process: "b".into(),
                    shards: 2,
                    probed: 450
                },
            ]
        );
    }

    #[test]
    fn a_sweep_with_shards_out_or_dropped_did_not_finish_in_its_window() {
        let record = summarise(&sweep(3), &[marker(0, "a", 30, 250, false)]);
        let fanout = record.fanout.unwrap();
        assert!(!fanout.finished && !fanout.in_window);
        assert_eq!(fanout.shards_done, 1);
        let record = summarise(
            &sweep(2),
            &[marker(0, "a", 30, 250, false), marker(1, "b", 301, 0, true)],
        );
        let fanout = record.fanout.unwrap();
        assert!(fanout.finished && !fanout.in_window);
        assert_eq!((fanout.shards_done, fanout.shards_dropped), (1, 1));
        let late = summarise(&sweep(1), &[marker(0, "a", 301, 250, false)]);
        assert!(!late.fanout.unwrap().in_window);
        let none = summarise(&sweep(0), &[]);
        assert!(none.fanout.as_ref().unwrap().in_window);
        assert_eq!(counter(&none, "duration_ms"), 0);
    }
}
