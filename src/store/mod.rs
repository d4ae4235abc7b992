//! Everything that touches Azure Table Storage lives here, so the frozen Tables crate (0.21, built on
//! the pre-1.0 azure_core; see docs/architecture.md) can be swapped by changing one module. The
//! store speaks in domain terms (a `Registration`, a `KeySelection`, typed records) and answers with
//! a `StoreError` that says whether the caller may retry.
//!
//! One file per concern:
//!
//! - `mod.rs` (this file): the `Store` handle, its wiring, table creation, the storage time budget
//!   and the read-cache wiring, which every operation below shares;
//! - `error`: what a crate error means (`StoreError`: `Unavailable`, the caller may retry, or
//!   `Unexpected`). Crate errors become `StoreError` in one way only, `From<azure_core::Error>` (so
//!   plain `?`), after an operation has matched the answers it expects (409 on create, a missing
//!   row, a stale ETag; `into_unexpected` where an answer is no outage in that operation). The crate
//!   error stays inside for the store's own decisions: `within_budget`, which every operation runs
//!   in, is where a vanished table is noticed, so the next call recreates it;
//! - `records` and `properties`: the registry and health rows, decoded once into domain types, and
//!   how one property is spelled and typed in the table (the only code that knows those rows'
//!   property names and spellings; the lease and sweep rows, in the state table, are `lease`'s
//!   and `sweeps`' own);
//! - `filter`: the OData `$filter` built from a key selection;
//! - `register`: the registrant's writes (the registration retry loop, heartbeats), and `known`,
//!   the hint of which rows exist that lets a re-registration skip its doomed insert;
//! - `delete`: deregistration and the sweep's conditional deletes;
//! - `query`: reads by key selection, through the read cache; `listing`: what discovery and the
//!   resolver read, both tables joined with this process's heartbeats laid over them;
//! - `batch`: the sweep's health rows, written in entity-group transactions;
//! - `lease`: the sweep lease standalone replicas share;
//! - `shards`: the fanned-out sweep's rows (the current sweep, one marker per shard that ended)
//!   and a shard's reads (the registry's keys; the rows of a shard's key ranges);
//! - `sweeps`: the last sweep's summary row, beside the lease in the state table (a table of its
//!   own so that health reads hold services only: 1,000 of them are one page, not two);
//! - `events`: the health-change events' outbox rows and the recent transitions row, beside them;
//! - `watermarks`: the rows that keep a Consul index from going backwards when registrations
//!   are removed;
//! - `cache`: the short-lived read cache; `heartbeats`: this process's heartbeats, kept beside it
//!   rather than invalidating it, and the rule that lays them over cached rows;
//!   `connection`: configured storage to a Tables client, over `transport`, which caps the
//!   storage requests in flight (`STORAGE_MAX_CONNECTIONS`); with no secret, that client signs
//!   with the managed-identity credential (`crate::identity`).
//!
//! Error text is redacted before it leaves this module, because the crate's messages can quote
//! request URLs.

mod batch;
mod cache;
mod connection;
mod delete;
mod effective;
mod error;
mod events;
mod filter;
mod heartbeats;
mod known;
mod lease;
mod listing;
mod properties;
mod query;
mod queues;
mod records;
mod register;
mod shards;
mod sweeps;
mod transport;
mod watermarks;

pub use cache::{observe_caches, CacheObserver, Cacheable, Fetched, ReadCache};
pub use effective::{judge_rows, own_status, DependencyReads, Effective};
pub use error::StoreError;
pub use events::{PendingEvent, RecentTransitions, MAX_RECENT_CHARS};
pub use heartbeats::{HeartbeatOverlay, HeartbeatsView, RecentHeartbeats, RecordedHeartbeat};
pub use lease::LeaseOutcome;
pub use listing::{InstanceRow, Listing, ListingQuery};
pub use properties::{JsonText, Stored};
pub use queues::{ReceivedMessage, StorageQueue};
pub use records::{ConsulFields, HealthRecord, ServiceRecord};
pub use shards::{CurrentSweep, FanoutRecord, ProcessShare, ShardMarker};
pub use sweeps::SweepRecord;
pub use watermarks::Watermarks;

use crate::configuration::{ConfigError, StorageSettings};
use crate::domain::RevisionClock;
use azure_core::StatusCode;
use azure_data_tables::prelude::{TableClient, TableServiceClient};
use cache::Generation;
use error::is_status;
use known::ExistingRowsHint;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use records::HealthByKey;

/// The three tables (registrations, health rows, the handler's own state rows), behind one
/// cheap-to-clone handle.
#[derive(Clone)]
pub struct Store {
    registry: TableClient,
    health: TableClient,
    /// The sweep lease and the last sweep's row: never read by discovery or the sweep's joins.
    state: TableClient,
    /// Set once all three tables are known to exist. Request paths never create tables up front (that
    /// would cost round trips on every call until the background creation finishes): they run,
    /// and only when storage answers `TableNotFound` create the tables and try once more
    /// (`with_tables`), so a handler started while storage was down heals itself when it returns.
    tables_ready: Arc<AtomicBool>,
    /// Rows this process has seen exist: where a re-registration starts (see `register`).
    known: Arc<ExistingRowsHint>,
    endpoint: Arc<str>,
    /// The time one operation may take, retries and table creation included (`STORAGE_TIMEOUT_MS`).
    budget: Duration,
    /// Bumped by every write of this process but heartbeats; invalidates every cache made from it.
    writes: Generation,
    /// This process's heartbeats since its cached reads were fetched (see `heartbeats`).
    heartbeats: Arc<RecentHeartbeats>,
    cache_ttl: Duration,
    services_cache: Arc<ReadCache<Vec<ServiceRecord>, StoreError>>,
    health_cache: Arc<ReadCache<HealthByKey, StoreError>>,
    watermarks_cache: Arc<ReadCache<Watermarks, StoreError>>,
    /// The hybrid clock new revisions come from (`domain::revision`).
    clock: Arc<RevisionClock>,
    /// The same account's queue service, when the storage source has a queue endpoint (`queues`).
    queues: Option<azure_storage_queues::QueueServiceClient>,
}

