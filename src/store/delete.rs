//! Deletes: a deregistration, and the sweep's clean-up of lapsed registrations and orphaned health
//! rows. The sweep's deletes are conditional on the ETag read, so a heartbeat or re-registration
//! that lands in between wins over the delete.

use super::error::{is_row_missing, is_status};
use super::{HealthRecord, ServiceRecord, Store, StoreError};
use crate::domain::InstanceKey;
use azure_core::StatusCode;
use azure_data_tables::prelude::TableClient;
use azure_data_tables::IfMatchCondition;
use futures::{StreamExt, TryStreamExt};

/// Expired rows deleted at once by a sweep.
const DELETE_CONCURRENCY: usize = 8;

impl Store {
    /// Deletes a registration and its health row. `false`: the registration did not exist.
    ///
    /// The health row goes first: if storage fails between the two deletes, what is left is a
    /// registration without health (shown as not yet checked, and probed again); calling again
    /// finishes the job. A health row can still outlive its registration (a sweep that read the
    /// registry before this delete writes its verdict after it): the next sweep deletes such rows,
    /// and until then a new registration of the key ignores it (checked before it was registered,
    /// `HealthRecord::describes`).
    ///
    /// The name's index watermark is raised before the deletes and again after them. Before: a
    /// snapshot taken between the delete and a later watermark would see the row gone and the index
    /// lower; if that watermark cannot be written nothing is deleted (the caller answers 503 and
    /// may retry). After: a watcher woken by the first one may have read the row still there, and
    /// without a second move it would hold that index and never see the row go. A second watermark
    /// that cannot be written is logged, not an error: the rows are gone, and only a watcher woken
    /// in the few milliseconds between the two misses the removal until the next change.
    pub async fn deregister(&self, key: &InstanceKey) -> Result<bool, StoreError> {
        self.mark_removed([key.service_name.as_str()]).await?;
        let result = self
            .within_budget(self.with_tables(|| async {
                self.delete_row(&self.health, key.partition_key(), &key.row_key(), None)
                    .await?;
                self.delete_row(&self.registry, key.partition_key(), &key.row_key(), None)
                    .await
            }))
            .await;
        self.known.gone(key.partition_key(), &key.row_key());
        self.forget_reads();
        if matches!(result, Ok(true)) {
            self.mark_removed_again([key.service_name.as_str()]).await;
        }
        result
    }

    /// The watermark raised after a removal (see `deregister`): best effort, logged when it fails.
    async fn mark_removed_again<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        if let Err(e) = self.mark_removed(names).await {
            tracing::warn!(error = %e, "removal done, but its second index watermark was not written");
        }
    }

    /// Deletes registrations whose TTL lapsed long ago, each only if it has not changed since it was
    /// read (a heartbeat or re-registration in between wins). Returns those that were deleted.
    ///
    /// Every candidate's name is watermarked before any delete (see `deregister`); if that fails
    /// nothing is deleted. Every delete is then attempted even when one fails, the names of those
    /// that removed a row are watermarked again, and the first failure is returned after them all.
    pub async fn delete_expired<'a>(
        &self,
        rows: &[&'a ServiceRecord],
    ) -> Result<Vec<&'a ServiceRecord>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        for row in rows {
            self.observe_revision(row.revision_or_timestamp());
        }
        self.mark_removed(rows.iter().map(|row| row.service_name.as_str()))
            .await?;
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
                        self.known.gone(&row.partition_key, &row.row_key);
                        self.delete_row(&self.health, &row.partition_key, &row.row_key, None)
                            .await?;
                    }
                    Ok(gone.then_some(*row))
                })
            })
            .collect();
        let results: Vec<Result<Option<&ServiceRecord>, StoreError>> =
            futures::stream::iter(deletes)
                .buffer_unordered(DELETE_CONCURRENCY)
                .collect()
                .await;
        self.forget_reads();
        let mut removed = Vec::new();
        let mut failure = None;
        for result in results {
            match result {
                Ok(gone) => removed.extend(gone),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        self.mark_removed_again(removed.iter().map(|row| row.service_name.as_str()))
            .await;
        match failure {
            Some(e) => Err(e),
            None => Ok(removed),
        }
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
    pub(super) async fn delete_row(
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
            Err(e) => Err(e.into()),
        }
    }
}
