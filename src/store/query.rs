//! Reads by key selection: both tables, each through its read cache, so a warm handler answers a
//! discovery or a resolve without a storage round trip (see `cache` for the staleness bound).

use super::filter::{admits, filter_for};
use super::{HealthByKey, HealthRecord, Read, ServiceRecord, Store, StoreError};
use crate::domain::KeySelection;
use azure_data_tables::prelude::TableClient;
use futures::StreamExt;
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
                    let mut rows = store
                        .find(
                            &store.registry,
                            filter.as_deref(),
                            ServiceRecord::from_entity,
                        )
                        .await?;
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
                    let mut rows = store
                        .find(&store.health, filter.as_deref(), HealthRecord::from_entity)
                        .await?;
                    rows.retain(|h| admits(&selection, &h.row_key));
                    Ok(HealthByKey::new(rows))
                }
            })
            .await
    }

    async fn find<T>(
        &self,
        table: &TableClient,
        filter: Option<&str>,
        read: fn(&Map<String, Value>) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.with_tables(|| self.find_once(table, filter, read))
            .await
    }

    async fn find_once<T>(
        &self,
        table: &TableClient,
        filter: Option<&str>,
        read: fn(&Map<String, Value>) -> T,
    ) -> Result<Vec<T>, StoreError> {
        let mut builder = table.query();
        if let Some(filter) = filter {
            builder = builder.filter(filter.to_owned());
        }
        // Pages of up to 1,000 entities, followed through continuation tokens until the end.
        let pages = builder.into_stream::<Map<String, Value>>();
        let mut rows = Vec::new();
        let mut pages = std::pin::pin!(pages);
        // Each page is bounded on its own: a large registry may take many pages, none may hang.
        while let Some(page) = self
            .within_budget(async { Ok(pages.next().await.transpose()?) })
            .await?
        {
            rows.extend(page.entities.iter().map(read));
        }
        Ok(rows)
    }
}
