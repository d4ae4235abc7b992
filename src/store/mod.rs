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
//!   property names and spellings; the lease and sweep rows are `lease`'s and `sweeps`' own);
//! - `filter`: the OData `$filter` built from a key selection;
//! - `register`: the registrant's writes (the registration retry loop, heartbeats);
//! - `delete`: deregistration and the sweep's conditional deletes;
//! - `query`: reads by key selection, through the read cache;
//! - `batch`: the sweep's health rows, written in entity-group transactions;
//! - `lease`: the sweep lease standalone replicas share;
//! - `sweeps`: the last sweep's summary row, beside the lease;
//! - `cache`: the short-lived read cache; `connection`: configured storage to a Tables client;
//!   `identity`: the managed-identity credential that client signs with when there is no secret.
//!
//! Error text is redacted before it leaves this module, because the crate's messages can quote
//! request URLs.

mod batch;
mod cache;
mod connection;
mod delete;
mod error;
mod filter;
mod identity;
mod lease;
mod properties;
mod query;
mod records;
mod register;
mod sweeps;

pub use cache::{ReadCache, Weigh};
pub use error::StoreError;
pub use identity::ManagedIdentityCredential;
pub use lease::LeaseOutcome;
pub use properties::Stored;
pub use records::{HealthRecord, ServiceRecord};
pub use sweeps::SweepRecord;

use crate::configuration::{ConfigError, StorageSettings};
use azure_core::StatusCode;
use azure_data_tables::prelude::{TableClient, TableServiceClient};
use cache::Generation;
use error::is_status;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Health rows by (PartitionKey, RowKey).
pub type HealthByKey = HashMap<(String, String), HealthRecord>;

/// The two tables, behind one cheap-to-clone handle.
#[derive(Clone)]
pub struct Store {
    registry: TableClient,
    health: TableClient,
    /// Set once both tables are known to exist; until then every call first tries to create them,
    /// so a handler started while storage was down heals itself when storage returns.
    tables_ready: Arc<AtomicBool>,
    endpoint: Arc<str>,
    /// The time one operation may take, retries and table creation included (`STORAGE_TIMEOUT_MS`).
    budget: Duration,
    /// Bumped by every write of this process; invalidates every cache made from it.
    writes: Generation,
    cache_ttl: Duration,
    services_cache: Arc<ReadCache<Vec<ServiceRecord>, StoreError>>,
    health_cache: Arc<ReadCache<HealthByKey, StoreError>>,
}

impl Store {
    /// Builds the clients. No network traffic: the handler must answer the host's `GET /` at once.
    pub fn connect(settings: &StorageSettings) -> Result<Self, ConfigError> {
        let target = connection::resolve(settings)?;
        let endpoint: Arc<str> = Arc::from(target.endpoint.as_str());
        let service: TableServiceClient = connection::client(target, settings.timeout);
        let writes = Generation::default();
        let cache_ttl = settings.cache.ttl;
        Ok(Store {
            registry: service.table_client(settings.registry_table.clone()),
            health: service.table_client(settings.health_table.clone()),
            tables_ready: Arc::new(AtomicBool::new(false)),
            endpoint,
            budget: settings.timeout,
            services_cache: Arc::new(ReadCache::new(cache_ttl, writes.clone())),
            health_cache: Arc::new(ReadCache::new(cache_ttl, writes.clone())),
            cache_ttl,
            writes,
        })
    }

    /// The table endpoint, which holds no secret: for the start-up log line.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates both tables if absent (idempotent: 409 TableAlreadyExists counts as success).
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        if self.tables_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        for table in [&self.registry, &self.health] {
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

    /// Every write calls this: this process must never serve a read older than its own write.
    fn forget_reads(&self) {
        self.writes.bump();
    }

    /// A cache for values computed from this store's reads (a rendered discovery page): same TTL,
    /// and invalidated by the same writes.
    pub fn derived_cache<T: Weigh, E: Clone>(&self) -> ReadCache<T, E> {
        ReadCache::new(self.cache_ttl, self.writes.clone())
    }

    /// Bounds an operation by the storage time budget, so a store that accepts connections but never
    /// answers costs one `STORAGE_TIMEOUT_MS` and a 503, not a multiple of it.
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
