//! The catalog snapshot every Consul read is served from: the whole registry in Consul's terms,
//! built once per change and shared (`Arc`) by every request and every held watcher.
//!
//! Built from the store's cached reads of both tables and the watermarks, so it is never older
//! than the read cache allows (`DISCOVERY_CACHE_TTL_MS`) and is rebuilt at once after a write of
//! this process. Asking for it costs nothing for `RECHECK_FLOOR` after a check; after that, three
//! cache lookups, and a rebuild only when one of them returned other rows (or a TTL lapsed, which
//! changes a status without changing a row). One caller rebuilds; the others are served the
//! snapshot there is meanwhile, unless this process wrote since it was built (then they wait).
//!
//! Every rebuild that changes the catalog's index bumps a `watch` channel: held requests wait on
//! it (`hold`), so a change wakes them without any of them reading storage.

use super::entry::{entry, Entry};
use crate::domain::consul::CheckStatus;
use crate::domain::{index_of, Judgement, KeySelection};
use crate::store::{
    judge_rows, own_status, Fetched, HealthByKey, ServiceRecord, Store, StoreError, Watermarks,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a snapshot is served without asking the store's caches whether the rows moved.
const RECHECK_FLOOR: Duration = Duration::from_millis(250);
/// How old a snapshot may be served while another caller rebuilds it, rather than waiting.
const SERVE_WHILE_REBUILDING: Duration = Duration::from_secs(2);

/// The registry in Consul's terms, with its indexes precomputed.
pub struct Catalog {
    /// Sorted by (service name, ID).
    pub entries: Vec<Entry>,
    by_name: HashMap<String, Range<usize>>,
    by_id: HashMap<String, Vec<usize>>,
    by_check: HashMap<String, Vec<usize>>,
    by_key: HashMap<(String, String), usize>,
    name_index: HashMap<String, u64>,
    marks: Arc<Watermarks>,
    /// The whole catalog's index.
    pub index: u64,
    /// The earliest TTL still to lapse: the snapshot is stale from then.
    next_lapse: Option<DateTime<Utc>>,
}

impl Catalog {
    fn build(
        services: &[ServiceRecord],
        health: &HealthByKey,
        marks: Arc<Watermarks>,
        now: DateTime<Utc>,
        never_checked: CheckStatus,
        lapse_delay: chrono::TimeDelta,
    ) -> Catalog {
        // Effective statuses only where some row declares dependencies (else each is its own).
        let judged: HashMap<(&str, &str), Judgement> =
            if services.iter().any(|s| !s.depends_on.is_empty()) {
                judge_rows(services, health, now)
                    .into_iter()
                    .map(|(s, j)| ((s.partition_key.as_str(), s.row_key.as_str()), j))
                    .collect()
            } else {
                HashMap::new()
            };
        let mut entries: Vec<Entry> = services
            .iter()
            .filter_map(|service| {
                let row = health
                    .get(&service.partition_key, &service.row_key)
                    .filter(|h| h.describes(service));
                let key = (service.partition_key.as_str(), service.row_key.as_str());
                let judgement = judged.get(&key).cloned().unwrap_or_else(|| Judgement {
                    status: own_status(service, row),
                    blocked_by: Vec::new(),
                    dependencies: Vec::new(),
                });
                entry(service, row, &judgement, now, never_checked, lapse_delay)
            })
            .collect();
        entries.sort_unstable_by(|a, b| {
            (&a.name, &a.id, &a.partition_key).cmp(&(&b.name, &b.id, &b.partition_key))
        });
        let mut by_name: HashMap<String, Range<usize>> = HashMap::new();
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_check: HashMap<String, Vec<usize>> = HashMap::new();
        let mut name_index: HashMap<String, u64> = HashMap::new();
        let mut by_key = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            by_key.insert((e.partition_key.clone(), e.row_key.clone()), i);
            by_name
                .entry(e.name.clone())
                .and_modify(|r| r.end = i + 1)
                .or_insert(i..i + 1);
            by_id.entry(e.id.clone()).or_default().push(i);
            for check in &e.checks {
                by_check.entry(check.id.clone()).or_default().push(i);
            }
            let idx = name_index.entry(e.name.clone()).or_insert(0);
            *idx = (*idx).max(e.modify_index);
        }
        for (name, idx) in name_index.iter_mut() {
            *idx = index_of([*idx, marks.of(name)]);
        }
        let index = index_of(entries.iter().map(|e| e.modify_index).chain([marks.all]));
        let next_lapse = entries.iter().filter_map(|e| e.lapses_at).min();
        Catalog {
            entries,
            by_name,
            by_id,
            by_check,
            by_key,
            name_index,
            marks,
            index,
            next_lapse,
        }
    }

    /// The instances of one service name (all types), in ID order.
    pub fn service(&self, name: &str) -> &[Entry] {
        match self.by_name.get(name) {
            Some(range) => &self.entries[range.clone()],
            None => &[],
        }
    }

    /// One service name's index: its rows' revisions and its watermark, at least 1.
    pub fn service_index(&self, name: &str) -> u64 {
        self.name_index
            .get(name)
            .copied()
            .unwrap_or_else(|| index_of([self.marks.of(name)]))
    }

    /// The entries with this `Service.ID`.
    pub fn with_id(&self, id: &str) -> Vec<&Entry> {
        self.by_id
            .get(id)
            .map(|all| all.iter().map(|i| &self.entries[*i]).collect())
            .unwrap_or_default()
    }

    /// When the row with these keys expires by the snapshot's copy of it: `None` when the snapshot
    /// does not have it, `Some(None)` when it has no TTL. The copy's heartbeat is never newer than
    /// the row's, so a row that has really lapsed shows as expired here too.
    pub fn expires_at(&self, partition_key: &str, row_key: &str) -> Option<Option<DateTime<Utc>>> {
        self.by_key
            .get(&(partition_key.to_owned(), row_key.to_owned()))
            .map(|i| self.entries[*i].expires_at)
    }

    /// Whether the row with these keys had lapsed when the snapshot was built.
    pub fn lapsed(&self, partition_key: &str, row_key: &str) -> bool {
        self.by_key
            .get(&(partition_key.to_owned(), row_key.to_owned()))
            .is_some_and(|i| self.entries[*i].lapsed)
    }

    /// The entries with a check of this `CheckID`.
    pub fn with_check(&self, check_id: &str) -> Vec<&Entry> {
        self.by_check
            .get(check_id)
            .map(|all| all.iter().map(|i| &self.entries[*i]).collect())
            .unwrap_or_default()
    }

    /// Service names in order, each with its instances.
    pub fn services(&self) -> impl Iterator<Item = (&str, &[Entry])> {
        let mut names: Vec<(&String, &Range<usize>)> = self.by_name.iter().collect();
        names.sort_unstable_by_key(|(name, _)| *name);
        names
            .into_iter()
            .map(|(name, range)| (name.as_str(), &self.entries[range.clone()]))
    }
}

