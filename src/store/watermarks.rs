//! Watermarks: what keeps a Consul index from going backwards when rows disappear.
//!
//! An index is the largest revision of the rows in a scope (`domain::revision`). Deleting the
//! newest row would lower it, and Consul's clients read a lower index as a reset (consul-template
//! and node-consul start over, vmagent restarts its watch). So every removal of a registration (a
//! deregistration, the sweep's expiry and critical-too-long removals) writes a new revision into two
//! rows of the state table: one for the service's name, one for the whole catalog. Their revisions
//! join the max, so the index moves on a removal and never drops. A watermark is only ever raised:
//! read, then rewritten on the version read with a revision above it (`raise`).
//!
//! Rows: PartitionKey `~index`, RowKey the service name (names start with a letter or digit) or
//! `~all`, property `revision` (Int64). `~index` can never be a service type, so nothing else meets
//! them. They are read through a cache of their own, with the registry's TTL and invalidated by this
//! process's writes like the others.

use super::cache::Fetched;
use super::error::{is_row_missing, is_status};
use super::properties::{integer, put_int64, string};
use super::{Cacheable, Store, StoreError};
use azure_core::StatusCode;
use azure_data_tables::IfMatchCondition;
use futures::StreamExt;
use serde_json::{Map, Value};
use std::collections::HashMap;

const PARTITION: &str = "~index";
const ALL: &str = "~all";

/// The watermarks as read: per service name, and the catalog's.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Watermarks {
    pub by_name: HashMap<String, u64>,
    pub all: u64,
}

impl Watermarks {
    /// The watermark of one service name (0: nothing of that name was ever removed).
    pub fn of(&self, name: &str) -> u64 {
        self.by_name.get(name).copied().unwrap_or(0)
    }
}

impl Cacheable for Watermarks {
    fn weight(&self) -> usize {
        self.by_name.keys().map(|k| k.len() + 48).sum::<usize>() + 64
    }
}

impl Store {
    /// Records that registrations of these service names are about to be removed: a new revision
    /// for each name and for the catalog. Called before the deletes, so no snapshot can see a row
    /// gone without the watermark that keeps its index up; an error means the caller must not
    /// delete.
    pub(super) async fn mark_removed<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let mut names: Vec<&str> = names.into_iter().collect();
        if names.is_empty() {
            return Ok(());
        }
        names.sort_unstable();
        names.dedup();
        let writes: Vec<_> = names
            .into_iter()
            .map(|row| self.within_budget(self.with_tables(move || self.raise(row))))
            .collect();
        let mut results: Vec<Result<(), StoreError>> = futures::stream::iter(writes)
            .buffer_unordered(8)
            .collect()
            .await;
        // The catalog's last, so its revision is above every name's: a catalog index (which
        // counts only this one) never falls below a name's.
        if results.iter().all(Result::is_ok) {
            results.push(
                self.within_budget(self.with_tables(|| self.raise(ALL)))
                    .await,
            );
        }
        // Some may have landed before one failed: never serve the old ones from the cache.
        self.forget_reads();
        match results.into_iter().find_map(Result::err) {
            Some(e) => {
                tracing::warn!(error = %e, "could not record a removal's index watermark");
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Raises one watermark row above what it holds and above every revision this process has
    /// seen. Read first, then written only on the version read (If-Match, or an insert when there
    /// is none): a concurrent removal from an instance whose clock is behind can never overwrite a
    /// higher watermark with a lower one. A lost race means another removal raised it in the
    /// meantime, at the same moment as this one would have: that is taken as done (retrying would
    /// turn a burst of removals of one name into conflicts).
    async fn raise(&self, row: &str) -> Result<(), StoreError> {
        let entity_client = self
            .state
            .partition_key_client(PARTITION)
            .entity_client(row);
        {
            let found = match entity_client.get::<Map<String, Value>>().await {
                Ok(found) => Some(found),
                Err(e) if is_row_missing(&e) => None,
                Err(e) => return Err(e.into()),
            };
            if let Some(held) = found
                .as_ref()
                .and_then(|f| integer(&f.entity, "revision"))
                .and_then(|n| u64::try_from(n).ok())
            {
                self.clock.observe(held);
            }
            let mut entity = Map::new();
            entity.insert("PartitionKey".into(), PARTITION.into());
            entity.insert("RowKey".into(), row.into());
            put_int64(&mut entity, "revision", self.clock.next(chrono::Utc::now()));
            let entity = Value::Object(entity);
            let written = match found {
                None => self.state.insert::<_, Value>(entity)?.await.map(|_| ()),
                Some(found) => entity_client
                    .update(entity, IfMatchCondition::Etag(found.etag))?
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(()) => Ok(()),
                Err(e)
                    if is_status(&e, StatusCode::Conflict)
                        || is_status(&e, StatusCode::PreconditionFailed)
                        || is_row_missing(&e) =>
                {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
    }

    /// The watermarks, through the read cache.
    pub async fn watermarks(&self) -> Result<Fetched<Watermarks>, StoreError> {
        let filter = format!("PartitionKey eq '{PARTITION}'");
        self.watermarks_cache
            .get_or_fetch(&filter, None, |_| {
                let (store, filter) = (self.clone(), filter.clone());
                async move {
                    let rows = store.with_tables(|| store.read_watermarks(&filter)).await?;
                    Ok(rows)
                }
            })
            .await
    }

    async fn read_watermarks(&self, filter: &str) -> Result<Watermarks, StoreError> {
        let pages = self
            .state
            .query()
            .filter(filter.to_owned())
            .into_stream::<Map<String, Value>>();
        let mut pages = std::pin::pin!(pages);
        let mut marks = Watermarks::default();
        while let Some(page) = self
            .within_budget(async { Ok(pages.next().await.transpose()?) })
            .await?
        {
            for entity in page.entities {
                let (Some(row), Some(revision)) = (
                    string(&entity, "RowKey"),
                    integer(&entity, "revision").and_then(|n| u64::try_from(n).ok()),
                ) else {
                    continue;
                };
                self.clock.observe(revision);
                if row == ALL {
                    marks.all = marks.all.max(revision);
                } else {
                    marks.by_name.insert(row, revision);
                }
            }
        }
        Ok(marks)
    }
}
