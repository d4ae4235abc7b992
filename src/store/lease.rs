//! The sweep lease: one row that lets exactly one standalone replica sweep per timer tick.
//!
//! Under the Functions host the timer is already a singleton (the host holds a blob lease). Several
//! standalone replicas (Container Apps, Kubernetes) each run their own timer, so before sweeping a
//! replica claims the row `(~lease, HealthMonitor)` in the state table (`STATE_TABLE`, not HealthStatus,
//! so health reads hold services only):
//!
//! - no row yet: insert it; whoever inserts first wins (the others get 409);
//! - the row already names this tick: someone swept it, stand aside;
//! - the row's holder is another replica and its `expiresAt` is in the future: a sweep is still
//!   running there, stand aside;
//! - otherwise: replace the row on the ETag just read; of several replicas racing, one write
//!   succeeds and the rest get 412.
//!
//! A finished sweep sets `expiresAt` to now (release), keeping `tick`, so the next tick need not
//! wait for the expiry, which only matters when the holder died mid-sweep.
//!
//! Versions before the state table kept this row in HealthStatus. Such a leftover is never read
//! again (a new replica takes the lease in the state table) and never judged: `~lease` can never be
//! a service type (types start with a letter or digit), so it never meets a registration, and the
//! sweep leaves rows whose keys do not parse alone. An operator may delete it.

use super::error::{is_row_missing, is_status};
use super::{Store, StoreError};
use azure_core::StatusCode;
use azure_data_tables::IfMatchCondition;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::time::Duration;

const LEASE_PARTITION: &str = "~lease";
const LEASE_ROW: &str = "HealthMonitor";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    Acquired,
    /// Another replica swept this tick, or is still sweeping: the holder's id.
    HeldBy(String),
}

impl Store {
    /// Ends this holder's lease now (if it still holds it), keeping the tick it swept.
    pub async fn release_sweep_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.within_budget(async {
            let entity = self
                .state
                .partition_key_client(LEASE_PARTITION)
                .entity_client(LEASE_ROW);
            let found = match entity.get::<Map<String, Value>>().await {
                Ok(found) => found,
                Err(e) if is_row_missing(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            if found.entity.get("holder").and_then(Value::as_str) != Some(holder) {
                return Ok(());
            }
            let mut row = found.entity.clone();
            row.retain(|name, _| !name.starts_with("odata.") && name != "Timestamp");
            row.insert("expiresAt".into(), crate::now_iso().into());
            match entity
                .update(Value::Object(row), IfMatchCondition::Etag(found.etag))?
                .await
            {
                Ok(_) => Ok(()),
                // Taken over in between: it is someone else's now.
                Err(e) if is_status(&e, StatusCode::PreconditionFailed) || is_row_missing(&e) => {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Claims the sweep lease for `tick` (the timer occurrence being served) on behalf of `holder`,
    /// valid for `ttl` (the longest a sweep may run).
    pub async fn take_sweep_lease(
        &self,
        holder: &str,
        tick: DateTime<Utc>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<LeaseOutcome, StoreError> {
        self.within_budget(async {
            self.ensure_tables().await?;
            let tick = crate::iso(tick);
            let expires = chrono::Duration::from_std(ttl)
                .ok()
                .and_then(|ttl| now.checked_add_signed(ttl))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let row = json!({
                "PartitionKey": LEASE_PARTITION,
                "RowKey": LEASE_ROW,
                "holder": holder,
                "tick": tick,
                "expiresAt": crate::iso(expires),
            });
            let entity = self
                .state
                .partition_key_client(LEASE_PARTITION)
                .entity_client(LEASE_ROW);
            let written = match entity.get::<Map<String, Value>>().await {
                Err(e) if is_row_missing(&e) => {
                    self.state.insert::<_, Value>(row)?.await.map(|_| ())
                }
                Err(e) => return Err(e.into()),
                Ok(found) => {
                    let text = |name: &str| {
                        found
                            .entity
                            .get(name)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (current_holder, current_tick) = (text("holder"), text("tick"));
                    let still_running = DateTime::parse_from_rfc3339(&text("expiresAt"))
                        .is_ok_and(|expires| expires > now);
                    if current_tick == tick || (still_running && current_holder != holder) {
                        return Ok(LeaseOutcome::HeldBy(current_holder));
                    }
                    entity
                        .update(row, IfMatchCondition::Etag(found.etag))?
                        .await
                        .map(|_| ())
                }
            };
            match written {
                Ok(()) => Ok(LeaseOutcome::Acquired),
                // Another replica wrote first.
                Err(e)
                    if is_status(&e, StatusCode::Conflict)
                        || is_status(&e, StatusCode::PreconditionFailed)
                        || is_row_missing(&e) =>
                {
                    Ok(LeaseOutcome::HeldBy("another replica".to_owned()))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }
}
