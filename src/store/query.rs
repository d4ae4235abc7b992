//! Reads by key selection: both tables, each through its read cache, so a warm handler answers a
//! discovery or a resolve without a storage round trip (see `cache` for the staleness bound).

use super::filter::{admits, filter_for};
use super::{HealthByKey, HealthRecord, Read, ServiceRecord, Store, StoreError};
use crate::domain::KeySelection;
use azure_data_tables::prelude::TableClient;
use futures::StreamExt;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::time::Instant;

impl Store {
    /// The registry rows a selection covers, in (PartitionKey, RowKey) order. `read_after`: only
    /// rows read from storage after this instant will do (see `ReadCache::get_or_fetch`).
    pub async fn find_services(
        &self,
        selection: &KeySelection,
        read_after: Option<Instant>,
    ) -> Result<Read<Vec<ServiceRecord>>, StoreError> {
        let filter = filter_for(selection);
        let key = filter.clone().unwrap_or_default();
        self.services_cache
            .get_or_fetch(&key, read_after, |_| {
                let (store, selection) = (self.clone(), selection.clone());
                async move {
                    let mut rows: Vec<ServiceRecord> =
                        store.find(&store.registry, filter.as_deref()).await?;
                    rows.retain(|row| admits(&selection, &row.row_key));
                    // Keys are unique, so an unstable sort gives the same order, without the
                    // stable sort's scratch copy of the rows (at 10,000 rows about 5 MiB, at the
                    // peak).
                    rows.sort_unstable_by(|a, b| {
                        (&a.partition_key, &a.row_key).cmp(&(&b.partition_key, &b.row_key))
                    });
                    // Kept for the cache's lifetime: without the slack the doubling left.
                    rows.shrink_to_fit();
                    Ok(rows)
                }
            })
            .await
    }

    /// The health rows for the same selection: one query, not one request per service.
    pub async fn find_health(
        &self,
        selection: &KeySelection,
        read_after: Option<Instant>,
    ) -> Result<Read<HealthByKey>, StoreError> {
        let filter = filter_for(selection);
        let key = filter.clone().unwrap_or_default();
        self.health_cache
            .get_or_fetch(&key, read_after, |_| {
                let (store, selection) = (self.clone(), selection.clone());
                async move {
                    let mut rows: Vec<HealthRecord> =
                        store.find(&store.health, filter.as_deref()).await?;
                    rows.retain(|h| admits(&selection, &h.row_key));
                    Ok(HealthByKey::new(rows))
                }
            })
            .await
    }

    async fn find<T: FromEntity>(
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
trait FromEntity: Send + Sync + 'static {
    fn from_entity(entity: &Map<String, Value>) -> Self;
}

impl FromEntity for ServiceRecord {
    fn from_entity(entity: &Map<String, Value>) -> Self {
        ServiceRecord::from_entity(entity)
    }
}

impl FromEntity for HealthRecord {
    fn from_entity(entity: &Map<String, Value>) -> Self {
        HealthRecord::from_entity(entity)
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
