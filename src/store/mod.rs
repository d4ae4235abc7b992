//! Everything that touches Azure Table Storage lives here, so the frozen Tables crate (0.21, built on
//! the pre-1.0 azure_core; see docs/architecture.md) can be swapped by changing one module.
//!
//! The store speaks in domain terms (a `Registration`, a `KeySelection`, health records) and turns
//! the crate's errors into two kinds: `Unavailable` (network faults, timeouts, throttling, 5xx: the
//! caller may retry, so a 503) and `Unexpected` (anything else: a 500 and a log line). Error text is
//! redacted before it leaves this module, because the crate's messages can quote request URLs.

mod cache;
mod connection;
mod lease;
mod records;

pub use cache::ReadCache;
pub use lease::LeaseOutcome;
pub use records::{HealthRecord, ServiceRecord};

use crate::configuration::{ConfigError, StorageSettings};
use crate::domain::{InstanceKey, KeySelection, Registration};
use crate::error::ApiError;
use crate::telemetry::redact;
use azure_core::error::ErrorKind;
use azure_core::StatusCode;
use azure_data_tables::prelude::{TableClient, TableServiceClient};
use azure_data_tables::IfMatchCondition;
use cache::Generation;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Table Storage's limit on operations in one entity-group transaction.
const MAX_BATCH: usize = 100;
/// Batches written at once during a sweep: enough to hide latency, few enough not to be throttled.
const BATCH_CONCURRENCY: usize = 4;
/// Optimistic-concurrency attempts for a registration racing another writer of the same row.
const REGISTER_ATTEMPTS: usize = 5;
/// Expired rows deleted at once by a sweep.
const DELETE_CONCURRENCY: usize = 8;

/// Health rows by (PartitionKey, RowKey).
pub type HealthByKey = HashMap<(String, String), HealthRecord>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected storage response: {0}")]
    Unexpected(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => ApiError::StorageUnavailable(detail),
            StoreError::Unexpected(detail) => ApiError::Internal(detail),
        }
    }
}

fn status_of(error: &azure_core::Error) -> Option<StatusCode> {
    match error.kind() {
        ErrorKind::HttpResponse { status, .. } => Some(*status),
        _ => None,
    }
}

fn is_status(error: &azure_core::Error, wanted: StatusCode) -> bool {
    status_of(error) == Some(wanted)
}

