//! A short-lived, per-process cache of table reads (and of what is computed from them), so a warm
//! handler answers discovery and resolution without a storage round trip.
//!
//! Staleness bound: a cached value is served for at most `ttl` after it was fetched. Writes made by
//! *this* process (registration, deregistration, a sweep) invalidate every cache before they
//! return (heartbeats do not: they are read over the cache, see `beats`), so a client never reads back older data than it just wrote through the same
//! instance. Writes made elsewhere (another replica, the recipe's Node functions) show up within
//! `ttl`.
//!
//! Every cache made from one `Generation` is invalidated together: a write bumps the generation, and
//! an entry filled under an older generation is neither served nor stored. That also covers a read
//! that raced a write: it started under the old generation, so what it saw is dropped.
//!
//! On a miss, one caller per key fetches while the others wait for its result (single flight, also
//! with the cache off, where nothing is kept but concurrent callers share one fetch): when
//! an entry lapses under load, storage sees one query, not one per waiting request. The result,
//! success *or failure*, reaches every waiter at once: when storage does not answer, N concurrent
//! requests cost one storage budget, not N in turn. A waiter only joins a fetch that started under
//! the current generation (so a client still reads its own writes), and a fetch whose caller went
//! away before it finished hands over to one of its waiters.
//!
//! Memory is bounded whatever the callers send: keys are SHA-256 digests of the caller's key text
//! (a long query costs 32 bytes here), and each cache holds at most `MAX_ENTRIES` entries and
//! `MAX_BYTES` of values by their estimated `Weigh::weight`.

use crate::metrics::metrics;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// More distinct keys than this in one cache empties it rather than letting it grow.
const MAX_ENTRIES: usize = 4096;
/// The most value bytes one cache keeps (by `Weigh::weight`); a value heavier than this is served
/// but not kept.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// About how many bytes of memory a cached value holds: what `MAX_BYTES` counts.
pub trait Weigh {
    fn weight(&self) -> usize;

    /// Whether the value may still be served, beside its TTL and generation: a value that knows
    /// it went stale earlier (a rendered page whose rows' expiry came) says so here.
    fn is_current(&self) -> bool {
        true
    }
}

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

type Key = [u8; 32];
/// What a fetch ended with, as every waiter receives it: `None` until it ends.
type Outcome<T, E> = Option<Result<Arc<T>, E>>;

pub struct ReadCache<T, E> {
    ttl: Duration,
    generation: Generation,
    entries: Mutex<Entries<T>>,
    /// The fetch under way per key: the single-flight gate.
    in_flight: Mutex<HashMap<Key, Flight<T, E>>>,
    flights: AtomicU64,
}

struct Entries<T> {
    map: HashMap<Key, Entry<T>>,
    bytes: usize,
}

struct Entry<T> {
    fetched: Instant,
    generation: u64,
    weight: usize,
    value: Arc<T>,
}

struct Flight<T, E> {
    id: u64,
    generation: u64,
    outcome: watch::Receiver<Outcome<T, E>>,
}

/// Takes the leader's flight out of the map when it ends, however it ends (a cancelled request
/// drops its future): its waiters then see the channel close and try again.
struct Leading<'a, T, E> {
    cache: &'a ReadCache<T, E>,
    key: Key,
    id: u64,
}

impl<T, E> Drop for Leading<'_, T, E> {
    fn drop(&mut self) {
        let mut flights = lock(&self.cache.in_flight);
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
    }
}

fn lock<V>(mutex: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    // A panic while holding one of these locks cannot leave the map inconsistent; keep serving.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn digest(key: &str) -> Key {
    Sha256::digest(key.as_bytes()).into()
}

enum Role<T, E> {
    Lead(watch::Sender<Outcome<T, E>>, u64),
    Wait(watch::Receiver<Outcome<T, E>>),
}

