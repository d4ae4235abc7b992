//! This process's recent heartbeats, and the one rule that lays them over cached rows.
//!
//! A heartbeat moves one property, `lastHeartbeat`, and at 10,000 instances beating every 30 s it
//! would otherwise empty every cache of the process 333 times a second. So a heartbeat does not bump
//! the write generation: it is recorded here, and every listing (`listing`) and every page rendered
//! from one shows the newer of the cached `lastHeartbeat` and the one recorded here
//! (`HeartbeatsView::newer`). A client therefore still reads its own heartbeat back through the same
//! process at once; heartbeats sent to other processes show within the cache TTL, as every other
//! write of theirs does.
//!
//! What a heartbeat can change besides the timestamp is expiry: a value rendered from a listing that
//! hid (or showed as `expired`) a row a heartbeat revives is stale, and asks its `HeartbeatOverlay`
//! (taken before the listing's rows were read) whether any of its expired rows beat since.
//!
//! Bounded: an entry older than the cache TTL is dropped, because every cached read still served was
//! fetched after it landed and so already holds it (or a newer one). If more than `MAX_ROWS` rows
//! beat within one TTL, the whole record is dropped and the caches with it (`Overflowed`).

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

const MAX_ROWS: usize = 200_000;

/// One heartbeat this process recorded: the time and the text as written.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedHeartbeat {
    pub at: DateTime<Utc>,
    pub text: String,
    seq: u64,
    recorded: Instant,
}

pub struct RecentHeartbeats {
    ttl: Duration,
    by_row: RwLock<ByRow>,
}

/// The record behind the lock: the newest heartbeat per row, numbered in the order recorded.
/// Keyed by partition, then row, so a lookup borrows the caller's keys: a page of 1,000 instances
/// looks up 1,000 rows per answer while heartbeats arrive, and must not allocate for each.
struct ByRow {
    by_partition: HashMap<String, HashMap<String, RecordedHeartbeat>>,
    /// Rows recorded, over every partition.
    len: usize,
    seq: u64,
    prune_at: usize,
}

impl ByRow {
    fn clear(&mut self) {
        self.by_partition.clear();
        self.len = 0;
    }
}

/// The record was full and has been emptied: the caller must invalidate what it patched.
pub struct Overflowed;

/// A read-only view of the record, held for one pass over many rows (one lock, not one per row;
/// shared: answers read it side by side, only a heartbeat's record waits for them).
pub struct HeartbeatsView<'a>(RwLockReadGuard<'a, ByRow>);

impl HeartbeatsView<'_> {
    fn get(&self, partition_key: &str, row_key: &str) -> Option<&RecordedHeartbeat> {
        if self.0.len == 0 {
            return None;
        }
        self.0.by_partition.get(partition_key)?.get(row_key)
    }

    /// This process's heartbeat of the row if it is newer than `known`, the `lastHeartbeat` shown
    /// so far (`None`: absent or unreadable, so any recorded heartbeat is newer).
    pub fn newer(
        &self,
        partition_key: &str,
        row_key: &str,
        known: Option<DateTime<Utc>>,
    ) -> Option<&RecordedHeartbeat> {
        self.get(partition_key, row_key)
            .filter(|heartbeat| known.is_none_or(|known| heartbeat.at > known))
    }

    /// The sequence number of the newest heartbeat recorded (0: none yet).
    fn seq(&self) -> u64 {
        self.0.seq
    }
}

/// A live handle on this process's heartbeats, with the sequence number they stood at when one
/// listing's rows began to be read (not a snapshot): a heartbeat recorded while they are read, or
/// since, is newer than the listing. A rendered page keeps it to write the current heartbeats into
/// its body as it is sent (`view`) and to know when one revived a row it hid (`beat_since`).
#[derive(Clone)]
pub struct HeartbeatOverlay {
    heartbeats: Arc<RecentHeartbeats>,
    seq: u64,
}

impl HeartbeatOverlay {
    pub fn view(&self) -> HeartbeatsView<'_> {
        self.heartbeats.view()
    }

    /// Whether any of `rows` beat after the overlay was taken.
    pub fn beat_since<'a>(&self, mut rows: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        let view = self.view();
        if view.seq() <= self.seq {
            return false;
        }
        rows.any(|(pk, rk)| view.get(pk, rk).is_some_and(|beat| beat.seq > self.seq))
    }
}

impl RecentHeartbeats {
    pub fn new(ttl: Duration) -> Self {
        RecentHeartbeats {
            ttl,
            by_row: RwLock::new(ByRow {
                by_partition: HashMap::new(),
                len: 0,
                seq: 0,
                prune_at: 1024,
            }),
        }
    }

