//! The listed linkers against the registry's rows.
//!
//! - A linker's target is registered through the store's register path (which keeps
//!   `registeredAt`) unless its row already says the same (`unchanged`: not written at all).
//! - A row a person or client registered (metadata `source` other than `service-connector`) is
//!   never overwritten: the linker is `skipped` and the key named at info.
//! - Only when every source listed completely are rows removed, and only rows this sync marked
//!   (`source: service-connector`, `syncedBy: arm`) whose key no listed linker produced. A row is
//!   kept while any linker still maps to it (two apps linked to one database share one row).
//! - Two linkers that map to one key: the first (sources in ID order) writes its metadata.
//!
//! What this gives up: a person registering the same key between this round's read and its write
//! is overwritten once (the store has no conditional register; the next manual registration wins).

use super::linkers::{self, Skip};
use super::LinkerListing;
use crate::domain::connector::{is_service_connector, is_synced};
use crate::domain::{InstanceKey, Registration, ServiceName, ServiceType};
use crate::store::{ServiceRecord, Store, StoreError};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Linkers that register nothing: unmapped or malformed, or whose key a person holds.
    pub skipped: usize,
}

impl SyncReport {
    pub fn summary(&self, complete: bool) -> String {
        format!(
            "Service Connector sync: added {}, updated {}, unchanged {}, removed {}, skipped {}{}",
            self.added,
            self.updated,
            self.unchanged,
            self.removed,
            self.skipped,
            if complete {
                ""
            } else {
                "; a source failed to list, so nothing was removed"
            }
        )
    }
}

type Key = (String, String);

pub(super) async fn apply(
    store: &Store,
    listing: &LinkerListing,
) -> Result<SyncReport, StoreError> {
    let mut report = SyncReport::default();
    let mut wanted: BTreeMap<Key, Registration> = BTreeMap::new();
    for (source, item) in &listing.linkers {
        let linker = match linkers::parse_linker(item) {
            Ok(linker) => linker,
            Err(Skip::Malformed(reason)) => {
                report.skipped += 1;
                tracing::warn!(function = "HealthMonitor", source = %source, reason, "Service Connector sync: a malformed linker was skipped");
                continue;
            }
            Err(Skip::Unsupported { linker_id, reason }) => {
                report.skipped += 1;
                tracing::info!(function = "HealthMonitor", linker = %linker_id, "Service Connector sync: linker skipped: {reason}");
                continue;
            }
        };
        match linkers::registration(&linker, source.as_str()) {
            Ok(registration) => {
                let key = (
                    registration.key.partition_key().to_owned(),
                    registration.key.row_key(),
                );
                wanted.entry(key).or_insert(registration);
            }
            Err(reason) => {
                report.skipped += 1;
                tracing::info!(function = "HealthMonitor", linker = %linker.id, "Service Connector sync: linker skipped: {reason}");
            }
        }
    }

    let rows = store
        .find_services(&crate::domain::KeySelection::all(), None)
        .await?;
    let existing: HashMap<Key, &ServiceRecord> = rows
        .iter()
        .map(|r| ((r.partition_key.clone(), r.row_key.clone()), r))
        .collect();
    let now = crate::now_iso();
    for (key, registration) in &wanted {
        match existing.get(key) {
            Some(row) if !is_service_connector(&row.metadata.value()) => {
                report.skipped += 1;
                tracing::info!(function = "HealthMonitor", service_type = %key.0, service_name = %key.1, "Service Connector sync: key skipped: registered by a person or client (metadata source is not service-connector), so it is left as it is");
            }
            Some(row) if same(row, registration) => report.unchanged += 1,
            Some(_) => {
                store.register(registration, &now).await?;
                report.updated += 1;
            }
            None => {
                store.register(registration, &now).await?;
                report.added += 1;
            }
        }
    }

    if listing.complete {
        for row in rows.iter().filter(|r| is_synced(&r.metadata.value())) {
            let key = (row.partition_key.clone(), row.row_key.clone());
            if wanted.contains_key(&key) || row.instance_id.is_some() {
                continue;
            }
            let Some(instance) = instance_key(row) else {
                continue;
            };
            if store.deregister(&instance).await? {
                report.removed += 1;
                let metadata = row.metadata.value();
                let linker_id = metadata.get("linkerId").and_then(|v| v.as_str());
                tracing::info!(function = "HealthMonitor", service_type = %key.0, service_name = %key.1, linker = linker_id.unwrap_or(""), "Service Connector sync: removed: its linker is gone");
            }
        }
    }
    Ok(report)
}

/// Whether the stored row already says what the registration would write.
fn same(row: &ServiceRecord, registration: &Registration) -> bool {
    row.endpoint == registration.endpoint
        && row.health_endpoint == registration.health_endpoint
        && row.metadata.value() == Value::Object(registration.metadata.clone())
        && row.health_check == registration.health_check
        && row.version == registration.version
        && row.ttl_seconds.is_none()
        && row.weight.is_none()
}

fn instance_key(row: &ServiceRecord) -> Option<InstanceKey> {
    Some(InstanceKey {
        service_type: ServiceType::parse(&row.partition_key).ok()?,
        service_name: ServiceName::parse(&row.row_key).ok()?,
        instance_id: None,
    })
}
