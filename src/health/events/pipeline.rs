//! What happens to a sweep's transitions once its verdicts are written: one log line each, then
//! delivery to every configured sink, the outbox for what was not delivered, and the recent list.
//!
//! Never slows or fails the sweep: it runs after the writes, delivery is bounded by
//! `HEALTH_EVENTS_PUBLISH_TIMEOUT_MS` (each call retried at most `ATTEMPTS` times, and a sink that
//! fails a call gets nothing more this sweep), and every storage failure here is logged and counted,
//! never returned. At least once: an event leaves the outbox only once every sink accepted it, and
//! keeps its id, so a consumer drops the duplicates a retry can make.

use super::EventSink;
use crate::configuration::EventSettings;
use crate::domain::events::Transition;
use crate::domain::{cloud_event, recent_entry, InstanceKey};
use crate::store::{PendingEvent, Store};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Calls made per batch before a sink counts as unavailable for this sweep.
const ATTEMPTS: u32 = 3;
/// The first retry's delay; each next one is four times longer.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Batches in flight per sink.
const CONCURRENCY: usize = 8;
/// How often a sweep tries to add to the recent list when other shards write it in between.
const RECENT_TRIES: usize = 8;
/// Entries the recent list keeps.
pub const RECENT_MAX: usize = 100;

/// What one sweep's events came to, for its report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Transitions this sweep detected.
    pub transitions: u64,
    /// Events every sink accepted in this sweep (from the outbox and new).
    pub published: u64,
    /// Delivery calls that failed, retries included.
    pub publish_failures: u64,
    /// Events left in the outbox for the next sweep.
    pub pending: u64,
    /// Events dropped because the outbox was full (oldest first).
    pub dropped: u64,
}

/// The sinks and the settings the sweep's events go through. Cheap to share.
pub struct EventPipeline {
    sinks: Vec<Arc<dyn EventSink>>,
    source: String,
    publish_timeout: Duration,
    outbox_max: usize,
}

impl EventPipeline {
    pub fn new(settings: &EventSettings, sinks: Vec<Arc<dyn EventSink>>) -> Self {
        EventPipeline {
            sinks,
            source: settings.source.clone(),
            publish_timeout: settings.publish_timeout,
            outbox_max: settings.outbox_max.max(1),
        }
    }

    fn pending(&self, transition: &Transition) -> PendingEvent {
        log_transition(transition);
        PendingEvent {
            id: transition.id(),
            time: transition.time_text(),
            event: cloud_event(transition, &self.source).to_string(),
        }
    }

    /// A deregistration's event, kept in the outbox for the next sweep to deliver and list. Best
    /// effort: the registration is gone either way, so a failure is logged, not returned.
    pub async fn record_deregistration(&self, store: &Store, key: &InstanceKey) {
        let transition = super::deregistration_transition(key, chrono::Utc::now());
        if let Err(e) = store
            .keep_pending_events(&[self.pending(&transition)])
            .await
        {
            tracing::warn!(error = %e, "could not keep the deregistration's event for the next sweep");
        }
    }

