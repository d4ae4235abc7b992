//! The process-wide probe limit (`HEALTH_PROBE_CONCURRENCY`), and how many planned probes wait for
//! it. The in-process sweep and every shard this process runs share one `ProbeSlots`, so however
//! many shards run at once no more than the limit's probes are in flight.
//!
//! Why the waiting count exists: the standalone poller (`health::poller`) must keep every slot
//! busy without hoarding shards other processes could run. Free slots alone cannot tell it that: a
//! shard whose answering services are done holds only its silent ones' slots for a whole timeout,
//! so a rule in shards ("two at once") leaves most slots idle while those timeouts run out. Probes
//! *waiting* for a slot say exactly when more work is needed: while about one shard's worth waits,
//! every slot that frees starts the next probe at once, and no more shards than that are held.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Semaphore, SemaphorePermit};

pub(super) struct ProbeSlots {
    slots: Semaphore,
    /// Probes planned by running passes that have neither started nor been given up.
    waiting: AtomicUsize,
}

impl ProbeSlots {
    pub fn new(limit: usize) -> Self {
        ProbeSlots {
            slots: Semaphore::new(limit.max(1)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Waits for a slot; `None` only if the limit was closed (the process is going away).
    pub async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.slots.acquire().await.ok()
    }

    /// Probes planned and not yet started, over every pass running in this process.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Counts `planned` probes as waiting until each is `start`ed; whatever was not started when
    /// the returned value is dropped (a pass that failed, or stopped at its deadline) stops counting.
    pub fn plan(&self, planned: usize) -> Planned<'_> {
        self.waiting.fetch_add(planned, Ordering::Relaxed);
        Planned {
            slots: self,
            left: AtomicUsize::new(planned),
        }
    }
}

/// One pass's probes still waiting (see `ProbeSlots::plan`).
pub(super) struct Planned<'a> {
    slots: &'a ProbeSlots,
    left: AtomicUsize,
}

impl Planned<'_> {
    /// One of the pass's probes has started, or will not start (its deadline passed).
    pub fn start(&self) {
        let took = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if took.is_ok() {
            self.slots.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Planned<'_> {
    fn drop(&mut self) {
        let left = self.left.swap(0, Ordering::Relaxed);
        self.slots.waiting.fetch_sub(left, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::ProbeSlots;

    #[test]
    fn waiting_counts_planned_probes_until_they_start_or_their_pass_ends() {
        let slots = ProbeSlots::new(2);
        let first = slots.plan(3);
        let second = slots.plan(2);
        assert_eq!(slots.waiting(), 5);
        first.start();
        first.start();
        assert_eq!(slots.waiting(), 3);
        drop(first);
        assert_eq!(slots.waiting(), 2);
        second.start();
        second.start();
        // More starts than were planned never count below zero.
        second.start();
        assert_eq!(slots.waiting(), 0);
        drop(second);
        assert_eq!(slots.waiting(), 0);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_hold_a_slot() {
        let slots = ProbeSlots::new(2);
        let a = slots.acquire().await.expect("a slot");
        let _b = slots.acquire().await.expect("a slot");
        assert!(
            futures::FutureExt::now_or_never(slots.acquire()).is_none(),
            "a third probe waits while two run"
        );
        drop(a);
        assert!(slots.acquire().await.is_some());
    }
}
