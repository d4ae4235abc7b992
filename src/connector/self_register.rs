//! Self-registration: turns what `domain::connector` found in this app's Service Connector
//! variables into registrations, through the same validation (`Registration::parse`) and the same
//! write (`Store::register`, which keeps `registeredAt`) as `POST /api/ServiceRegistrar`.
//!
//! - Idempotent: every run re-registers the same rows, so it can run at start-up and before every
//!   sweep; a variable that changed is picked up on the next run.
//! - A row somebody registered by hand (its `metadata.source` is not `service-connector`) is never
//!   replaced: the person's registration is the better statement of what the service is. The check
//!   is a read before the write, not a condition on it (`Store::register` has none to offer): a
//!   manual registration landing between the two, or one made through another replica within its
//!   read cache's lifetime (`protected`), is replaced by this run's row, and the next manual
//!   registration of the key wins again for good.
//! - A row the ARM sync wrote (`syncedBy: arm`, `connector::arm`) is left to the sync too: it
//!   carries the linker, and the sync removes it when the linker goes.
//! - Storage faults end the run with a warning; the next sweep tries again. Nothing here can stop
//!   start-up or fail a sweep.
//! - Logs name variables and keys, never values: only the target's host, port and database (in its
//!   endpoint and name) are ever written or logged.

use crate::configuration::ConnectorVariables;
use crate::domain::connector::{discover, is_service_connector, is_synced, Discovery};
use crate::domain::{InstanceKey, KeySelection, Registration};
use crate::store::{Store, StoreError};

/// What one run did, for its log line and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SelfRegistrationReport {
    pub found: usize,
    pub registered: usize,
    /// Variables that did not become a registration, and why (no values).
    pub skipped: Vec<String>,
    /// Keys left alone because a person or client registered them.
    pub kept: Vec<String>,
    /// The storage fault that ended the run early, redacted.
    pub failed: Option<String>,
}

/// Registers every connection the variables name; never fails (see the module comment).
pub async fn run(store: &Store, variables: &ConnectorVariables) -> SelfRegistrationReport {
    let Discovery {
        connections,
        skipped,
    } = discover(variables.expose());
    let mut report = SelfRegistrationReport {
        found: connections.len(),
        ..Default::default()
    };
    for skip in skipped {
        tracing::warn!(variable = %skip.variable, reason = %skip.reason, "Service Connector variable skipped");
        report
            .skipped
            .push(format!("{} ({})", skip.variable, skip.reason));
    }
    let now = crate::now_iso();
    for connection in connections {
        let registration = match Registration::parse(&connection.registration_body()) {
            Ok(registration) => registration,
            Err(e) => {
                // The field names what was wrong; the message may quote the value, so it stays out.
                let reason = format!("gives a {} that is not valid", e.field);
                tracing::warn!(variable = %connection.variable, reason = %reason, "Service Connector variable skipped");
                report
                    .skipped
                    .push(format!("{} ({reason})", connection.variable));
                continue;
            }
        };
        let result = match protected(store, &registration.key).await {
            Ok(Some(source)) => {
                let key = registration.key.service_id();
                tracing::info!(
                    key = %key,
                    variable = %connection.variable,
                    source = %source,
                    "Service Connector target not registered: the key is already registered by someone else, whose row is kept"
                );
                report.kept.push(key);
                continue;
            }
            Ok(None) => store.register(&registration, &now).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => report.registered += 1,
            Err(e) => {
                tracing::warn!(error = %e, "Service Connector self-registration stopped by a storage fault; the next sweep tries again");
                report.failed = Some(e.to_string());
                break;
            }
        }
    }
    tracing::info!(
        found = report.found,
        registered = report.registered,
        skipped = report.skipped.len(),
        kept = report.kept.len(),
        skipped_variables = %report.skipped.join(", "),
        kept_keys = %report.kept.join(", "),
        "Service Connector self-registration: found {}, registered {}, skipped {}, kept {}",
        report.found,
        report.registered,
        report.skipped.len(),
        report.kept.len(),
    );
    report
}

/// The `metadata.source` of the row at `key` when it is somebody else's (`None`: no row, or ours).
///
/// A read through the store's cache: this process's own writes clear it, so what it may miss is a
/// registration made through another replica in the last `DISCOVERY_CACHE_TTL_MS`.
async fn protected(store: &Store, key: &InstanceKey) -> Result<Option<String>, StoreError> {
    let selection = KeySelection {
        service_type: Some(key.service_type.clone()),
        service_name: Some(key.service_name.clone()),
        instance_id: None,
    };
    let rows = store.find_services(&selection, None).await?;
    let row_key = key.row_key();
    Ok(rows
        .iter()
        .find(|row| row.row_key == row_key)
        .and_then(|row| {
            let metadata = row.metadata.value();
            if !is_service_connector(&metadata) {
                let source = metadata.get("source").and_then(|s| s.as_str());
                return Some(source.unwrap_or("a manual registration").to_owned());
            }
            // Where the ARM sync also sees this service, its row (with the linker) is kept, so the
            // two do not rewrite each other's row on every sweep.
            is_synced(&metadata).then(|| "the sync from Azure Resource Manager".to_owned())
        }))
}