    /// After the sweep's writes: log, deliver, keep, list. Infallible by design.
    pub async fn after_sweep(&self, store: &Store, transitions: Vec<Transition>) -> EventCounts {
        let mut counts = EventCounts {
            transitions: transitions.len() as u64,
            ..EventCounts::default()
        };
        let fresh: Vec<PendingEvent> = transitions.iter().map(|t| self.pending(t)).collect();
        let waiting = match store.pending_events().await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the events outbox; its events wait for a later sweep");
                Vec::new()
            }
        };
        let waiting_ids: HashSet<&str> = waiting.iter().map(|p| p.id.as_str()).collect();
        // Oldest first: the outbox's, then this sweep's (a transition kept and detected again is
        // the same event, once).
        let fresh: Vec<PendingEvent> = fresh
            .into_iter()
            .filter(|p| !waiting_ids.contains(p.id.as_str()))
            .collect();
        let all: Vec<&PendingEvent> = waiting.iter().chain(fresh.iter()).collect();
        if all.is_empty() {
            return counts;
        }
        self.remember_recent(store, &all).await;
        let delivered = self.deliver(&all, &mut counts).await;
        // With no destination nothing is published: the events only join the recent list.
        if !self.sinks.is_empty() {
            counts.published = delivered.len() as u64;
        }
        // What stays: every undelivered event, oldest dropped beyond the bound.
        let undelivered: Vec<&PendingEvent> = all
            .iter()
            .copied()
            .filter(|p| !delivered.contains(p.id.as_str()))
            .collect();
        let overflow = undelivered.len().saturating_sub(self.outbox_max);
        let (dropped, kept) = undelivered.split_at(overflow);
        if overflow > 0 {
            tracing::warn!(
                dropped = overflow,
                "events outbox full: the oldest undelivered events are dropped"
            );
        }
        counts.dropped = overflow as u64;
        let leaving: Vec<&str> = waiting
            .iter()
            .filter(|p| delivered.contains(p.id.as_str()) || dropped.iter().any(|d| d.id == p.id))
            .map(|p| p.id.as_str())
            .collect();
        let to_keep: Vec<PendingEvent> = kept
            .iter()
            .filter(|p| !waiting_ids.contains(p.id.as_str()))
            .map(|p| (*p).clone())
            .collect();
        let mut pending = kept.len() as u64;
        if let Err(e) = store.keep_pending_events(&to_keep).await {
            tracing::warn!(error = %e, lost = to_keep.len(), "could not keep undelivered events in the outbox");
            pending -= to_keep.len() as u64;
        }
        if let Err(e) = store.drop_pending_events(&leaving).await {
            // Delivered again next sweep, with the same ids: a duplicate, not a loss.
            tracing::warn!(error = %e, "could not remove delivered events from the outbox");
        }
        counts.pending = pending;
        counts
    }

    /// Delivers every event to every sink within the publish timeout; the ids every sink accepted.
    async fn deliver(&self, events: &[&PendingEvent], counts: &mut EventCounts) -> HashSet<String> {
        let all: HashSet<String> = events.iter().map(|p| p.id.clone()).collect();
        if self.sinks.is_empty() {
            // Nothing to publish to: kept only for the recent list, which has them now.
            return all;
        }
        let parsed: Vec<(String, Value)> = events
            .iter()
            .filter_map(|p| Some((p.id.clone(), serde_json::from_str(&p.event).ok()?)))
            .collect();
        let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut accepted_by_all = all;
        for sink in &self.sinks {
            let accepted = Arc::new(Mutex::new(HashSet::new()));
            let run = deliver_to(sink.as_ref(), &parsed, &accepted, &failures);
            if tokio::time::timeout(self.publish_timeout, run)
                .await
                .is_err()
            {
                tracing::warn!(
                    sink = sink.name(),
                    "event publishing ran out of time; the rest wait in the outbox"
                );
            }
            let accepted = accepted.lock().map(|set| set.clone()).unwrap_or_default();
            accepted_by_all.retain(|id| accepted.contains(id));
        }
        counts.publish_failures = failures.load(std::sync::atomic::Ordering::Relaxed);
        accepted_by_all
    }

    /// Adds the events the recent list lacks, newest first: one read and one write, again (up to
    /// `RECENT_TRIES` in all) when another shard wrote the list in between.
    async fn remember_recent(&self, store: &Store, events: &[&PendingEvent]) {
        for attempt in 0..RECENT_TRIES {
            if attempt > 0 {
                // Shards finishing together: a random pause, growing with each loss, so they
                // stop meeting on the same version.
                tokio::time::sleep(recent_backoff(attempt)).await;
            }
            let read = match store.recent_transitions_row().await {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the recent transitions; not updated this sweep");
                    return;
                }
            };
            let Some(entries) = with_new_entries(&read.entries, events) else {
                return;
            };
            match store
                .record_recent_transitions(&read, &entries, RECENT_MAX)
                .await
            {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "could not store the recent transitions");
                    return;
                }
            }
        }
        tracing::warn!(
            tries = RECENT_TRIES,
            "the recent transitions kept changing under this sweep; not updated"
        );
    }
}

/// A random pause below 25 ms × 2^attempt, at most 1 s.
fn recent_backoff(attempt: usize) -> Duration {
    let ceiling = (25u64 << attempt.min(6)).min(1_000);
    crate::health::random_below(Duration::from_millis(ceiling))
}

/// `known` with the events it lacks put in front, newest first; `None` when it lacks none.
fn with_new_entries(known: &[Value], events: &[&PendingEvent]) -> Option<Vec<Value>> {
    let listed: HashSet<&str> = known
        .iter()
        .filter_map(|entry| entry.get("id")?.as_str())
        .collect();
    let mut added: Vec<(String, Value)> = events
        .iter()
        .filter(|p| !listed.contains(p.id.as_str()))
        .filter_map(|p| {
            let event: Value = serde_json::from_str(&p.event).ok()?;
            let mut entry = recent_entry(&event)?;
            entry
                .as_object_mut()?
                .insert("id".into(), p.id.clone().into());
            Some((p.time.clone(), entry))
        })
        .collect();
    if added.is_empty() {
        return None;
    }
    added.sort_by(|a, b| b.0.cmp(&a.0));
    Some(
        added
            .into_iter()
            .map(|(_, e)| e)
            .chain(known.iter().cloned())
            .collect(),
    )
}

