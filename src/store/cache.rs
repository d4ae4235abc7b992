//! A short-lived, per-process cache of table reads (and of what is computed from them), so a warm
//! handler answers discovery and resolution without a storage round trip.
//!
//! Staleness bound: a cached value is served for at most `ttl` after it was fetched. Writes made by
//! *this* process (registration, heartbeat, deregistration, a sweep) invalidate every cache before
//! they return, so a client never reads back older data than it just wrote through the same
//! instance. Writes made elsewhere (another replica, the recipe's Node functions) show up within
//! `ttl`.
//!
//! Every cache made from one `Generation` is invalidated together: a write bumps the generation, and
//! an entry filled under an older generation is neither served nor stored. That also covers a read
//! that raced a write: it started under the old generation, so what it saw is dropped.
//!
//! On a miss, one caller per key fetches while the others wait for its result (single flight): when
//! an entry lapses under load, storage sees one query, not one per waiting request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// More distinct keys than this in one cache empties it rather than letting it grow.
const MAX_ENTRIES: usize = 4096;

/// The write counter shared by the caches it invalidates.
#[derive(Debug, Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

pub struct ReadCache<T> {
    ttl: Duration,
    generation: Generation,
    entries: Mutex<HashMap<String, Entry<T>>>,
    /// One lock per key being fetched: the single-flight gate.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct Entry<T> {
    fetched: Instant,
    generation: u64,
    value: Arc<T>,
}

impl<T> ReadCache<T> {
    pub fn new(ttl: Duration, generation: Generation) -> Self {
        ReadCache {
            ttl,
            generation,
            entries: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    fn lock<V>(mutex: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
        // A panic while holding one of these locks cannot leave the map inconsistent; keep serving.
        mutex.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, key: &str) -> Option<Arc<T>> {
        let entries = Self::lock(&self.entries);
        let entry = entries.get(key)?;
        (entry.generation == self.generation.current() && entry.fetched.elapsed() < self.ttl)
            .then(|| entry.value.clone())
    }

    /// The cached value for `key`, or the result of `fetch` (stored unless a write happened while it
    /// ran). Errors are returned, never cached.
    pub async fn get_or_fetch<E, F, Fut>(&self, key: &str, fetch: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if self.ttl.is_zero() {
            return fetch().await.map(Arc::new);
        }
        if let Some(hit) = self.fresh(key) {
            return Ok(hit);
        }
        let gate = {
            let mut in_flight = Self::lock(&self.in_flight);
            if in_flight.len() >= MAX_ENTRIES {
                in_flight.clear(); // waiters hold their own handle to the lock they wait on
            }
            in_flight.entry(key.to_owned()).or_default().clone()
        };
        let _only_fetcher = gate.lock().await;
        // Whoever held the gate before us may have filled the entry.
        if let Some(hit) = self.fresh(key) {
            return Ok(hit);
        }
        let generation = self.generation.current();
        let fetched = Instant::now();
        let value = Arc::new(fetch().await?);
        if self.generation.current() == generation {
            let mut entries = Self::lock(&self.entries);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                key.to_owned(),
                Entry {
                    fetched,
                    generation,
                    value: value.clone(),
                },
            );
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    async fn counting(calls: &AtomicUsize, value: u32) -> Result<u32, ()> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(value)
    }

    #[tokio::test]
    async fn serves_within_ttl_and_forgets_on_write() {
        let generation = Generation::default();
        let cache = ReadCache::new(Duration::from_secs(60), generation.clone());
        let calls = AtomicUsize::new(0);
        assert_eq!(
            *cache
                .get_or_fetch("q", || counting(&calls, 1))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            *cache
                .get_or_fetch("q", || counting(&calls, 2))
                .await
                .unwrap(),
            1
        );
        generation.bump();
        assert_eq!(
            *cache
                .get_or_fetch("q", || counting(&calls, 3))
                .await
                .unwrap(),
            3
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_read_that_raced_a_write_is_not_cached() {
        let generation = Generation::default();
        let cache = ReadCache::new(Duration::from_secs(60), generation.clone());
        let raced = cache.get_or_fetch("q", || async {
            generation.bump(); // a write lands while the read is in flight
            Ok::<_, ()>(1)
        });
        assert_eq!(*raced.await.unwrap(), 1);
        assert_eq!(
            *cache
                .get_or_fetch("q", || async { Ok::<_, ()>(2) })
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn concurrent_misses_fetch_once() {
        let cache = ReadCache::new(Duration::from_secs(60), Generation::default());
        let calls = AtomicUsize::new(0);
        let all = futures::future::join_all(
            (0..16).map(|_| cache.get_or_fetch("q", || counting(&calls, 7))),
        );
        assert!(all.await.into_iter().all(|v| *v.unwrap() == 7));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn expired_disabled_and_failed_reads_are_not_served() {
        let cache = ReadCache::new(Duration::from_millis(30), Generation::default());
        let calls = AtomicUsize::new(0);
        cache
            .get_or_fetch("q", || counting(&calls, 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        cache
            .get_or_fetch("q", || counting(&calls, 1))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(cache
            .get_or_fetch("e", || async { Err::<u32, _>("down") })
            .await
            .is_err());
        assert_eq!(
            *cache
                .get_or_fetch("e", || async { Ok::<_, &str>(5) })
                .await
                .unwrap(),
            5
        );

        let off = ReadCache::new(Duration::ZERO, Generation::default());
        off.get_or_fetch("q", || counting(&calls, 1)).await.unwrap();
        off.get_or_fetch("q", || counting(&calls, 1)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
