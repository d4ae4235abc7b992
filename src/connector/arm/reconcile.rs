//! Each source's listed linkers against the registry's rows, one source at a time, so no round
//! holds more than one source's linkers; across sources it keeps only the keys they produced.
//!
//! - A linker's target is registered through the store's register path (which keeps
//!   `registeredAt`) unless its row already says the same (`unchanged`: not written at all).
//! - A row a person or client registered (metadata `source` other than `service-connector`) is
//!   never overwritten: the linker is `skipped` (counted in its source's summary line).
//! - Only when every source listed completely are rows removed, and only rows this sync marked
//!   (`source: service-connector`, `syncedBy: arm`) whose key no listed linker produced. A row is
//!   kept while any linker still maps to it (two apps linked to one database share one row).
//! - Two linkers that map to one key: the first (sources in ID order) writes its metadata.
//!
//! What this gives up: a person registering the same key between this round's read and its write
//! is overwritten once (the store has no conditional register; the next manual registration wins).

use super::linkers::{self, Key, Reason, Skip};
use super::listed::SourceLinkers;
use crate::domain::connector::{is_service_connector, is_synced};
use crate::domain::{InstanceKey, Registration, ServiceName, ServiceType};
use crate::store::{Fetched, ServiceRecord, Store, StoreError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

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

/// The registry's rows as read (shared with the read cache, not copied), indexed by key.
struct Rows {
    all: Fetched<Vec<ServiceRecord>>,
    by_key: HashMap<Key, usize>,
}

impl Rows {
    fn get(&self, key: &Key) -> Option<&ServiceRecord> {
        self.by_key.get(key).map(|&i| &self.all[i])
    }
}

/// One round's reconciliation, fed one source at a time.
pub(super) struct Round<'a> {
    store: &'a Store,
    /// The registry's rows, read once, before the first write: what writes compare with and what
    /// the removal step judges.
    rows: Option<Rows>,
    /// Every key a listed linker produced this round (written, unchanged or held by a person).
    claimed: HashSet<Key>,
    pub report: SyncReport,
}

impl<'a> Round<'a> {
    pub fn new(store: &'a Store) -> Self {
        Round {
            store,
            rows: None,
            claimed: HashSet::new(),
            report: SyncReport::default(),
        }
    }

    async fn load_rows(&mut self) -> Result<(), StoreError> {
        if self.rows.is_none() {
            let all = self
                .store
                .find_services(&crate::domain::KeySelection::all(), None)
                .await?;
            let by_key = all
                .iter()
                .enumerate()
                .map(|(i, r)| ((r.partition_key.clone(), r.row_key.clone()), i))
                .collect();
            self.rows = Some(Rows { all, by_key });
        }
        Ok(())
    }

    /// Writes what one completely listed source's linkers make, and counts what they skip
    /// (`listed.skipped` gains the keys people hold). A key an earlier source claimed is left to it.
    pub async fn apply(&mut self, listed: &mut SourceLinkers) -> Result<(), StoreError> {
        self.load_rows().await?;
        let rows = self.rows.as_ref().expect("loaded above");
        let now = crate::now_iso();
        for (key, linker) in std::mem::take(&mut listed.wanted) {
            if !self.claimed.insert(key.clone()) {
                continue;
            }
            let registration = match linkers::registration(&linker, listed.source.as_str()) {
                Ok(registration) => registration,
                Err(skip) => {
                    listed.skip(skip);
                    continue;
                }
            };
            match rows.get(&key) {
                Some(row) if !is_service_connector(&row.metadata.value()) => {
                    listed.skip(Skip {
                        reason: Reason::Held,
                        linker_id: Some(linker.id),
                        detail: format!("its key {}/{} is registered by a person or client (metadata source is not service-connector), so it is left as it is", key.0, key.1),
                    });
                }
                Some(row) if same(row, &registration) => self.report.unchanged += 1,
                Some(_) => {
                    self.store.register(&registration, &now).await?;
                    self.report.updated += 1;
                }
                None => {
                    self.store.register(&registration, &now).await?;
                    self.report.added += 1;
                }
            }
        }
        self.report.skipped += listed.skipped.total();
        Ok(())
    }

    /// Once every source listed completely: removes the rows this sync made whose key no listed
    /// linker produced.
    pub async fn remove_gone(&mut self) -> Result<(), StoreError> {
        self.load_rows().await?;
        let rows = self.rows.as_ref().expect("loaded above");
        for row in rows.all.iter() {
            let key = (row.partition_key.clone(), row.row_key.clone());
            if !is_synced(&row.metadata.value())
                || self.claimed.contains(&key)
                || row.instance_id.is_some()
            {
                continue;
            }
            let Some(instance) = instance_key(row) else {
                continue;
            };
            if self.store.deregister(&instance).await? {
                self.report.removed += 1;
                let metadata = row.metadata.value();
                let linker_id = metadata.get("linkerId").and_then(|v| v.as_str());
                tracing::info!(function = "HealthMonitor", service_type = %key.0, service_name = %key.1, linker = linker_id.unwrap_or(""), "Service Connector sync: removed: its linker is gone");
            }
        }
        Ok(())
    }
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
