//! A fanned-out sweep's tick: what `HealthMonitor::sweep_once` does instead of probing when
//! `SWEEP_QUEUE` is set. It runs in the sweep's turn (under the host's singleton timer, or the
//! standalone lease), and returns in seconds: the probing is the shards' (`health::shard`).
//!
//! 1. The previous sweep is summarised if no worker did (shards still out: reported unfinished).
//! 2. The registry's keys only are read and cut into key-range shards (`domain::cut_shards`).
//! 3. The sweep is recorded in `(~sweep, current)` (id, start, deadline = start + the schedule's
//!    interval, shard count) before any shard is enqueued, so the first worker finds it current.
//! 4. The shards are put on the queue (base64 JSON, time-to-live = the window, so a shard nobody
//!    took expires when the next sweep starts), a few puts at a time.

use super::fanout::{complete_if_last, summarise_previous};
use super::monitor::SweepContext;
use crate::configuration::FanoutSettings;
use crate::domain::{cut_shards, ShardMessage, SweepId};
use crate::metrics::metrics;
use crate::scheduler::Schedule;
use crate::store::{CurrentSweep, StorageQueue, Store, StoreError};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use std::time::Duration;

/// Puts in flight at once while enqueueing a sweep.
const PUTS_IN_FLIGHT: usize = 16;

/// What the fan-out needs at run time: its settings, the window, the queue.
pub(crate) struct Fanout {
    pub settings: FanoutSettings,
    /// A sweep's window: the schedule's interval (or `SWEEP_WINDOW_SECONDS`).
    pub window: Duration,
    pub queue: StorageQueue,
    /// Where shards go after too many failed tries (the poller's; the host has its own).
    pub poison: StorageQueue,
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("SWEEP_QUEUE is set but the storage connection names no queue endpoint (add QueueEndpoint= to the connection string, or set the queue service URI for the identity)")]
    NoQueueEndpoint,
    #[error("SWEEP_QUEUE is set but the sweep's window cannot be taken from the schedule {0:?}: set SWEEP_WINDOW_SECONDS")]
    NoWindow(String),
}

impl Fanout {
    pub(super) fn new(store: &Store, settings: &FanoutSettings) -> Result<Self, FanoutError> {
        let window = match settings.window {
            Some(window) => window,
            None => interval_of(&settings.schedule)
                .ok_or_else(|| FanoutError::NoWindow(settings.schedule.clone()))?,
        };
        let queue = store
            .queue(settings.queue.as_str())
            .ok_or(FanoutError::NoQueueEndpoint)?;
        let poison = store
            .queue(settings.queue.poison().as_str())
            .ok_or(FanoutError::NoQueueEndpoint)?;
        Ok(Fanout {
            settings: settings.clone(),
            window,
            queue,
            poison,
        })
    }
}

/// The time between the schedule's next two occurrences.
fn interval_of(schedule: &str) -> Option<Duration> {
    let schedule = Schedule::parse(schedule).ok()?;
    let next = schedule.next_after(Utc::now())?;
    (schedule.next_after(next)? - next)
        .to_std()
        .ok()
        .filter(|d| !d.is_zero())
}

/// A random number for the sweep id (std's per-instance random hash keys: no extra crate).
fn nonce() -> u16 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now()) as u16
}

/// What a tick started.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub sweep: SweepId,
    pub shards: u32,
    pub services: u64,
    pub deadline: DateTime<Utc>,
}

impl Enqueued {
    /// The one line for the invocation's `Logs`.
    pub fn summary(&self) -> String {
        format!(
            "HealthMonitor fan-out: sweep {}, {} services in {} shards, deadline {}",
            self.sweep,
            self.services,
            self.shards,
            crate::iso(self.deadline)
        )
    }
}

/// One tick of a fanned-out sweep (see the module's comment).
pub(super) async fn start_sweep(
    context: &SweepContext,
    fanout: &Fanout,
    started_at: DateTime<Utc>,
    tick: Option<DateTime<Utc>>,
) -> Result<Enqueued, StoreError> {
    let store = &context.store;
    if let Some(previous) = store.current_sweep().await? {
        summarise_previous(context, &previous).await?;
    }
    let keys = store.registry_keys().await?;
    let shards = cut_shards(&keys, fanout.settings.shard_size);
    let window = chrono::Duration::from_std(fanout.window).unwrap_or(chrono::Duration::MAX);
    let deadline = started_at
        .checked_add_signed(window)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let current = CurrentSweep {
        id: SweepId::new(started_at, nonce()),
        started_at,
        deadline,
        shards: shards.len() as u32,
        services: keys.len() as u64,
        started_by: context.checked_by.clone(),
        tick: tick.map(crate::iso),
    };
    drop(keys);
    store.start_sweep(&current).await?;
    let of = current.shards;
    let texts: Vec<String> = shards
        .into_iter()
        .enumerate()
        .map(|(i, ranges)| {
            ShardMessage::new(&current.id, i as u32, of, (started_at, deadline), ranges).to_text()
        })
        .collect();
    let puts: Vec<_> = texts
        .iter()
        .map(|text| fanout.queue.put(text, fanout.window, Duration::ZERO))
        .collect();
    futures::stream::iter(puts)
        .buffer_unordered(PUTS_IN_FLIGHT)
        .try_collect::<Vec<String>>()
        .await?;
    metrics().shards("enqueued", u64::from(of));
    if of == 0 {
        // Nothing to probe: the sweep is over as it starts.
        complete_if_last(context, &current).await;
    }
    if let Ok(depth) = fanout.queue.approximate_length().await {
        metrics().shard_queue_depth(depth);
    }
    Ok(Enqueued {
        sweep: current.id,
        shards: of,
        services: current.services,
        deadline,
    })
}

#[cfg(test)]
mod tests {
    use super::interval_of;
    use std::time::Duration;

    #[test]
    fn the_window_is_the_schedules_interval() {
        assert_eq!(interval_of("0 */5 * * * *"), Some(Duration::from_secs(300)));
        assert_eq!(interval_of("*/10 * * * * *"), Some(Duration::from_secs(10)));
        assert_eq!(interval_of("not a schedule"), None);
    }
}
