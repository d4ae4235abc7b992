//! A short-lived, per-process cache of table reads (and of what is computed from them), so a warm
//! handler answers discovery and resolution without a storage round trip.
//!
//! Staleness bound: a cached value is served for at most `ttl` after its data was read from
//! storage. Writes made by *this* process (registration, deregistration, an in-process sweep once
//! it ends) invalidate every cache before they return (heartbeats do not: they are laid over the
//! cached rows, see `heartbeats`; nor do the verdicts of a fanned-out sweep's shard, see
//! `Store::write_health`), so a client never reads back older data than it just wrote through
//! the same instance. Writes made elsewhere (another replica, the recipe's Node functions, a
//! shard) show up within `ttl`.
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
//! Refresh ahead: a hot entry is read again *before* it lapses. The first hit on an entry older than
//! `REFRESH_AT` of its TTL starts one background fetch (a flight like any other, so concurrent
//! misses join it) and is served the current value; the new one replaces it when it lands. Under
//! steady traffic no request waits for storage when an entry ages out, which is what keeps a hot
//! discovery's tail latency at a lookup's. The staleness bound is unchanged: an entry is never
//! served past `ttl` after its data was read. A key nobody asks for is not refreshed, so idle keys
//! cost nothing; a hot key costs one read per `REFRESH_AT × ttl` to `ttl` instead of one per `ttl`.
//!
//! Age counts from when the *data* was read, not from when the value was made: a value computed
//! from cached reads (a rendered page) says when its inputs were read (`Cacheable::read_at`), so it
//! lapses with them, and its refresh asks for inputs read after its own (`read_after`), never
//! rebuilding itself from reads as old as it is.
//!
//! Memory is bounded whatever the callers send: keys are SHA-256 digests of the caller's key text
//! (a long query costs 32 bytes here), and each cache holds at most `MAX_ENTRIES` entries and
//! `MAX_BYTES` of values by their estimated `Cacheable::weight`.
//!
//! Hits, misses and refreshes are told to the `CacheObserver` start-up installs (the process
//! metrics), so the store counts them without knowing who listens.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Hears what the caches do: every hit, miss and refresh ahead, as they happen.
pub trait CacheObserver: Send + Sync {
    fn hit(&self);
    fn miss(&self);
    fn refresh(&self);
}

static OBSERVER: std::sync::OnceLock<&'static dyn CacheObserver> = std::sync::OnceLock::new();

/// Installs the process's one observer; a second call keeps the first. Until then nothing hears.
pub fn observe_caches(observer: &'static dyn CacheObserver) {
    let _ = OBSERVER.set(observer);
}

fn observer() -> Option<&'static dyn CacheObserver> {
    OBSERVER.get().copied()
}

/// More distinct keys than this in one cache empties it rather than letting it grow.
const MAX_ENTRIES: usize = 4096;
/// The most value bytes one cache keeps (by `Cacheable::weight`); a value heavier than this is served
/// but not kept.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// What the cache asks of a value it keeps: its size, and whether (and since when) it is fresh.
pub trait Cacheable {
    /// About how many bytes of memory the value holds: what `MAX_BYTES` counts.
    fn weight(&self) -> usize;

    /// Whether the value may still be served, beside its TTL and generation: a value that knows
    /// it went stale earlier (a rendered page whose rows' expiry came) says so here.
    fn is_current(&self) -> bool {
        true
    }

    /// When the storage reads this value was made from were fetched, if earlier than its own
    /// fetch began (a value computed from cached reads); its age, and so its TTL, counts from here.
    fn read_at(&self) -> Option<Instant> {
        None
    }
}

/// How far into its TTL an entry is before the first hit on it starts a refresh in the background.
const REFRESH_AT: f64 = 0.5;

/// A value as a cache hands it out (from an entry or a fetch just made), with when the storage
/// reads behind it were fetched.
#[derive(Debug)]
pub struct Fetched<T> {
    pub value: Arc<T>,
    pub read_at: Instant,
}

impl<T> Clone for Fetched<T> {
    fn clone(&self) -> Self {
        Fetched {
            value: self.value.clone(),
            read_at: self.read_at,
        }
    }
}

impl<T> std::ops::Deref for Fetched<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// The write counter shared by the caches it invalidates.
#[derive(Debug, Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    pub(super) fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

type Key = [u8; 32];
/// What a fetch ended with, as every waiter receives it: `None` until it ends.
type Outcome<T, E> = Option<Result<Fetched<T>, E>>;

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
    /// When its data was read (`Cacheable::read_at`, else when its fetch began).
    fetched: Instant,
    generation: u64,
    weight: usize,
    value: Arc<T>,
}

/// What `lookup` found for a key.
enum Found<T> {
    /// Servable; `refresh` when it is old enough to be read again in the background.
    Fresh { read: Fetched<T>, refresh: bool },
    /// Nothing servable (none, lapsed, invalidated or not current).
    Missing,
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

enum FlightRole<T, E> {
    Lead(watch::Sender<Outcome<T, E>>, u64),
    Wait(watch::Receiver<Outcome<T, E>>),
}

impl<T, E> ReadCache<T, E>
where
    T: Cacheable + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
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

