//! Reads by key selection: both tables, each through its read cache, so a warm handler answers a
//! discovery or a resolve without a storage round trip (see `cache` for the staleness bound).

use super::filter::{admits, filter_for};
use super::{
    Cacheable, Fetched, HealthByKey, HealthRecord, ReadCache, ServiceRecord, Store, StoreError,
};
use crate::domain::KeySelection;
use azure_data_tables::prelude::TableClient;
use futures::StreamExt;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

impl Store {
    /// The registry rows a selection covers, in (PartitionKey, RowKey) order. `read_after`: only
    /// rows read from storage after this instant will do (see `ReadCache::get_or_fetch`).
    pub async fn find_services(
        &self,
        selection: &KeySelection,
        read_after: Option<Instant>,
    ) -> Result<Fetched<Vec<ServiceRecord>>, StoreError> {
        self.read_through(
            &self.services_cache,
            |store| &store.registry,
            selection,
            read_after,
            |mut rows: Vec<ServiceRecord>| {
                // Keys are unique, so an unstable sort gives the same order, without the stable
                // sort's scratch copy of the rows (at 10,000 rows about 5 MiB, at the peak).
                rows.sort_unstable_by(|a, b| {
                    (&a.partition_key, &a.row_key).cmp(&(&b.partition_key, &b.row_key))
                });
                // Kept for the cache's lifetime: without the slack the doubling left.
                rows.shrink_to_fit();
                rows
            },
        )
        .await
    }

    /// The health rows for the same selection: one query, not one request per service.
    pub async fn find_health(
        &self,
        selection: &KeySelection,
        read_after: Option<Instant>,
    ) -> Result<Fetched<HealthByKey>, StoreError> {
        self.read_through(
            &self.health_cache,
            |store| &store.health,
            selection,
            read_after,
            HealthByKey::new,
        )
        .await
    }

    /// One table's rows for a selection through its cache: the rows the key filter selects, less
    /// those the filter's range only brushes (`admits`), made into the cached value by `finish`.
    async fn read_through<T: FromEntity, V>(
        &self,
        cache: &Arc<ReadCache<V, StoreError>>,
        table: fn(&Store) -> &TableClient,
        selection: &KeySelection,
        read_after: Option<Instant>,
        finish: fn(Vec<T>) -> V,
    ) -> Result<Fetched<V>, StoreError>
    where
        V: Cacheable + Send + Sync + 'static,
    {
        let filter = filter_for(selection);
        cache
            .get_or_fetch(filter.as_deref().unwrap_or_default(), read_after, |_| {
                // Owned copies only on a miss or a refresh: the fetch may outlive this call.
                let (store, selection, filter) = (self.clone(), selection.clone(), filter.clone());
                async move {
                    let mut rows: Vec<T> = store.find(table(&store), filter.as_deref()).await?;
                    rows.retain(|row| admits(&selection, row.row_key()));
                    Ok(finish(rows))
                }
            })
            .await
    }

    pub(super) async fn find<T: FromEntity>(
        &self,
        table: &TableClient,
        filter: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        self.with_tables(|| self.find_once(table, filter)).await
    }

    async fn find_once<T: FromEntity>(
        &self,
        table: &TableClient,
        filter: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let mut builder = table.query();
        if let Some(filter) = filter {
            builder = builder.filter(filter.to_owned());
        }
        // Pages of up to 1,000 entities, followed through continuation tokens until the end.
        let pages = builder.into_stream::<Decoded<T>>();
        let mut rows = Vec::new();
        let mut pages = std::pin::pin!(pages);
        // Each page is bounded on its own: a large registry may take many pages, none may hang.
        while let Some(page) = self
            .within_budget(async { Ok(pages.next().await.transpose()?) })
            .await?
        {
            rows.extend(page.entities.into_iter().map(|Decoded(row)| row));
        }
        Ok(rows)
    }
}

/// A row type read from query pages.
pub(super) trait FromEntity: Send + Sync + 'static {
    fn from_entity(entity: &Map<String, Value>) -> Self;
    fn row_key(&self) -> &str;
}

impl FromEntity for ServiceRecord {
    fn from_entity(entity: &Map<String, Value>) -> Self {
        ServiceRecord::from_entity(entity)
    }

    fn row_key(&self) -> &str {
        &self.row_key
    }
}

impl FromEntity for HealthRecord {
    fn from_entity(entity: &Map<String, Value>) -> Self {
        HealthRecord::from_entity(entity)
    }

    fn row_key(&self) -> &str {
        &self.row_key
    }
}

/// One entity of a page, decoded into its row as the page is parsed: only one entity's property map
/// exists at a time, not a page of 1,000 of them beside the rows made from them.
struct Decoded<T>(T);

impl<'de, T: FromEntity> Deserialize<'de> for Decoded<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entity = Map::<String, Value>::deserialize(deserializer)?;
        Ok(Decoded(T::from_entity(&entity)))
    }
}
