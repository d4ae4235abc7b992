//! The standalone poller: with `SWEEP_QUEUE`, every standalone process takes shards from the
//! queue itself, with the Functions host's own queue-trigger semantics, so replicas share a sweep
//! the way the platform's instances do. Under the host it never runs (the host's trigger
//! delivers; a second consumer would halve the host's view of the queue and skew its scaling).
//!
//! - **As the probe slots need work**: the poller takes a shard whenever less than one shard's
//!   worth of planned probes waits for a slot in this process (`ProbeSlots::waiting`), two when
//!   none waits. Probes, not shards, are counted: a shard whose answering services are done holds
//!   only its silent ones' slots for a whole timeout, so the next shards start while it waits, and
//!   every slot stays busy; yet no process holds more shards than keep its own slots busy, so the
//!   rest stay on the queue for other processes. However the probes fall, no more shards run at
//!   once than hold `ROWS_PER_SLOT` rows per slot (memory), and one receive asks for at most 32.
//! - **Visibility**: a shard taken is invisible for `SWEEP_QUEUE_VISIBILITY_SECONDS` (30 s) and
//!   renewed every third of that while it runs, so a dead worker's shard reappears within that
//!   time and another process takes it (its verdicts already written are not counted twice:
//!   `health::shard`).
//! - **Success** deletes the message; **failure** (storage, or a message that is no shard) makes
//!   it visible again after a delay; a message received more than `SWEEP_QUEUE_MAX_DEQUEUE_COUNT`
//!   times, or failing on its last try, is copied to `<queue>-poison` and deleted (as the host's
//!   `QueueProcessor` does).
//! - **Storage failing** backs the process off: after a shard fails on storage (on its last try
//!   too), no new shard is taken, and the failed one is not offered again, for 2 s, doubling with
//!   each further failure up to a minute, back to none after a success. An unreadable message
//!   does not: it is no sign of storage trouble. Storage that fails because it is overloaded (Table
//!   Storage's 503 Server Busy, or an emulator on a full core) gets room to recover, instead of
//!   every process retrying every shard at once until all of them land in the poison queue.
//! - **Back-off** on an empty queue: from 100 ms, doubling with jitter, up to
//!   `SWEEP_QUEUE_MAX_POLL_MS` (2 s), back to 100 ms as soon as a message arrives.