    /// The entry for `key` if it may be served to a caller that wants data read after
    /// `read_after`, and whether it is due for a refresh.
    fn lookup(&self, key: &Key, read_after: Option<Instant>) -> Found<T> {
        let entries = lock(&self.entries);
        let Some(entry) = entries.map.get(key) else {
            return Found::Missing;
        };
        let age = entry.fetched.elapsed();
        let servable = entry.generation == self.generation.current()
            && age < self.ttl
            && read_after.is_none_or(|after| entry.fetched > after)
            && entry.value.is_current();
        if !servable {
            return Found::Missing;
        }
        Found::Fresh {
            read: Fetched {
                value: entry.value.clone(),
                read_at: entry.fetched,
            },
            refresh: age >= self.ttl.mul_f64(REFRESH_AT),
        }
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
    fn role(&self, key: Key, generation: u64) -> FlightRole<T, E> {
        let mut flights = lock(&self.in_flight);
        if let Some(flight) = flights.get(&key) {
            if flight.generation == generation {
                return FlightRole::Wait(flight.outcome.clone());
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
        FlightRole::Lead(sender, id)
    }

    /// Starts a background refresh of `key` unless a fetch for it is already under way.
    fn refresh_ahead<F, Fut>(self: &Arc<Self>, key: Key, replaces: Instant, fetch: F)
    where
        F: FnOnce(Option<Instant>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let generation = self.generation.current();
        let FlightRole::Lead(sender, id) = self.role(key, generation) else {
            return;
        };
        if let Some(o) = observer() {
            o.refresh();
        }
        let cache = self.clone();
        let fetching = fetch(Some(replaces));
        tokio::spawn(async move {
            let _ = cache.lead(key, id, generation, sender, fetching).await;
        });
    }

    /// Runs the fetch this caller leads, keeps its value (unless a write happened meanwhile) and
    /// hands the outcome to every waiter.
    async fn lead(
        &self,
        key: Key,
        id: u64,
        generation: u64,
        sender: watch::Sender<Outcome<T, E>>,
        fetching: impl Future<Output = Result<T, E>>,
    ) -> Result<Fetched<T>, E> {
        let _leading = Leading {
            cache: self,
            key,
            id,
        };
        let started = Instant::now();
        let result = fetching.await.map(|value| {
            let read_at = value.read_at().map_or(started, |at| at.min(started));
            Fetched {
                value: Arc::new(value),
                read_at,
            }
        });
        if let Ok(read) = &result {
            if !self.ttl.is_zero() && self.generation.current() == generation {
                self.store(
                    key,
                    Entry {
                        fetched: read.read_at,
                        generation,
                        weight: read.value.weight(),
                        value: read.value.clone(),
                    },
                );
            }
        }
        sender.send_replace(Some(result.clone()));
        result
    }

    /// The cached value for `key`, or the result of `fetch` (stored unless a write happened while it
    /// ran). Errors are handed to the callers waiting on that fetch, never cached.
    ///
    /// `read_after`: only a value whose data was read after this instant will do. `fetch` is called
    /// only on a miss or a refresh; on a refresh it is given the read time of the value it replaces
    /// (a value computed from cached reads then asks for reads newer than that), and the future it
    /// returns owns what it needs, since a refresh runs on after the caller is served.
    pub async fn get_or_fetch<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        read_after: Option<Instant>,
        fetch: F,
    ) -> Result<Fetched<T>, E>
    where
        F: FnOnce(Option<Instant>) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // With the cache off nothing is kept, but concurrent callers still share the fetch under
        // way (a whole-registry read held once, not sixteen times); sequential ones each fetch.
        let off = self.ttl.is_zero();
        // A refresh's own reads run in the background: no caller waits on them, so they count as
        // neither hits nor misses (the refresh itself is counted where it starts).
        let counted = read_after.is_none();
        let key = digest(key);
        let mut fetch = Some(fetch);
        let mut missed = false;
        loop {
            if let Found::Fresh { read, refresh } = self.lookup(&key, read_after) {
                if let (true, Some(o)) = (counted, observer()) {
                    o.hit();
                }
                if let (true, Some(fetch)) = (refresh, fetch.take()) {
                    self.refresh_ahead(key, read.read_at, fetch);
                }
                return Ok(read);
            }
            if !missed && !off && counted {
                // Once per call: a waiter whose leader went away looks again, but missed once.
                missed = true;
                if let Some(o) = observer() {
                    o.miss();
                }
            }
            let generation = self.generation.current();
            match self.role(key, generation) {
                FlightRole::Wait(mut outcome) => match outcome.wait_for(Option::is_some).await {
                    Ok(ended) => {
                        if let Some(result) = ended.as_ref() {
                            return result.clone();
                        }
                    }
                    // Its leader went away unfinished: look again, and perhaps lead.
                    Err(_) => continue,
                },
                FlightRole::Lead(sender, id) => {
                    let fetch = fetch
                        .take()
                        .expect("only a waiter loops, and it never fetched");
                    return self.lead(key, id, generation, sender, fetch(None)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