impl<T: Weigh, E: Clone> ReadCache<T, E> {
    pub fn new(ttl: Duration, generation: Generation) -> Self {
        ReadCache {
            ttl,
            generation,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                bytes: 0,
            }),
            in_flight: Mutex::new(HashMap::new()),
            flights: AtomicU64::new(0),
        }
    }

    fn fresh(&self, key: &Key) -> Option<Arc<T>> {
        let entries = lock(&self.entries);
        let entry = entries.map.get(key)?;
        (entry.generation == self.generation.current()
            && entry.fetched.elapsed() < self.ttl
            && entry.value.is_current())
        .then(|| entry.value.clone())
    }

    fn store(&self, key: Key, entry: Entry<T>) {
        if entry.weight > MAX_BYTES {
            return;
        }
        let mut entries = lock(&self.entries);
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes -= old.weight;
        }
        if entries.map.len() >= MAX_ENTRIES || entries.bytes + entry.weight > MAX_BYTES {
            // Lapsed and invalidated entries first; when that is not enough, everything.
            let (generation, ttl) = (self.generation.current(), self.ttl);
            entries
                .map
                .retain(|_, e| e.generation == generation && e.fetched.elapsed() < ttl);
            entries.bytes = entries.map.values().map(|e| e.weight).sum();
            if entries.map.len() >= MAX_ENTRIES || entries.bytes + entry.weight > MAX_BYTES {
                entries.map.clear();
                entries.bytes = 0;
            }
        }
        entries.bytes += entry.weight;
        entries.map.insert(key, entry);
    }

    /// Joins the fetch under way for `key` in this generation, or starts one.
    fn role(&self, key: Key, generation: u64) -> Role<T, E> {
        let mut flights = lock(&self.in_flight);
        if let Some(flight) = flights.get(&key) {
            if flight.generation == generation {
                return Role::Wait(flight.outcome.clone());
            }
        }
        if flights.len() >= MAX_ENTRIES {
            flights.clear(); // waiters hold their own receiver; leaders check the id on removal
        }
        let id = self.flights.fetch_add(1, Ordering::Relaxed);
        let (sender, outcome) = watch::channel(None);
        flights.insert(
            key,
            Flight {
                id,
                generation,
                outcome,
            },
        );
        Role::Lead(sender, id)
    }

    /// The cached value for `key`, or the result of `fetch` (stored unless a write happened while it
    /// ran). Errors are handed to the callers waiting on that fetch, never cached.
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // With the cache off nothing is kept, but concurrent callers still share the fetch under
        // way (a whole-registry read held once, not sixteen times); sequential ones each fetch.
        let off = self.ttl.is_zero();
        let key = digest(key);
        let mut fetch = Some(fetch);
        let mut missed = false;
        loop {
            if let Some(hit) = self.fresh(&key) {
                metrics().cache_hit();
                return Ok(hit);
            }
            if !missed && !off {
                // Once per call: a waiter whose leader went away looks again, but missed once.
                missed = true;
                metrics().cache_miss();
            }
            let generation = self.generation.current();
            match self.role(key, generation) {
                Role::Wait(mut outcome) => match outcome.wait_for(Option::is_some).await {
                    Ok(ended) => {
                        if let Some(result) = ended.as_ref() {
                            return result.clone();
                        }
                    }
                    // Its leader went away unfinished: look again, and perhaps lead.
                    Err(_) => continue,
                },
                Role::Lead(sender, id) => {
                    let _leading = Leading {
                        cache: self,
                        key,
                        id,
                    };
                    let fetch = fetch
                        .take()
                        .expect("only a waiter loops, and it never fetched");
                    let fetched = Instant::now();
                    let result = fetch().await.map(Arc::new);
                    if let Ok(value) = &result {
                        if !off && self.generation.current() == generation {
                            let weight = value.weight();
                            let value = value.clone();
                            self.store(
                                key,
                                Entry {
                                    fetched,
                                    generation,
                                    weight,
                                    value,
                                },
                            );
                        }
                    }
                    sender.send_replace(Some(result.clone()));
                    return result;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
