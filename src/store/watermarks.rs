//! Watermarks: what keeps a Consul index from going backwards when rows disappear.
//!
//! An index is the largest revision of the rows in a scope (`domain::revision`). Deleting the
//! newest row would lower it, and Consul's clients read a lower index as a reset (consul-template
//! and node-consul start over, vmagent restarts its watch). So every removal of a registration (a
//! deregistration, the sweep's expiry and critical-too-long removals) writes a new revision into two
//! rows of the state table: one for the service's name, one for the whole catalog. Their revisions
//! join the max, so the index moves on a removal and never drops.
//!
//! Rows: PartitionKey `~index`, RowKey the service name (names start with a letter or digit) or
//! `~all`, property `revision` (Int64). `~index` can never be a service type, so nothing else meets
//! them. They are read through a cache of their own, with the registry's TTL and invalidated by this
//! process's writes like the others.

use super::cache::Fetched;
use super::properties::{integer, put_int64, string};
use super::{Cacheable, Store, StoreError};
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
        let revision = self.clock.next(chrono::Utc::now());
        let writes: Vec<_> = names
            .into_iter()
            .chain([ALL])
            .map(|row| {
                let mut entity = Map::new();
                entity.insert("PartitionKey".into(), PARTITION.into());
                entity.insert("RowKey".into(), row.into());
                put_int64(&mut entity, "revision", revision);
                let entity = Value::Object(entity);
                self.within_budget(self.with_tables(move || {
                    let entity = entity.clone();
                    async move {
                        self.state
                            .partition_key_client(PARTITION)
                            .entity_client(row)
                            .insert_or_replace(entity)?
                            .await?;
                        Ok(())
                    }
                }))
            })
            .collect();
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(writes)
            .buffer_unordered(8)
            .collect()
            .await;
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