use super::enqueue::Fanout;
use super::monitor::SweepContext;
use super::shard::run_shard;
use crate::domain::ShardMessage;
use crate::metrics::metrics;
use crate::store::{ReceivedMessage, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The most messages one receive may ask for (the service's limit).
const MAX_RECEIVE: usize = 32;
/// The shortest wait between two receives on an empty queue (the host's too).
const MIN_POLL: Duration = Duration::from_millis(100);
/// How long the poller lets new shards read their rows and plan their probes before it counts
/// waiting probes again, and how often it looks while enough wait.
const SETTLE: Duration = Duration::from_millis(250);
/// Rows held by running shards, per probe slot, at most: a bound on memory when few services
/// are silent and many shards would be needed to keep every slot busy.
const ROWS_PER_SLOT: usize = 16;
/// How long the process backs off after a shard failed, doubling per further failure.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The longest back-off.
const MOST_BACKOFF: Duration = Duration::from_secs(60);
/// How long a poisoned shard is kept for an operator to look at.
const POISON_TTL: Duration = Duration::from_secs(24 * 3600);

/// Polls until `shutdown`; running shards are left to finish or, if the process ends first, to
/// reappear on the queue after their visibility timeout.
pub(super) async fn poll(context: Arc<SweepContext>, mut shutdown: watch::Receiver<bool>) {
    let Some(fanout) = context.fanout.as_ref() else {
        return;
    };
    let limit = context.settings.probe.concurrency.max(1);
    let per_shard = fanout.settings.shard_size.clamp(1, limit);
    let most = (ROWS_PER_SLOT * limit / fanout.settings.shard_size.max(1)).max(1);
    let slots = &context.probe_slots;
    let mut running: JoinSet<()> = JoinSet::new();
    let mut idle = MIN_POLL;
    tracing::info!(
        queue = fanout.queue.name(),
        most_shards_at_once = most,
        "polling the sweep's shard queue"
    );
    let backoff = Arc::new(Backoff::default());
    loop {
        if *shutdown.borrow() {
            return;
        }
        while running.try_join_next().is_some() {}
        if let Some(wait) = backoff.remaining() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            continue;
        }
        // Keep about one shard's worth of probes waiting for a slot: then a slot that frees starts
        // the next probe at once, and no more shards are held here than that needs.
        let want = ((2 * per_shard).saturating_sub(slots.waiting()) / per_shard)
            .min(most.saturating_sub(running.len()))
            .min(MAX_RECEIVE);
        if want == 0 {
            tokio::select! {
                _ = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(SETTLE) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            continue;
        }
        let taken = match fanout
            .queue
            .receive(want as u8, fanout.settings.visibility)
            .await
        {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(queue = fanout.queue.name(), error = %e, "cannot read the shard queue");
                Vec::new()
            }
        };
        if taken.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(with_jitter(idle)) => {}
                _ = running.join_next(), if !running.is_empty() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            idle = (idle * 2).min(fanout.settings.max_poll_interval.max(MIN_POLL));
            continue;
        }
        idle = MIN_POLL;
        if let Ok(depth) = fanout.queue.approximate_length().await {
            metrics().shard_queue_depth(depth);
        }
        for message in taken {
            let (context, backoff) = (context.clone(), backoff.clone());
            running.spawn(async move { deliver(&context, &backoff, message).await });
        }
        // Let the new shards read their rows and take their slots before counting free ones again.
        tokio::select! {
            _ = tokio::time::sleep(SETTLE) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// One message, as the host's queue listener handles one: poison check, run, renew while
/// running, delete on success, release or poison on failure.
async fn deliver(context: &SweepContext, backoff: &Backoff, mut message: ReceivedMessage) {
    let Some(fanout) = context.fanout.as_ref() else {
        return;
    };
    let max = u64::from(fanout.settings.max_dequeue_count);
    if message.dequeue_count > max {
        poison(
            fanout,
            &message,
            "received more often than the dequeue limit",
        )
        .await;
        return;
    }
    let result = match ShardMessage::parse(&message.text) {
        Ok(shard) => {
            let run = run_shard(context, &shard);
            let renew = keep_invisible(fanout, &mut message);
            tokio::select! {
                result = run => result.map(|_| ()).map_err(Failure::Storage),
                // Never ends on its own: the renewal loop stops when the shard does.
                never = renew => match never {},
            }
        }
        Err(e) => Err(Failure::Unreadable(e.to_string())),
    };
    let failure = match result {
        Ok(()) => {
            backoff.succeeded();
            if let Err(e) = fanout.queue.delete(&message).await {
                // It reappears and is run again; its verdicts are already counted.
                tracing::warn!(error = %e, "shard done but its message could not be deleted");
            }
            return;
        }
        Err(failure) => failure,
    };
    // Storage failing backs the whole process off, on a message's last try too. A message no
    // version can read says nothing about storage: it is offered again after the shortest pause,
    // and ends in the poison queue like any other.
    let pause = match &failure {
        Failure::Storage(_) => backoff.failed(),
        Failure::Unreadable(e) => {
            tracing::warn!(error = %e, "unreadable shard message");
            RETRY_AFTER
        }
    };
    if message.dequeue_count >= max {
        if let Failure::Storage(e) = &failure {
            tracing::warn!(error = %e, "shard failed on its last try");
        }
        poison(fanout, &message, "failed on its last try").await;
    } else {
        // Visible again once the pause is over, for this process or another.
        let _ = fanout.queue.renew(&mut message, pause).await;
    }
}

/// Why a delivery failed.
enum Failure {
    /// Storage did not answer as it should: the process backs off.
    Storage(StoreError),
    /// The message is no shard this version reads.
    Unreadable(String),
}

/// Renews the message's invisibility every third of the visibility timeout, for as long as it
/// is polled (the shard's run is raced against it).
async fn keep_invisible(
    fanout: &Fanout,
    message: &mut ReceivedMessage,
) -> std::convert::Infallible {
    let visibility = fanout.settings.visibility;
    loop {
        tokio::time::sleep(visibility / 3).await;
        match fanout.queue.renew(message, visibility).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "a running shard's message was taken by another receiver; both run it, and its verdicts count once"
            ),
            Err(e) => tracing::warn!(error = %e, "could not renew a running shard's message"),
        }
    }
}

/// Copies a message to the poison queue and deletes it, as the host does after
/// `maxDequeueCount` failures.
async fn poison(fanout: &Fanout, message: &ReceivedMessage, why: &str) {
    metrics().shards("poisoned", 1);
    tracing::warn!(
        queue = fanout.poison.name(),
        dequeue_count = message.dequeue_count,
        "shard moved to the poison queue: {why}"
    );
    match fanout
        .poison
        .put(&message.text, POISON_TTL, Duration::ZERO)
        .await
    {
        Ok(_) => {
            let _ = fanout.queue.delete(message).await;
        }
        Err(e) => tracing::warn!(error = %e, "could not move a shard to the poison queue"),
    }
}

/// The process's back-off after shards failed (see the module's comment).
#[derive(Default)]
struct Backoff {
    /// Failures since the last success, and until when no shard is taken.
    state: std::sync::Mutex<(u32, Option<Instant>)>,
}

impl Backoff {
    /// A shard failed: the pause from now (2 s, doubling per failure since the last success, up
    /// to `MOST_BACKOFF`).
    fn failed(&self) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = state.0.saturating_add(1);
        let pause = RETRY_AFTER
            .saturating_mul(1 << (state.0 - 1).min(5))
            .min(MOST_BACKOFF);
        let until = Instant::now() + pause;
        state.1 = Some(state.1.map_or(until, |was| was.max(until)));
        tracing::warn!(
            failures = state.0,
            pause_ms = pause.as_millis() as u64,
            "a shard failed; no new shard is taken during the pause"
        );
        pause
    }

    fn succeeded(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (0, None);
    }

    /// What is left of the pause, if one runs.
    fn remaining(&self) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .1
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }
}

/// A delay between half and all of `base`, so processes polling one queue drift apart.
fn with_jitter(base: Duration) -> Duration {
    base / 2 + super::random_below(base / 2)
}

#[cfg(test)]
mod tests {
    use super::{Backoff, MOST_BACKOFF, RETRY_AFTER};
    use std::time::Duration;

    #[test]
    fn the_back_off_doubles_per_failure_up_to_a_minute_and_a_success_ends_it() {
        let backoff = Backoff::default();
        assert!(backoff.remaining().is_none());
        let pauses: Vec<Duration> = (0..8).map(|_| backoff.failed()).collect();
        assert_eq!(
            pauses,
            [2, 4, 8, 16, 32, 60, 60, 60].map(Duration::from_secs),
            "from {RETRY_AFTER:?} up to {MOST_BACKOFF:?}"
        );
        assert!(backoff
            .remaining()
            .is_some_and(|left| left > Duration::from_secs(50)));
        backoff.succeeded();
        assert!(backoff.remaining().is_none());
        assert_eq!(backoff.failed(), RETRY_AFTER);
    }
}
