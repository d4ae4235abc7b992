//! Revisions: the numbers a Consul client's `X-Consul-Index` is made of.
//!
//! A revision is a `u64` in microseconds since the Unix epoch. Every registration row carries one,
//! written when something a Consul client can see changes (address, port, tags, meta, weight,
//! checks) and kept when a re-registration changes nothing of that; health rows carry one written
//! when the status changes; deletions write watermarks. The index of a scope is the largest of
//! them (at least 1), so every stateless instance computes the same index for the same rows, and
//! heartbeats and probe latencies, which write none, never move it.
//!
//! New revisions come from a hybrid logical clock: `max(now, highest seen + 1)`, where "seen" is
//! every revision and storage `Timestamp` this process has read or written. A process whose clock
//! runs behind another's still writes a revision above anything it has seen, so its change moves
//! the index. What is left is the race docs/consul.md names: two processes changing rows within
//! their clocks' skew of each other, before either has seen the other's revision.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};

/// Microseconds since the epoch (0 before it).
pub fn micros(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_micros()).unwrap_or(0)
}

/// The next revision after `highest_seen`, at `now_us` (the clock rule in the module comment).
pub fn next_revision(now_us: u64, highest_seen: u64) -> u64 {
    now_us.max(highest_seen.saturating_add(1))
}

/// The index of a scope: its largest revision, and never below 1 (Consul's clients treat 0 as "no
/// index": Prometheus never emits a target, node-consul raises).
pub fn index_of(revisions: impl IntoIterator<Item = u64>) -> u64 {
    revisions.into_iter().max().unwrap_or(0).max(1)
}

/// What a registration row adds to an index: its revision, and, while its TTL has lapsed, the
/// moment it lapsed (the lapse is a change clients see: the check turned critical).
pub fn row_revision(revision: u64, lapsed_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    match lapsed_at {
        Some(at) if at <= now => revision.max(micros(at)),
        _ => revision,
    }
}

/// The process's hybrid clock: the highest revision seen, and the next one to write.
#[derive(Debug, Default)]
pub struct RevisionClock {
    seen: AtomicU64,
}

impl RevisionClock {
    /// Records a revision (or storage stamp) read, so later revisions are above it.
    pub fn observe(&self, revision: u64) {
        self.seen.fetch_max(revision, Ordering::AcqRel);
    }

    /// A new revision at `now`, above every one seen or handed out before.
    pub fn next(&self, now: DateTime<Utc>) -> u64 {
        let now_us = micros(now);
        let mut seen = self.seen.load(Ordering::Acquire);
        loop {
            let next = next_revision(now_us, seen);
            match self
                .seen
                .compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(actual) => seen = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::parse_iso(s).unwrap()
    }

    #[test]
    fn the_clock_is_the_wall_clock_unless_it_saw_later() {
        let clock = RevisionClock::default();
        let now = t("2026-12-07T10:00:00.000Z");
        assert_eq!(clock.next(now), micros(now));
        // Twice in the same microsecond: still increasing.
        assert_eq!(clock.next(now), micros(now) + 1);
        // A revision from a process whose clock runs ahead.
        clock.observe(micros(now) + 5_000_000);
        assert_eq!(clock.next(now), micros(now) + 5_000_001);
        // Observing something older changes nothing.
        clock.observe(7);
        assert_eq!(clock.next(now), micros(now) + 5_000_002);
    }

    #[test]
    fn an_index_is_the_largest_revision_and_at_least_one() {
        assert_eq!(index_of([]), 1);
        assert_eq!(index_of([0]), 1);
        assert_eq!(index_of([3, 9, 4]), 9);
        assert_eq!(next_revision(10, 20), 21);
        assert_eq!(next_revision(30, 20), 30);
        assert_eq!(next_revision(0, u64::MAX), u64::MAX);
    }

    #[test]
    fn a_lapse_counts_from_when_it_happened() {
        let now = t("2026-12-07T10:00:00.000Z");
        let earlier = t("2026-12-07T09:59:00.000Z");
        let later = t("2026-12-07T10:01:00.000Z");
        assert_eq!(row_revision(5, None, now), 5);
        assert_eq!(row_revision(5, Some(later), now), 5);
        assert_eq!(row_revision(5, Some(earlier), now), micros(earlier));
        assert_eq!(row_revision(u64::MAX, Some(earlier), now), u64::MAX);
    }
}