impl Store {
    /// Builds the clients. No network traffic: the handler must answer the host's `GET /` at once.
    pub fn connect(settings: &StorageSettings) -> Result<Self, ConfigError> {
        let storage = connection::resolve(settings)?;
        let endpoint: Arc<str> = Arc::from(storage.endpoint.as_str());
        let (service, queues): (TableServiceClient, _) =
            connection::clients(storage, settings.timeout, settings.connections.max);
        let writes = Generation::default();
        let cache_ttl = settings.cache.ttl;
        Ok(Store {
            registry: service.table_client(settings.registry_table.clone()),
            health: service.table_client(settings.health_table.clone()),
            state: service.table_client(settings.state_table.clone()),
            tables_ready: Arc::new(AtomicBool::new(false)),
            known: Arc::default(),
            endpoint,
            budget: settings.timeout,
            services_cache: Arc::new(ReadCache::new(cache_ttl, writes.clone())),
            health_cache: Arc::new(ReadCache::new(cache_ttl, writes.clone())),
            watermarks_cache: Arc::new(ReadCache::new(cache_ttl, writes.clone())),
            clock: Arc::default(),
            heartbeats: Arc::new(RecentHeartbeats::new(cache_ttl)),
            cache_ttl,
            writes,
            queues,
        })
    }

    /// The table endpoint, which holds no secret: for the start-up log line.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates the three tables if absent (idempotent: 409 TableAlreadyExists counts as success).
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        if self.tables_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.create_tables().await
    }

    /// Runs `operation`; if storage answers that a table is missing and this process did not know
    /// the tables to exist (start-up's creation not done yet, or a vanished table already noticed),
    /// creates the tables and runs it once more. The request path's only table creation: a call
    /// costs no extra round trip while the tables are there.
    ///
    /// A table that vanishes while known to exist fails the call that notices (503, and `false`
    /// for `tables_ready`): a sweep must not read a recreated, empty registry as "everything was
    /// deregistered". The next call recreates it.
    async fn with_tables<T, F, Fut>(&self, operation: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let known = self.tables_ready.load(Ordering::Acquire);
        match operation().await {
            Err(e) if e.is_table_missing() && !known => {
                self.create_tables().await?;
                operation().await
            }
            Err(e) if e.is_table_missing() => {
                self.tables_ready.store(false, Ordering::Release);
                Err(e)
            }
            other => other,
        }
    }

    async fn create_tables(&self) -> Result<(), StoreError> {
        for table in [&self.registry, &self.health, &self.state] {
            match table.create().await {
                Ok(_) => {}
                Err(e) if is_status(&e, StatusCode::Conflict) => {}
                // Not a vanished table (we are creating it): a wrong endpoint or account, which
                // retrying will not fix.
                Err(e) if is_status(&e, StatusCode::NotFound) => {
                    return Err(StoreError::from(e).into_unexpected())
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.tables_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// A number every write of this process but heartbeats changes: a value built from this
    /// store's reads is current while it holds.
    pub fn write_generation(&self) -> u64 {
        self.writes.current()
    }

    /// How long reads are served from this process's cache (`DISCOVERY_CACHE_TTL_MS`).
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }

    /// Records revisions (or storage stamps) read elsewhere, so the revisions this process writes
    /// next are above them.
    pub fn observe_revision(&self, revision: u64) {
        self.clock.observe(revision);
    }

    /// Drops every cached read, so the next read of each goes to storage: for a caller that found
    /// nothing in what this process had read and must not answer from data up to a TTL old, and
    /// for an in-process sweep once its verdicts are written (`write_health` leaves the caches).
    pub fn read_afresh(&self) {
        self.forget_reads();
    }

    /// Every write calls this: this process must never serve a read older than its own write.
    fn forget_reads(&self) {
        self.writes.bump();
    }

    /// A cache for values computed from this store's reads (a rendered discovery page): same TTL,
    /// and invalidated by the same writes.
    pub fn derived_cache<T, E>(&self) -> ReadCache<T, E>
    where
        T: Cacheable + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
    {
        ReadCache::new(self.cache_ttl, self.writes.clone())
    }

    /// Bounds an operation by the storage time budget, so a store that accepts connections but never
    /// answers costs one `STORAGE_TIMEOUT_MS` and a 503, not a multiple of it. The wait for a
    /// storage slot (`transport`) is inside it: a saturated store is a 503 too, not a queue.
    ///
    /// Every operation runs in here, so this is also where a table that vanished under us (deleted,
    /// or an emulator restarted without persistence) is noticed: forget that it existed, so the next
    /// call recreates it.
    async fn within_budget<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(self.budget, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::unavailable(format!(
                    "no answer from storage within {} ms",
                    self.budget.as_millis()
                )))
            });
        if result.as_ref().is_err_and(StoreError::is_table_missing) {
            self.tables_ready.store(false, Ordering::Release);
        }
        result
    }
}
