//! Everything that touches Azure Table Storage lives here, so the frozen Tables crate (DESIGN.md §6)
//! can be swapped by changing one module.
//!
//! The store speaks in domain terms (a `Registration`, a `DiscoveryQuery`, health records) and turns
//! the crate's errors into two kinds: `Unavailable` (network faults, timeouts, throttling, 5xx: the
//! caller may retry, so a 503) and `Unexpected` (anything else: a 500 and a log line). Error text is
//! redacted before it leaves this module, because the crate's messages can quote request URLs.

mod connection;
mod records;

pub use records::{HealthRecord, ServiceRecord};

use crate::configuration::{ConfigError, Settings};
use crate::domain::{DiscoveryQuery, Registration};
use crate::error::ApiError;
use crate::telemetry::redact;
use azure_core::error::ErrorKind;
use azure_core::StatusCode;
use azure_data_tables::prelude::{TableClient, TableServiceClient};
use azure_data_tables::IfMatchCondition;
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
}

impl Store {
    /// Builds the clients. No network traffic: the handler must answer the host's `GET /` at once.
    pub fn connect(settings: &Settings) -> Result<Self, ConfigError> {
        let target = connection::resolve(settings)?;
        let endpoint: Arc<str> = Arc::from(target.endpoint.as_str());
        let service: TableServiceClient = connection::client(target, settings);
        Ok(Store {
            registry: service.table_client(settings.registry_table.clone()),
            health: service.table_client(settings.health_table.clone()),
            tables_ready: Arc::new(AtomicBool::new(false)),
            endpoint,
            budget: settings.storage_timeout,
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
        if let ErrorKind::HttpResponse {
            error_code: Some(code),
            ..
        } = error.kind()
        {
            if code == "TableNotFound" {
                self.tables_ready.store(false, Ordering::Release);
            }
        }
    }

    fn fail(&self, error: azure_core::Error) -> StoreError {
        self.note_missing_table(&error);
        if is_status(&error, StatusCode::NotFound) {
            return StoreError::Unavailable(redact(&format!("{error}")));
        }
        error.into()
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
        self.within_budget(self.register_unbounded(registration, now))
            .await
    }

    async fn register_unbounded(
        &self,
        registration: &Registration,
        now: &str,
    ) -> Result<(), StoreError> {
        self.ensure_tables().await?;
        let entity_client = self
            .registry
            .partition_key_client(registration.service_type.as_str())
            .entity_client(registration.service_name.as_str());
        let mut record = ServiceRecord {
            partition_key: registration.service_type.to_string(),
            row_key: registration.service_name.to_string(),
            service_name: registration.service_name.to_string(),
            endpoint: registration.endpoint.clone(),
            health_endpoint: registration.health_endpoint.clone(),
            service_type: registration.service_type.to_string(),
            version: registration.version.clone(),
            tags: Value::from(registration.tags.clone()),
            metadata: Value::Object(registration.metadata.clone()),
            registered_at: Some(now.to_owned()),
            last_heartbeat: Some(now.to_owned()),
        };

        for _ in 0..REGISTER_ATTEMPTS {
            let existing = match entity_client.get::<Map<String, Value>>().await {
                Ok(found) => Some(found),
                Err(e) if is_status(&e, StatusCode::NotFound) && !is_table_missing(&e) => None,
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
                    match self.registry.insert::<_, Value>(record.to_entity()) {
                        Ok(insert) => insert.await.map(|_| ()),
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            match outcome {
                Ok(()) => return Ok(()),
                // Someone else wrote the row between our read and our write: read again.
                Err(e)
                    if is_status(&e, StatusCode::PreconditionFailed)
                        || is_status(&e, StatusCode::Conflict) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        Err(StoreError::Unavailable(
            "the registration row kept changing under concurrent writers".to_owned(),
        ))
    }

    /// The registry rows a query selects, in (serviceType, serviceName) order.
    pub async fn find_services(
        &self,
        query: &DiscoveryQuery,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.find(&self.registry, query, ServiceRecord::from_entity)
            .await
    }

    /// The health rows for the same query, keyed by (PartitionKey, RowKey): one query, not one
    /// request per service.
    pub async fn find_health(
        &self,
        query: &DiscoveryQuery,
    ) -> Result<HashMap<(String, String), HealthRecord>, StoreError> {
        let rows = self
            .find(&self.health, query, HealthRecord::from_entity)
            .await?;
        Ok(rows
            .into_iter()
            .map(|h| ((h.partition_key.clone(), h.row_key.clone()), h))
            .collect())
    }

    async fn find<T>(
        &self,
        table: &TableClient,
        query: &DiscoveryQuery,
        read: fn(&Map<String, Value>) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.within_budget(self.ensure_tables()).await?;
        if let (Some(service_type), Some(service_name)) = (&query.service_type, &query.service_name)
        {
            // Both keys: a point read, the cheapest operation the service offers.
            let entity = table
                .partition_key_client(service_type.as_str())
                .entity_client(service_name.as_str());
            let found = self
                .within_budget(async { Ok(entity.get::<Map<String, Value>>().await) })
                .await?;
            return match found {
                Ok(found) => Ok(vec![read(&found.entity)]),
                Err(e) if is_status(&e, StatusCode::NotFound) && !is_table_missing(&e) => {
                    Ok(vec![])
                }
                Err(e) => Err(self.fail(e)),
            };
        }
        let mut builder = table.query();
        if let Some(filter) = filter_for(query) {
            builder = builder.filter(filter);
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
        // Owned batches: the futures below must be `Send + 'static`-friendly for the spawned sweep.
        let batches: Vec<(String, Vec<HealthRecord>)> = by_partition
            .iter()
            .flat_map(|(pk, rows)| {
                rows.chunks(MAX_BATCH).map(move |chunk| {
                    (pk.to_string(), chunk.iter().map(|r| (*r).clone()).collect())
                })
            })
            .collect();
        let requests = batches.len();
        futures::stream::iter(batches)
            .map(|(partition, chunk)| {
                let store = self.clone();
                async move {
                    store
                        .within_budget(store.write_batch(&partition, &chunk))
                        .await
                }
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(requests)
    }

    async fn write_batch(&self, partition: &str, chunk: &[HealthRecord]) -> Result<(), StoreError> {
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

fn is_table_missing(error: &azure_core::Error) -> bool {
    matches!(error.kind(), ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "TableNotFound")
}

/// An OData literal: quotes doubled. Keys are already restricted to characters that need no escaping;
/// this is the second line of defence, not the first.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `$filter` for a query that is not a point read.
fn filter_for(query: &DiscoveryQuery) -> Option<String> {
    let mut clauses = Vec::new();
    if let Some(service_type) = &query.service_type {
        clauses.push(format!(
            "PartitionKey eq {}",
            literal(service_type.as_str())
        ));
    }
    if let Some(service_name) = &query.service_name {
        clauses.push(format!("RowKey eq {}", literal(service_name.as_str())));
    }
    (!clauses.is_empty()).then(|| clauses.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ServiceName, ServiceType};

    #[test]
    fn filters_use_only_validated_keys() {
        let mut q = DiscoveryQuery::default();
        assert_eq!(filter_for(&q), None);
        q.service_type = Some(ServiceType::parse("api").unwrap());
        assert_eq!(filter_for(&q).unwrap(), "PartitionKey eq 'api'");
        q.service_type = None;
        q.service_name = Some(ServiceName::parse("svc").unwrap());
        assert_eq!(filter_for(&q).unwrap(), "RowKey eq 'svc'");
        assert_eq!(literal("o'brien"), "'o''brien'");
    }
}