/// Delivers `events` to one sink in its batch size, `CONCURRENCY` batches at a time, each retried
/// up to `ATTEMPTS` calls; after a batch fails every attempt, no further batch is started.
async fn deliver_to(
    sink: &dyn EventSink,
    events: &[(String, Value)],
    accepted: &Mutex<HashSet<String>>,
    failures: &std::sync::atomic::AtomicU64,
) {
    use futures::StreamExt;
    let given_up = std::sync::atomic::AtomicBool::new(false);
    let batches: Vec<_> = events
        .chunks(sink.batch_size().max(1))
        .map(|batch| {
            let given_up = &given_up;
            async move {
                let values: Vec<Value> = batch.iter().map(|(_, v)| v.clone()).collect();
                let mut delay = FIRST_RETRY;
                for attempt in 1..=ATTEMPTS {
                    if given_up.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    match sink.deliver(&values).await {
                        Ok(()) => {
                            if let Ok(mut set) = accepted.lock() {
                                set.extend(batch.iter().map(|(id, _)| id.clone()));
                            }
                            return;
                        }
                        Err(e) => {
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::warn!(sink = sink.name(), attempt, error = %e, "event delivery failed");
                            if attempt < ATTEMPTS {
                                tokio::time::sleep(delay).await;
                                delay *= 4;
                            }
                        }
                    }
                }
                given_up.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .collect();
    futures::stream::iter(batches)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// One line per transition, for alerts on the logs (docs/operations.md): `message` is
/// `health transition`, with the event's type, subject, statuses, reason and id as fields.
fn log_transition(transition: &Transition) {
    tracing::info!(
        function = "HealthMonitor",
        event_type = transition.kind.event_type(),
        subject = %transition.subject(),
        from = %transition.from,
        to = %transition.to,
        reason = %crate::telemetry::redact(&transition.reason),
        event_id = %transition.id(),
        "health transition"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::events::PublishError;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    /// Fails its first `failures` calls, then accepts; counts every call.
    struct Flaky {
        failures: u32,
        calls: AtomicU32,
        batch: usize,
    }

    #[async_trait::async_trait]
    impl EventSink for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn batch_size(&self) -> usize {
            self.batch
        }
        async fn deliver(&self, _events: &[Value]) -> Result<(), PublishError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                Err(PublishError("down".into()))
            } else {
                Ok(())
            }
        }
    }

    fn events(n: usize) -> Vec<(String, Value)> {
        (0..n)
            .map(|i| (format!("id-{i}"), serde_json::json!({"n": i})))
            .collect()
    }

    async fn run(sink: &Flaky, n: usize) -> (HashSet<String>, u64) {
        let accepted = Mutex::new(HashSet::new());
        let failures = AtomicU64::new(0);
        deliver_to(sink, &events(n), &accepted, &failures).await;
        (accepted.into_inner().unwrap(), failures.into_inner())
    }

    #[tokio::test]
    async fn a_failed_call_is_retried_and_counted() {
        let sink = Flaky {
            failures: 2,
            calls: AtomicU32::new(0),
            batch: 100,
        };
        let (accepted, failures) = run(&sink, 3).await;
        assert_eq!(accepted.len(), 3, "delivered on the third attempt");
        assert_eq!((failures, sink.calls.load(Ordering::SeqCst)), (2, 3));
    }

    #[tokio::test]
    async fn a_sink_that_fails_every_attempt_gets_no_more_batches() {
        let sink = Flaky {
            failures: u32::MAX,
            calls: AtomicU32::new(0),
            batch: 1,
        };
        let (accepted, failures) = run(&sink, 50).await;
        assert!(accepted.is_empty());
        // The batches in flight when the first gave up finish their attempts; no new one starts.
        let calls = sink.calls.load(Ordering::SeqCst);
        assert!(calls <= ATTEMPTS * CONCURRENCY as u32, "{calls} calls");
        assert_eq!(failures, u64::from(calls));
    }

    #[tokio::test]
    async fn batches_follow_the_sinks_size() {
        let sink = Flaky {
            failures: 0,
            calls: AtomicU32::new(0),
            batch: 100,
        };
        let (accepted, _) = run(&sink, 250).await;
        assert_eq!(
            (accepted.len(), sink.calls.load(Ordering::SeqCst)),
            (250, 3)
        );
    }
}
