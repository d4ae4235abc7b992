//! This process's heartbeats, kept beside its cached reads instead of invalidating them.
//!
//! A heartbeat moves one property, `lastHeartbeat`, and at 10,000 instances beating every 30 s it
//! would otherwise empty every cache of the process 333 times a second. So a heartbeat does not bump
//! the write generation: it is recorded here, and whoever joins cached rows (`api::listing`) reads
//! the newer of the cached `lastHeartbeat` and the one recorded here. A client therefore still reads
//! its own heartbeat back through the same process at once; heartbeats sent to other processes show
//! within the cache TTL, as every other write of theirs does.
//!
//! What a heartbeat can change besides the timestamp is expiry: a rendered page that hid (or showed
//! as `expired`) a row a heartbeat revives is stale, and asks `beaten_since` for its expired rows.
//!
//! Bounded: an entry older than the cache TTL is dropped, because every cached read still served was
//! fetched after it landed and so already holds it (or a newer one). If more than `MAX_ROWS` rows
//! beat within one TTL, the whole record is dropped and the caches with it (`Overflowed`).

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_ROWS: usize = 200_000;

/// One recorded heartbeat: the time and the text as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    pub at: DateTime<Utc>,
    pub text: String,
    seq: u64,
    recorded: Instant,
}

type RowKey = (String, String);

pub struct Beats {
    ttl: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    rows: HashMap<RowKey, Beat>,
    seq: u64,
    prune_at: usize,
}

/// The record was full and has been emptied: the caller must invalidate what it patched.
pub struct Overflowed;

/// A read-only view of the record, held for one pass over many rows (one lock, not one per row).
pub struct BeatsView<'a>(std::sync::MutexGuard<'a, Inner>);

impl BeatsView<'_> {
    pub fn get(&self, partition_key: &str, row_key: &str) -> Option<&Beat> {
        if self.0.rows.is_empty() {
            return None;
        }
        self.0
            .rows
            .get(&(partition_key.to_owned(), row_key.to_owned()))
    }

    /// The sequence number of the newest heartbeat recorded (0: none yet).
    pub fn seq(&self) -> u64 {
        self.0.seq
    }
}

impl Beats {
    pub fn new(ttl: Duration) -> Self {
        Beats {
            ttl,
            inner: Mutex::new(Inner {
                rows: HashMap::new(),
                seq: 0,
                prune_at: 1024,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self) -> BeatsView<'_> {
        BeatsView(self.lock())
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
        let mut inner = self.lock();
        if inner.rows.len() >= inner.prune_at {
            let ttl = self.ttl;
            inner.rows.retain(|_, beat| beat.recorded.elapsed() < ttl);
            inner.prune_at = (inner.rows.len() * 2).max(1024);
            if inner.rows.len() >= MAX_ROWS {
                inner.rows.clear();
                inner.prune_at = 1024;
                return Err(Overflowed);
            }
        }
        inner.seq += 1;
        let beat = Beat {
            at,
            text: text.to_owned(),
            seq: inner.seq,
            recorded: Instant::now(),
        };
        inner
            .rows
            .insert((partition_key.to_owned(), row_key.to_owned()), beat);
        Ok(())
    }

    /// Whether any of `rows` beat after sequence number `seq` (a page's `BeatsView::seq` when it
    /// was rendered).
    pub fn beaten_since<'a>(
        &self,
        seq: u64,
        mut rows: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        let view = self.view();
        if view.seq() <= seq {
            return false;
        }
        rows.any(|(pk, rk)| view.get(pk, rk).is_some_and(|beat| beat.seq > seq))
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
        let beats = Beats::new(Duration::from_secs(5));
        assert!(beats.view().get("api", "a").is_none());
        let seq = beats.view().seq();
        let t = "2026-11-25T05:00:00.000Z";
        assert!(beats.record("api", "a", at(t), t).is_ok());
        assert_eq!(beats.view().get("api", "a").unwrap().text, t);
        assert!(beats.beaten_since(seq, [("api", "a")].into_iter()));
        assert!(!beats.beaten_since(seq, [("api", "b")].into_iter()));
        let later = beats.view().seq();
        assert!(!beats.beaten_since(later, [("api", "a")].into_iter()));
    }

    #[test]
    fn without_a_cache_nothing_is_kept() {
        let beats = Beats::new(Duration::ZERO);
        let t = "2026-11-25T05:00:00.000Z";
        assert!(beats.record("api", "a", at(t), t).is_ok());
        assert!(beats.view().get("api", "a").is_none());
    }

    #[test]
    fn entries_older_than_the_ttl_are_pruned() {
        let beats = Beats::new(Duration::from_nanos(1));
        let t = "2026-11-25T05:00:00.000Z";
        for i in 0..5000 {
            assert!(beats.record("api", &i.to_string(), at(t), t).is_ok());
        }
        assert!(beats.lock().rows.len() < 5000);
    }
}
