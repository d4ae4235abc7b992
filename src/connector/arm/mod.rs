//! The Service Connector sync (docs/arm-sync.md): on each sweep, before the probes and under the
//! sweep's lease, ask Azure Resource Manager for the linkers of every configured source, register
//! each linker's target as `domain::connector` maps it, and remove the rows an earlier sync created
//! whose linker is gone.
//!
//! - `client`: ARM's paged list operations, throttling and failures;
//! - `linkers`: a listed linker's JSON, and the registration it makes;
//! - `reconcile`: the listing against the registry's rows (what is added, kept, skipped, removed);
//! - this file: the sources (a resource group expands to its sites and container apps), the
//!   deadline over the whole round, and the one log line that reports it.
//!
//! A round never fails the sweep it runs in: its outcome is logged and the sweep goes on.

mod client;
mod linkers;
mod reconcile;

pub use client::ListError;
pub use reconcile::SyncReport;

use crate::configuration::{AppId, ArmSyncSettings, SyncSource};
use crate::store::Store;
use client::ArmClient;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::time::Instant;

/// ServiceLinker's current stable version (docs/arm-protocol.md).
pub const LINKER_API_VERSION: &str = "2024-04-01";
/// Web Apps "List By Resource Group".
pub const SITES_API_VERSION: &str = "2023-12-01";
/// Container Apps "List By Resource Group".
pub const CONTAINER_APPS_API_VERSION: &str = "2024-03-01";

/// Cheap to clone.
#[derive(Clone)]
pub struct ArmSync {
    inner: Arc<Inner>,
}

struct Inner {
    client: ArmClient,
    settings: ArmSyncSettings,
    store: Store,
}

/// What listing found: each source's linkers, and whether every source listed completely.
pub(super) struct LinkerListing {
    pub linkers: Vec<(AppId, Value)>,
    pub complete: bool,
    pub failures: usize,
}

impl ArmSync {
    pub fn new(settings: &ArmSyncSettings, store: Store) -> Self {
        ArmSync {
            inner: Arc::new(Inner {
                client: ArmClient::new(settings),
                settings: settings.clone(),
                store,
            }),
        }
    }

    /// One round, bounded by the sync's deadline; logs its outcome and never fails the caller.
    pub async fn run(&self) -> Option<SyncReport> {
        let inner = &*self.inner;
        let started = Instant::now();
        let deadline = started + inner.settings.deadline;
        let listing = self.list_all(deadline).await;
        let result =
            tokio::time::timeout_at(deadline, reconcile::apply(&inner.store, &listing)).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(Ok(report)) => {
                tracing::info!(
                    function = "HealthMonitor",
                    sources = inner.settings.sources.len(),
                    linkers = listing.linkers.len(),
                    added = report.added,
                    updated = report.updated,
                    unchanged = report.unchanged,
                    removed = report.removed,
                    skipped = report.skipped,
                    failed_sources = listing.failures,
                    complete = listing.complete,
                    duration_ms,
                    "{}",
                    report.summary(listing.complete)
                );
                Some(report)
            }
            Ok(Err(e)) => {
                tracing::warn!(function = "HealthMonitor", error = %e, duration_ms, "Service Connector sync stopped: storage failed; nothing was removed");
                None
            }
            Err(_) => {
                tracing::warn!(function = "HealthMonitor", duration_ms, "Service Connector sync stopped at its deadline while writing; nothing was removed");
                None
            }
        }
    }

    /// Every source's linkers; a source that fails to list is logged and makes the listing
    /// incomplete (its rows, and every other sync row, are then kept this round).
    async fn list_all(&self, deadline: Instant) -> LinkerListing {
        let inner = &*self.inner;
        let mut failures = 0;
        let mut apps = BTreeSet::new();
        for source in &inner.settings.sources {
            match source {
                SyncSource::App(id) => {
                    apps.insert(id.clone());
                }
                SyncSource::ResourceGroup {
                    subscription,
                    group,
                } => match self.apps_in(subscription, group, deadline).await {
                    Ok(found) => apps.extend(found),
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(function = "HealthMonitor", source = %SyncSource::resource_group_id(subscription, group), error = %e, "Service Connector sync: listing a resource group's apps failed");
                    }
                },
            }
        }
        let mut linkers = Vec::new();
        for app in apps {
            let path = format!("{app}/providers/Microsoft.ServiceLinker/linkers");
            match inner.client.list(&path, LINKER_API_VERSION, deadline).await {
                Ok(items) => linkers.extend(items.into_iter().map(|item| (app.clone(), item))),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(function = "HealthMonitor", source = %app, error = %e, "Service Connector sync: listing linkers failed");
                }
            }
        }
        LinkerListing {
            linkers,
            complete: failures == 0,
            failures,
        }
    }

    /// The sites (App Service and Functions) and container apps of one resource group.
    async fn apps_in(
        &self,
        subscription: &str,
        group: &str,
        deadline: Instant,
    ) -> Result<Vec<AppId>, ListError> {
        let base = SyncSource::resource_group_id(subscription, group);
        let mut apps = Vec::new();
        for (kind, version) in [
            ("Microsoft.Web/sites", SITES_API_VERSION),
            ("Microsoft.App/containerApps", CONTAINER_APPS_API_VERSION),
        ] {
            let path = format!("{base}/providers/{kind}");
            for item in self.inner.client.list(&path, version, deadline).await? {
                let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
                match AppId::parse(id) {
                    Some(app) => apps.push(app),
                    None => {
                        return Err(ListError::Malformed {
                            path,
                            reason: "an item's id is not an app's resource ID".to_owned(),
                        })
                    }
                }
            }
        }
        Ok(apps)
    }
}
