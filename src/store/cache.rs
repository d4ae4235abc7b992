//! A short-lived, per-process cache of table reads, so a warm handler answers discovery and
//! resolution without a storage round trip.
//!
//! Staleness bound: a cached read is served for at most `ttl` after it was fetched. Writes made by
//! *this* process (registration, heartbeat, deregistration, a sweep) clear the cache before they
//! return, so a client never reads back older data than it just wrote through the same instance.
//! Writes made elsewhere (another replica, the recipe's Node functions) show up within `ttl`.
//!
//! A read that raced a write must not refill the cache with what it saw before the write: every
//! fill carries the generation it started in, and a write bumps the generation, so such a fill is
//! dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// More distinct queries than this in one `ttl` empties the cache rather than letting it grow.
const MAX_ENTRIES: usize = 4096;

pub struct ReadCache<T> {
    ttl: Duration,
    state: Mutex<State<T>>,
}

struct State<T> {
    generation: u64,
    entries: HashMap<String, (Instant, Arc<T>)>,
}

/// What a miss hands back: the generation to quote when filling.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl<T> ReadCache<T> {
    pub fn new(ttl: Duration) -> Self {
        ReadCache {
            ttl,
            state: Mutex::new(State {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, or a ticket for filling it.
    pub fn get(&self, key: &str) -> Result<Arc<T>, Ticket> {
        let state = self.state();
        if self.ttl.is_zero() {
            return Err(Ticket(state.generation));
        }
        match state.entries.get(key) {
            Some((fetched, value)) if fetched.elapsed() < self.ttl => Ok(value.clone()),
            _ => Err(Ticket(state.generation)),
        }
    }

    /// Stores a value read under `ticket`, unless a write happened since.
    pub fn fill(&self, key: String, ticket: Ticket, fetched: Instant, value: Arc<T>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut state = self.state();
        if state.generation != ticket.0 {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(key, (fetched, value));
    }

    pub fn invalidate(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_within_ttl_and_forgets_on_write() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let ticket = cache.get("q").unwrap_err();
        cache.fill("q".into(), ticket, Instant::now(), Arc::new(1));
        assert_eq!(*cache.get("q").unwrap(), 1);
        cache.invalidate();
        assert!(cache.get("q").is_err());
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let ticket = cache.get("q").unwrap_err();
        cache.invalidate(); // a write lands while the read is in flight
        cache.fill("q".into(), ticket, Instant::now(), Arc::new(1));
        assert!(cache.get("q").is_err());
    }

    #[test]
    fn expired_and_disabled_entries_miss() {
        let cache = ReadCache::new(Duration::from_millis(20));
        let ticket = cache.get("q").unwrap_err();
        let long_ago = Instant::now() - Duration::from_millis(50);
        cache.fill("q".into(), ticket, long_ago, Arc::new(1));
        assert!(cache.get("q").is_err());
        let off = ReadCache::new(Duration::ZERO);
        let ticket = off.get("q").unwrap_err();
        off.fill("q".into(), ticket, Instant::now(), Arc::new(1));
        assert!(off.get("q").is_err());
    }
}
