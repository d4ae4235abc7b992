//! The Service Connector sync (docs/arm-sync.md): on each sweep, before the probes and under the
//! sweep's lease, ask Azure Resource Manager for the linkers of every configured source, register
//! each linker's target as `domain::connector` maps it, and remove the rows an earlier sync created
//! whose linker is gone.
//!
//! - `client`: ARM's paged list operations, throttling and failures; `page`: one page read item
//!   by item;
//! - `linkers`: a listed linker's wire shape, and the registration it makes;
//! - `listed`: one source's linkers as they are kept while its pages arrive, and its skip counts;
//! - `reconcile`: each source's linkers against the registry's rows (what is added, kept, skipped,
//!   removed);
//! - this file: the sources (a resource group expands to its sites and container apps), one
//!   source at a time from its listing to its writes, the deadline over the whole round, and the
//!   log lines that report it.
//!
//! Memory: one page's bytes while it is read, one source's mapped linkers until they are written,
//! and the keys written so far; never a listing's items, nor every source's linkers at once.
//!
//! A round never fails the sweep it runs in: its outcome is logged and the sweep goes on.

mod client;
mod linkers;
mod listed;
mod page;
mod reconcile;

pub use client::ListError;
pub use reconcile::SyncReport;

use crate::configuration::{AppId, ArmSyncSettings, SyncSource};
use crate::store::{Store, StoreError};
use client::ArmClient;
use listed::SourceLinkers;
use reconcile::Round;
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

/// Why a round stopped before its end (nothing is removed then).
enum Stopped {
    Storage(StoreError),
    Deadline,
}

/// What a round did, for its log line.
struct Outcome {
    report: SyncReport,
    linkers: usize,
    failures: usize,
}

/// An item of a resource group's listing of sites or container apps: its ID is all the sync reads.
#[derive(serde::Deserialize)]
struct Resource {
    id: String,
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
        let result = self.round(deadline).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(outcome) => {
                let report = outcome.report;
                let complete = outcome.failures == 0;
                tracing::info!(
                    function = "HealthMonitor",
                    sources = inner.settings.sources.len(),
                    linkers = outcome.linkers,
                    added = report.added,
                    updated = report.updated,
                    unchanged = report.unchanged,
                    removed = report.removed,
                    skipped = report.skipped,
                    failed_sources = outcome.failures,
                    complete,
                    duration_ms,
                    "{}",
                    report.summary(complete)
                );
                Some(report)
            }
            Err(Stopped::Storage(e)) => {
                tracing::warn!(function = "HealthMonitor", error = %e, duration_ms, "Service Connector sync stopped: storage failed; nothing was removed");
                None
            }
            Err(Stopped::Deadline) => {
                tracing::warn!(function = "HealthMonitor", duration_ms, "Service Connector sync stopped at its deadline while writing; nothing was removed");
                None
            }
        }
    }

    /// Every source in ID order, each listed and then written before the next is listed; a source
    /// that fails to list is logged and makes the round incomplete (its rows, and every other
    /// sync row, are then kept this round). Removal comes last, and only after a complete round.
    async fn round(&self, deadline: Instant) -> Result<Outcome, Stopped> {
        let inner = &*self.inner;
        let (apps, mut failures) = self.apps(deadline).await;
        let mut round = Round::new(&inner.store);
        let mut linkers = 0;
        for app in apps {
            let mut listed = SourceLinkers::new(app);
            let path = format!(
                "{}/providers/Microsoft.ServiceLinker/linkers",
                listed.source
            );
            let result = inner
                .client
                .list(&path, LINKER_API_VERSION, deadline, |item| {
                    listed.add(item);
                    Ok(())
                })
                .await;
            if let Err(e) = result {
                failures += 1;
                tracing::warn!(function = "HealthMonitor", source = %listed.source, error = %e, "Service Connector sync: listing linkers failed");
                continue;
            }
            linkers += listed.items;
            within(deadline, round.apply(&mut listed)).await?;
            let skipped = listed.skipped;
            if skipped.total() > 0 {
                tracing::info!(
                    function = "HealthMonitor",
                    source = %listed.source,
                    skipped = skipped.total(),
                    not_azure_resource = skipped.not_azure_resource,
                    unmapped = skipped.unmapped,
                    invalid = skipped.invalid,
                    held = skipped.held,
                    malformed = skipped.malformed,
                    "{}",
                    skipped.summary(&listed.source)
                );
            }
        }
        if failures == 0 {
            within(deadline, round.remove_gone()).await?;
        }
        Ok(Outcome {
            report: round.report,
            linkers,
            failures,
        })
    }

    /// The apps the sources name, resource groups expanded; and how many groups failed to list.
    async fn apps(&self, deadline: Instant) -> (BTreeSet<AppId>, usize) {
        let mut failures = 0;
        let mut apps = BTreeSet::new();
        for source in &self.inner.settings.sources {
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
        (apps, failures)
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
            let on_item = |item: Option<Resource>| {
                let app = item.and_then(|r| AppId::parse(&r.id));
                apps.push(app.ok_or("an item's id is not an app's resource ID")?);
                Ok(())
            };
            self.inner
                .client
                .list(&path, version, deadline, on_item)
                .await?;
        }
        Ok(apps)
    }
}

/// A round's storage step, within its deadline.
async fn within<T>(
    deadline: Instant,
    step: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, Stopped> {
    match tokio::time::timeout_at(deadline, step).await {
        Ok(result) => result.map_err(Stopped::Storage),
        Err(_) => Err(Stopped::Deadline),
    }
}