impl From<azure_core::Error> for StoreError {
    fn from(error: azure_core::Error) -> Self {
        let detail = redact(&format!("{error}"));
        match error.kind() {
            ErrorKind::Io | ErrorKind::Credential => StoreError::Unavailable(detail),
            ErrorKind::HttpResponse { status, .. }
                if status.is_server_error()
                    || matches!(
                        status,
                        StatusCode::TooManyRequests | StatusCode::RequestTimeout
                    ) =>
            {
                StoreError::Unavailable(detail)
            }
            _ => StoreError::Unexpected(detail),
        }
    }
}

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
    services_cache: Arc<ReadCache<Vec<ServiceRecord>>>,
    health_cache: Arc<ReadCache<HealthByKey>>,
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
                Err(e) => return Err(e.into()),
            }
        }
        self.tables_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// A table vanished under us (deleted, or an emulator restarted without persistence): forget that
    /// it existed so the next call recreates it.
    fn note_missing_table(&self, error: &azure_core::Error) {
        if is_table_missing(error) {
            self.tables_ready.store(false, Ordering::Release);
        }
    }

    fn fail(&self, error: azure_core::Error) -> StoreError {
        self.note_missing_table(&error);
        if is_status(&error, StatusCode::NotFound) {
            return StoreError::Unavailable(redact(&format!("{error}")));
        }
        error.into()
    }

    /// Every write calls this: this process must never serve a read older than its own write.
    fn forget_reads(&self) {
        self.writes.bump();
    }

    /// A cache for values computed from this store's reads (a rendered discovery page): same TTL,
    /// and invalidated by the same writes.
    pub fn derived_cache<T>(&self) -> ReadCache<T> {
        ReadCache::new(self.cache_ttl, self.writes.clone())
    }

    /// Bounds an operation by the storage time budget, so a store that accepts connections but never
    /// answers costs one `STORAGE_TIMEOUT_MS` and a 503, not a multiple of it.
    async fn within_budget<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.budget, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "no answer from storage within {} ms",
                    self.budget.as_millis()
                )))
            })
    }

    /// Upserts a registration. An existing row keeps its `registeredAt`; the write is conditional on
    /// the ETag read, so two registrations racing for one row cannot lose the original timestamp.
    pub async fn register(&self, registration: &Registration, now: &str) -> Result<(), StoreError> {
        let result = self
            .within_budget(self.register_unbounded(registration, now))
            .await;
        self.forget_reads();
        result
    }

    async fn register_unbounded(
        &self,
        registration: &Registration,
        now: &str,
    ) -> Result<(), StoreError> {
        self.ensure_tables().await?;
        let key = &registration.key;
        let entity_client = self
            .registry
            .partition_key_client(key.partition_key())
            .entity_client(key.row_key());
        let mut record = ServiceRecord {
            partition_key: key.partition_key().to_owned(),
            row_key: key.row_key(),
            service_name: key.service_name.to_string(),
            endpoint: registration.endpoint.clone(),
            health_endpoint: registration.health_endpoint.clone(),
            service_type: key.service_type.to_string(),
            version: registration.version.clone(),
            tags: Value::from(registration.tags.clone()),
            metadata: Value::Object(registration.metadata.clone()),
            registered_at: Some(now.to_owned()),
            last_heartbeat: Some(now.to_owned()),
            instance_id: key.instance_id.as_ref().map(ToString::to_string),
            ttl_seconds: registration.ttl_seconds.map(i64::from),
            weight: registration.weight.map(i64::from),
            health_check: registration.health_check.clone(),
            etag: None,
        };

        for _ in 0..REGISTER_ATTEMPTS {
            let existing = match entity_client.get::<Map<String, Value>>().await {
                Ok(found) => Some(found),
                Err(e) if is_row_missing(&e) => None,
                Err(e) => return Err(self.fail(e)),
            };
            let outcome = match existing {
                Some(found) => {
                    let registered_at = ServiceRecord::from_entity(&found.entity).registered_at;
                    record.registered_at = registered_at.or_else(|| Some(now.to_owned()));
                    match entity_client
                        .update(record.to_entity(), IfMatchCondition::Etag(found.etag))
                    {
                        Ok(update) => update.await.map(|_| ()),
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {
                    record.registered_at = Some(now.to_owned());
                    // A new registration starts with no health history, whatever a former holder
                    // of this key left behind (a StatefulSet pod keeps its name across restarts).
                    self.delete_row(&self.health, key.partition_key(), &key.row_key(), None)
                        .await?;
                    match self.registry.insert::<_, Value>(record.to_entity()) {
                        Ok(insert) => insert.await.map(|_| ()),
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            match outcome {
                Ok(()) => return Ok(()),
                // Someone else wrote (or deleted) the row between our read and our write: read again.
                Err(e)
                    if is_status(&e, StatusCode::PreconditionFailed)
                        || is_status(&e, StatusCode::Conflict)
                        || is_row_missing(&e) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        Err(StoreError::Unavailable(
            "the registration row kept changing under concurrent writers".to_owned(),
        ))
    }

    /// Moves `lastHeartbeat` of an existing row and nothing else (a merge, so every other property,
    /// including ones this version does not know, stays). `false`: no such row, and none was created.
    pub async fn heartbeat(&self, key: &InstanceKey, now: &str) -> Result<bool, StoreError> {
        let result = self
            .within_budget(async {
                self.ensure_tables().await?;
                let entity = serde_json::json!({
                    "PartitionKey": key.partition_key(),
                    "RowKey": key.row_key(),
                    "lastHeartbeat": now,
                });
                let merge = self
                    .registry
                    .partition_key_client(key.partition_key())
                    .entity_client(key.row_key())
                    .merge(entity, IfMatchCondition::Any)?;
                match merge.await {
                    Ok(_) => Ok(true),
                    Err(e) if is_row_missing(&e) => Ok(false),
                    Err(e) => Err(self.fail(e)),
                }
            })
            .await;
        self.forget_reads();
        result
    }

    /// Deletes a registration and its health row. `false`: the registration did not exist.
    ///
    /// The health row goes first: if storage fails between the two deletes, what is left is a
    /// registration without health (shown as not yet checked, and probed again); calling again
    /// finishes the job. A health row can still outlive its registration (a sweep that read the
    /// registry before this delete writes its verdict after it): the next sweep deletes such rows,
    /// and a new registration of the key clears any it finds.
    pub async fn deregister(&self, key: &InstanceKey) -> Result<bool, StoreError> {
        let result = self
            .within_budget(async {
                self.ensure_tables().await?;
                self.delete_row(&self.health, key.partition_key(), &key.row_key(), None)
                    .await?;
                self.delete_row(&self.registry, key.partition_key(), &key.row_key(), None)
                    .await
            })
            .await;
        self.forget_reads();
        result
    }

    /// Deletes registrations whose TTL lapsed long ago, each only if it has not changed since it was
    /// read (a heartbeat or re-registration in between wins). Returns how many were deleted.
    pub async fn delete_expired(&self, rows: &[&ServiceRecord]) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        // Futures built up front, not in a stream `map` closure: see `health::sweep`.
        let deletes: Vec<_> = rows
            .iter()
            .map(|row| {
                self.within_budget(async move {
                    let etag = row.etag.as_deref();
                    let gone = self
                        .delete_row(&self.registry, &row.partition_key, &row.row_key, etag)
                        .await?;
                    if gone {
                        self.delete_row(&self.health, &row.partition_key, &row.row_key, None)
                            .await?;
                    }
                    Ok(gone)
                })
            })
            .collect();
        self.run_deletes(deletes).await
    }

    /// Deletes health rows whose registration is gone, each only if unchanged since it was read.
    pub async fn delete_orphaned_health(
        &self,
        rows: &[&HealthRecord],
    ) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        // Futures built up front, not in a stream `map` closure: see `health::sweep`.
        let deletes: Vec<_> = rows
            .iter()
            .map(|row| {
                self.within_budget(self.delete_row(
                    &self.health,
                    &row.partition_key,
                    &row.row_key,
                    row.etag.as_deref(),
                ))
            })
            .collect();
        self.run_deletes(deletes).await
    }

    /// Runs deletes a few at a time and counts those that removed a row.
    async fn run_deletes(
        &self,
        deletes: Vec<impl std::future::Future<Output = Result<bool, StoreError>>>,
    ) -> Result<usize, StoreError> {
        let deleted: Result<Vec<bool>, StoreError> = futures::stream::iter(deletes)
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect()
            .await;
        // Some deletes may have landed before one failed: never serve those rows from the cache.
        self.forget_reads();
        Ok(deleted?.into_iter().filter(|gone| *gone).count())
    }

    /// `true` when a row was deleted; `false` when it was not there or, given the `etag` it was read
    /// with, had changed since. Without an ETag the delete is unconditional.
    async fn delete_row(
        &self,
        table: &TableClient,
        partition_key: &str,
        row_key: &str,
        etag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let condition = match etag {
            Some(tag) => IfMatchCondition::Etag(tag.to_owned().into()),
            None => IfMatchCondition::Any,
        };
        let delete = table
            .partition_key_client(partition_key)
            .entity_client(row_key)
            .delete()
            .if_match(condition);
        match delete.await {
            Ok(_) => Ok(true),
            Err(e) if is_row_missing(&e) || is_status(&e, StatusCode::PreconditionFailed) => {
                Ok(false)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The registry rows a selection covers, in (PartitionKey, RowKey) order.
    pub async fn find_services(
        &self,
        selection: &KeySelection,
    ) -> Result<Arc<Vec<ServiceRecord>>, StoreError> {
        let filter = filter_for(selection);
        self.services_cache
            .get_or_fetch(filter.as_deref().unwrap_or_default(), || async {
                let mut rows = self
                    .find(
                        &self.registry,
                        filter.as_deref(),
                        ServiceRecord::from_entity,
                    )
                    .await?;
                rows.sort_by(|a, b| {
                    (&a.partition_key, &a.row_key).cmp(&(&b.partition_key, &b.row_key))
                });
                Ok(rows)
            })
            .await
    }

    /// The health rows for the same selection: one query, not one request per service.
    pub async fn find_health(
        &self,
        selection: &KeySelection,
    ) -> Result<Arc<HealthByKey>, StoreError> {
        let filter = filter_for(selection);
        self.health_cache
            .get_or_fetch(filter.as_deref().unwrap_or_default(), || async {
                let rows = self
                    .find(&self.health, filter.as_deref(), HealthRecord::from_entity)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|h| ((h.partition_key.clone(), h.row_key.clone()), h))
                    .collect())
            })
            .await
    }

    async fn find<T>(
        &self,
        table: &TableClient,
        filter: Option<&str>,
        read: fn(&Map<String, Value>) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.within_budget(self.ensure_tables()).await?;
        let mut builder = table.query();
        if let Some(filter) = filter {
            builder = builder.filter(filter.to_owned());
        }
        // Pages of up to 1,000 entities, followed through continuation tokens until the end.
        let pages = builder.into_stream::<Map<String, Value>>();
        let mut rows = Vec::new();
        let mut pages = std::pin::pin!(pages);
        // Each page is bounded on its own: a large registry may take many pages, none may hang.
        while let Some(page) = self.within_budget(async { Ok(pages.next().await) }).await? {
            let page = page.map_err(|e| self.fail(e))?;
            rows.extend(page.entities.iter().map(read));
        }
        Ok(rows)
    }

    /// Writes health rows in entity-group transactions: one request per 100 rows of a partition
    /// instead of one per row. A transaction answers 202 even when an operation inside it failed,
    /// so every operation's status is checked.
    pub async fn write_health(&self, records: &[HealthRecord]) -> Result<usize, StoreError> {
        self.within_budget(self.ensure_tables()).await?;
        let mut by_partition: BTreeMap<&str, Vec<&HealthRecord>> = BTreeMap::new();
        for record in records {
            by_partition
                .entry(&record.partition_key)
                .or_default()
                .push(record);
        }
        let batches: Vec<(&str, &[&HealthRecord])> = by_partition
            .iter()
            .flat_map(|(partition, rows)| {
                rows.chunks(MAX_BATCH).map(move |chunk| (*partition, chunk))
            })
            .collect();
        let requests = batches.len();
        // Futures built up front, not in a stream `map` closure: see `health::sweep`.
        let writes: Vec<_> = batches
            .into_iter()
            .map(|(partition, chunk)| self.within_budget(self.write_batch(partition, chunk)))
            .collect();
        let result = futures::stream::iter(writes)
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await;
        // Even a half-written sweep changed rows: never serve the older ones from the cache.
        self.forget_reads();
        result?;
        Ok(requests)
    }

    async fn write_batch(
        &self,
        partition: &str,
        chunk: &[&HealthRecord],
    ) -> Result<(), StoreError> {
        let mut transaction = self.health.partition_key_client(partition).transaction();
        for record in chunk {
            transaction =
                transaction.insert_or_replace(record.row_key.as_str(), record.to_entity())?;
        }
        let response = transaction.await.map_err(|e| self.fail(e))?;
        let failed = response
            .operation_responses
            .iter()
            .find(|op| !op.status_code.is_success());
        match failed {
            None if response.operation_responses.len() == chunk.len() => Ok(()),
            None => Err(StoreError::Unexpected(format!(
                "transaction answered {} operations for {} sent",
                response.operation_responses.len(),
                chunk.len()
            ))),
            Some(op) if op.status_code.is_server_error() => Err(StoreError::Unavailable(format!(
                "transaction operation failed with {}",
                op.status_code
            ))),
            Some(op) => Err(StoreError::Unexpected(format!(
                "transaction operation failed with {}",
                op.status_code
            ))),
        }
    }
}

/// A 404 about the row, not about the table (a missing table is an outage to heal, not "not found").
fn is_row_missing(error: &azure_core::Error) -> bool {
    is_status(error, StatusCode::NotFound) && !is_table_missing(error)
}

fn is_table_missing(error: &azure_core::Error) -> bool {
    matches!(error.kind(), ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "TableNotFound")
}

/// An OData literal: quotes doubled. Keys are already restricted to characters that need no escaping;
/// this is the second line of defence, not the first.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `$filter` for a selection. A service name selects the recipe-style row `name` and every
/// instance row `name:<id>`: a RowKey range, so a service's instances are read in one partition scan
/// (`;` is the character after `:`).
fn filter_for(selection: &KeySelection) -> Option<String> {
    let mut clauses = Vec::new();
    if let Some(service_type) = &selection.service_type {
        clauses.push(format!(
            "PartitionKey eq {}",
            literal(service_type.as_str())
        ));
    }
    match (&selection.service_name, &selection.instance_id) {
        (Some(name), Some(instance)) => clauses.push(format!(
            "RowKey eq {}",
            literal(&format!("{name}:{instance}"))
        )),
        (Some(name), None) => clauses.push(format!(
            "(RowKey eq {} or (RowKey gt {} and RowKey lt {}))",
            literal(name.as_str()),
            literal(&format!("{name}:")),
            literal(&format!("{name};"))
        )),
        (None, _) => {}
    }
    (!clauses.is_empty()).then(|| clauses.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InstanceId, ServiceName, ServiceType};

    #[test]
    fn filters_use_only_validated_keys() {
        let mut q = KeySelection::all();
        assert_eq!(filter_for(&q), None);
        q.service_type = Some(ServiceType::parse("api").unwrap());
        assert_eq!(filter_for(&q).unwrap(), "PartitionKey eq 'api'");
        q.service_type = None;
        q.service_name = Some(ServiceName::parse("svc").unwrap());
        assert_eq!(
            filter_for(&q).unwrap(),
            "(RowKey eq 'svc' or (RowKey gt 'svc:' and RowKey lt 'svc;'))"
        );
        q.instance_id = Some(InstanceId::parse("pod-1").unwrap());
        assert_eq!(filter_for(&q).unwrap(), "RowKey eq 'svc:pod-1'");
        assert_eq!(literal("o'brien"), "'o''brien'");
    }
}