    pub fn view(&self) -> HeartbeatsView<'_> {
        HeartbeatsView(self.by_row.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// An overlay for a listing about to be read (see `HeartbeatOverlay`).
    pub fn overlay(self: &Arc<Self>) -> HeartbeatOverlay {
        HeartbeatOverlay {
            seq: self.view().seq(),
            heartbeats: self.clone(),
        }
    }

    pub fn record(
        &self,
        partition_key: &str,
        row_key: &str,
        at: DateTime<Utc>,
        text: &str,
    ) -> Result<(), Overflowed> {
        if self.ttl.is_zero() {
            // Nothing is cached, so nothing needs patching.
            return Ok(());
        }
        let mut by_row = self.by_row.write().unwrap_or_else(|p| p.into_inner());
        if by_row.len >= by_row.prune_at {
            let ttl = self.ttl;
            by_row.by_partition.retain(|_, rows| {
                rows.retain(|_, beat| beat.recorded.elapsed() < ttl);
                !rows.is_empty()
            });
            by_row.len = by_row.by_partition.values().map(HashMap::len).sum();
            by_row.prune_at = (by_row.len * 2).max(1024);
            if by_row.len >= MAX_ROWS {
                by_row.clear();
                by_row.prune_at = 1024;
                return Err(Overflowed);
            }
        }
        by_row.seq += 1;
        let heartbeat = RecordedHeartbeat {
            at,
            text: text.to_owned(),
            seq: by_row.seq,
            recorded: Instant::now(),
        };
        let by_row = &mut *by_row;
        let rows = by_row
            .by_partition
            .entry(partition_key.to_owned())
            .or_default();
        if rows.insert(row_key.to_owned(), heartbeat).is_none() {
            by_row.len += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        crate::parse_iso(text).unwrap()
    }

    #[test]
    fn records_the_newest_beat_and_says_which_rows_beat_since() {
        let heartbeats = Arc::new(RecentHeartbeats::new(Duration::from_secs(5)));
        assert!(heartbeats.view().get("api", "a").is_none());
        let overlay = heartbeats.overlay();
        let t = "2026-11-25T05:00:00.000Z";
        assert!(heartbeats.record("api", "a", at(t), t).is_ok());
        assert_eq!(heartbeats.view().get("api", "a").unwrap().text, t);
        assert!(overlay.beat_since([("api", "a")].into_iter()));
        assert!(!overlay.beat_since([("api", "b")].into_iter()));
        let later = heartbeats.overlay();
        assert!(!later.beat_since([("api", "a")].into_iter()));
    }

    #[test]
    fn a_recorded_heartbeat_is_newer_only_than_an_older_or_unknown_one() {
        let heartbeats = RecentHeartbeats::new(Duration::from_secs(5));
        let t = "2026-11-25T05:00:00.000Z";
        assert!(heartbeats.record("api", "a", at(t), t).is_ok());
        let view = heartbeats.view();
        assert!(view.newer("api", "a", None).is_some());
        assert!(view
            .newer("api", "a", Some(at("2026-11-25T04:59:59.999Z")))
            .is_some());
        assert!(view.newer("api", "a", Some(at(t))).is_none());
        assert!(view.newer("api", "b", None).is_none());
    }

    #[test]
    fn a_row_beating_again_is_counted_once_and_partitions_are_told_apart() {
        let heartbeats = RecentHeartbeats::new(Duration::from_secs(5));
        let (t1, t2) = ("2026-11-25T05:00:00.000Z", "2026-11-25T05:00:01.000Z");
        assert!(heartbeats.record("api", "a", at(t1), t1).is_ok());
        assert!(heartbeats.record("api", "a", at(t2), t2).is_ok());
        assert!(heartbeats.record("web", "a", at(t1), t1).is_ok());
        let view = heartbeats.view();
        assert_eq!(view.0.len, 2);
        assert_eq!(view.get("api", "a").unwrap().text, t2);
        assert_eq!(view.get("web", "a").unwrap().text, t1);
        assert!(view.get("api", "b").is_none());
        assert!(view.get("db", "a").is_none());
    }

    #[test]
    fn without_a_cache_nothing_is_kept() {
        let heartbeats = RecentHeartbeats::new(Duration::ZERO);
        let t = "2026-11-25T05:00:00.000Z";
        assert!(heartbeats.record("api", "a", at(t), t).is_ok());
        assert!(heartbeats.view().get("api", "a").is_none());
    }

    #[test]
    fn entries_older_than_the_ttl_are_pruned() {
        let heartbeats = RecentHeartbeats::new(Duration::from_nanos(1));
        let t = "2026-11-25T05:00:00.000Z";
        for i in 0..5000 {
            assert!(heartbeats.record("api", &i.to_string(), at(t), t).is_ok());
        }
        assert!(heartbeats.view().0.len < 5000);
    }
}