/// What a snapshot was built from, to tell whether a rebuild would change anything.
struct Sources {
    services: Fetched<Vec<ServiceRecord>>,
    health: Fetched<HealthByKey>,
    marks: Fetched<Watermarks>,
}

impl Sources {
    fn same(&self, other: &Sources) -> bool {
        Arc::ptr_eq(&self.services.value, &other.services.value)
            && Arc::ptr_eq(&self.health.value, &other.health.value)
            && Arc::ptr_eq(&self.marks.value, &other.marks.value)
    }
}

/// The process's one snapshot, and the signal held requests wait on.
pub struct ConsulCatalog {
    store: Store,
    never_checked: CheckStatus,
    /// How long after its TTL lapses a lapse counts: the read cache's TTL (`entry::entry`).
    lapse_delay: chrono::TimeDelta,
    state: Mutex<State>,
    rebuild: tokio::sync::Mutex<()>,
    changed: watch::Sender<u64>,
    /// Set once the process is shutting down: held requests answer at once.
    stopping: watch::Sender<bool>,
}

struct State {
    catalog: Arc<Catalog>,
    sources: Option<Sources>,
    checked_at: Option<Instant>,
    generation: u64,
}

impl ConsulCatalog {
    pub fn new(store: Store, never_checked: CheckStatus) -> Self {
        let empty = Catalog::build(
            &[],
            &HealthByKey::new(Vec::new()),
            Arc::default(),
            Utc::now(),
            never_checked,
            chrono::TimeDelta::zero(),
        );
        let (changed, _) = watch::channel(0);
        let (stopping, _) = watch::channel(false);
        let lapse_delay = chrono::TimeDelta::from_std(store.cache_ttl()).unwrap_or_default();
        ConsulCatalog {
            store,
            never_checked,
            lapse_delay,
            state: Mutex::new(State {
                catalog: Arc::new(empty),
                sources: None,
                checked_at: None,
                generation: 0,
            }),
            rebuild: tokio::sync::Mutex::new(()),
            changed,
            stopping,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The snapshot as it stands, without asking the store: `None` before the first build.
    pub fn peek(&self) -> Option<Arc<Catalog>> {
        let state = self.lock();
        state.sources.as_ref().map(|_| state.catalog.clone())
    }

    /// The process is shutting down: every held request answers now, so the server's graceful
    /// drain is not held up for a whole hold.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once `stop` has been called.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    /// Wakes every time a rebuild changes the catalog's index.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The current snapshot (see the module comment for what that costs).
    pub async fn current(&self) -> Result<Arc<Catalog>, StoreError> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _one_builder = match self.rebuild.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another caller is rebuilding: serve what there is while it does, unless this
                // process wrote since (a client reads its own writes) or a TTL lapsed.
                if let Some(served) = self.servable_meanwhile() {
                    return Ok(served);
                }
                self.rebuild.lock().await
            }
        };
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let generation = self.store.write_generation();
        let all = KeySelection::all();
        let fetched = tokio::try_join!(
            self.store.find_services(&all, None),
            self.store.find_health(&all, None),
            self.store.watermarks()
        );
        let (services, health, marks) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                // Remembered until the next recheck: the requests queued behind this rebuild,
                // and the watchers rechecking meanwhile, get the last good snapshot instead of
                // each leading a fetch of their own against a store that is failing.
                let mut state = self.lock();
                if state.sources.is_some() {
                    state.checked_at = Some(Instant::now());
                    state.generation = generation;
                }
                return Err(e);
            }
        };
        let sources = Sources {
            services,
            health,
            marks,
        };
        let now = Utc::now();
        let mut state = self.lock();
        let lapse_due = state.catalog.next_lapse.is_some_and(|at| at <= now);
        if !lapse_due && state.sources.as_ref().is_some_and(|s| s.same(&sources)) {
            state.checked_at = Some(Instant::now());
            state.generation = generation;
            return Ok(state.catalog.clone());
        }
        drop(state);
        let catalog = Arc::new(Catalog::build(
            &sources.services,
            &sources.health,
            sources.marks.value.clone(),
            now,
            self.never_checked,
            self.lapse_delay,
        ));
        if let Some(highest) = catalog.entries.iter().map(|e| e.modify_index).max() {
            self.store.observe_revision(highest.max(catalog.index));
        }
        let mut state = self.lock();
        let before = state.catalog.index;
        state.catalog = catalog.clone();
        state.sources = Some(sources);
        state.checked_at = Some(Instant::now());
        state.generation = generation;
        drop(state);
        if catalog.index != before {
            self.changed.send_replace(catalog.index);
        }
        Ok(catalog)
    }

    /// The snapshot, while a rebuild is under way: if nothing this process wrote or a lapse made
    /// it out of date, and it was checked within `SERVE_WHILE_REBUILDING`.
    fn servable_meanwhile(&self) -> Option<Arc<Catalog>> {
        let state = self.lock();
        let checked = state
            .checked_at
            .is_some_and(|at| at.elapsed() < SERVE_WHILE_REBUILDING);
        let unchanged = state.generation == self.store.write_generation();
        let no_lapse = state.catalog.next_lapse.is_none_or(|at| at > Utc::now());
        (checked && unchanged && no_lapse).then(|| state.catalog.clone())
    }

    fn fresh(&self) -> Option<Arc<Catalog>> {
        let state = self.lock();
        let recent = state
            .checked_at
            .is_some_and(|at| at.elapsed() < RECHECK_FLOOR);
        let unchanged = state.generation == self.store.write_generation();
        let no_lapse = state.catalog.next_lapse.is_none_or(|at| at > Utc::now());
        (recent && unchanged && no_lapse).then(|| state.catalog.clone())
    }
}
