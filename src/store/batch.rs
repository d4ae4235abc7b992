//! The sweep's writes: health rows in entity-group transactions, one request per 100 rows of a
//! partition instead of one per row, a few transactions at a time.

use super::properties::put_int64;
use super::{HealthRecord, Store, StoreError};
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;

/// Table Storage's limit on operations in one entity-group transaction.
const MAX_BATCH: usize = 100;
/// Batches written at once during a sweep: enough to hide latency, few enough not to be throttled.
const BATCH_CONCURRENCY: usize = 4;

impl Store {
    /// Writes health rows in entity-group transactions. A transaction answers 202 even when an
    /// operation inside it failed, so every operation's status is checked. Returns the number of
    /// requests sent.
    ///
    /// Unlike a client's write, this one does not empty the process's read caches: no client
    /// wrote these rows, so none must read them back at once, and a sweep writing a batch every
    /// few milliseconds would otherwise send every discovery to storage while it runs. Whoever
    /// sweeps decides when its verdicts must be read afresh (`Store::read_afresh`): the
    /// in-process sweep when it ends; a shard of a fanned-out sweep never, its verdicts showing
    /// within the cache's TTL like any other instance's writes.
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
        futures::stream::iter(writes)
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(requests)
    }

    async fn write_batch(
        &self,
        partition: &str,
        chunk: &[&HealthRecord],
    ) -> Result<(), StoreError> {
        let mut transaction = self.health.partition_key_client(partition).transaction();
        for record in chunk {
            let mut entity = record.to_entity();
            if record.status_revision.is_none() {
                // A change of status: a new revision, taken as it is written (docs/consul.md).
                let revision = self.clock.next(chrono::Utc::now());
                if let Some(entity) = entity.as_object_mut() {
                    put_int64(entity, "statusRevision", revision);
                }
            }
            transaction = transaction.insert_or_replace(record.row_key.as_str(), entity)?;
        }
        let response = transaction.await?;
        let failed = response
            .operation_responses
            .iter()
            .find(|op| !op.status_code.is_success());
        match failed {
            None if response.operation_responses.len() == chunk.len() => Ok(()),
            None => Err(StoreError::unexpected(format!(
                "transaction answered {} operations for {} sent",
                response.operation_responses.len(),
                chunk.len()
            ))),
            Some(op) if op.status_code.is_server_error() => Err(StoreError::unavailable(format!(
                "transaction operation failed with {}",
                op.status_code
            ))),
            Some(op) => Err(StoreError::unexpected(format!(
                "transaction operation failed with {}",
                op.status_code
            ))),
        }
    }
}
