//! The registrant's writes to the registry: a registration (a read of `registeredAt`, then a replace
//! or an insert) and a heartbeat (a merge of one property).
//!
//! Why a re-registration replaces the row unconditionally (`If-Match: *`) instead of on the ETag it
//! read: heartbeats change the ETag every few seconds, so a conditional replace of a busy row loses
//! to them again and again (50 re-registrations racing 4 heartbeat clients: 33 gave up), although
//! nothing it cares about changed. What it must not lose is `registeredAt`, and only the creation
//! of the row sets that: a heartbeat never does, and every re-registration carries the value it
//! read. So the replace needs the row to still exist (`If-Match: *` fails with 404 otherwise) and
//! nothing more. The races left are with a row's deletion and creation (a deregistration, the
//! sweep's expiry, another first registration); each is a 404 or a 409 that sends the loop back to
//! read, after a short randomised back-off. A loop that still loses is `Contended`, not an outage.
//!
//! What this gives up: a deregistration and a new first registration landing together between this
//! registration's read and its write leave the older `registeredAt` (a window of one round trip).

use super::error::{is_row_missing, is_status};
use super::{ServiceRecord, Store, StoreError, Stored};
use crate::domain::{InstanceKey, Registration};
use azure_core::StatusCode;
use azure_data_tables::IfMatchCondition;
use serde_json::{Map, Value};
use std::time::Duration;

/// Read-then-write rounds a registration tries while the row keeps being created and deleted under
/// it; the storage budget bounds them as well.
const REGISTER_ATTEMPTS: u32 = 8;
/// The first back-off between rounds; it doubles each round, and each wait is drawn at random from
/// zero to that (full jitter), so racing writers spread out instead of colliding again.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

impl Store {
    /// Upserts a registration. An existing row keeps its `registeredAt`, every other property is
    /// replaced (see the module comment for why without an ETag condition).
    pub async fn register(&self, registration: &Registration, now: &str) -> Result<(), StoreError> {
        let result = self
            .within_budget(self.register_unbounded(registration, now))
            .await;
        self.forget_reads();
        result
    }

    async fn register_unbounded(
        &self,
        registration: &Registration,
        now: &str,
    ) -> Result<(), StoreError> {
        self.ensure_tables().await?;
        let key = &registration.key;
        let entity_client = self
            .registry
            .partition_key_client(key.partition_key())
            .entity_client(key.row_key());
        let now = Stored::read(now);
        let mut record = ServiceRecord {
            partition_key: key.partition_key().to_owned(),
            row_key: key.row_key(),
            service_name: key.service_name.to_string(),
            endpoint: registration.endpoint.clone(),
            health_endpoint: registration.health_endpoint.clone(),
            service_type: key.service_type.to_string(),
            version: registration.version.clone(),
            tags: Value::from(registration.tags.clone()),
            metadata: Value::Object(registration.metadata.clone()),
            registered_at: Some(now.clone()),
            last_heartbeat: Some(now.clone()),
            instance_id: key.instance_id.as_ref().map(ToString::to_string),
            ttl_seconds: registration.ttl_seconds.map(i64::from),
            weight: registration.weight,
            health_check: registration.health_check.clone(),
            etag: None,
        };

        for attempt in 0..REGISTER_ATTEMPTS {
            if attempt > 0 {
                let ceiling = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
            }
            let existing = match entity_client.get::<Map<String, Value>>().await {
                Ok(found) => Some(found),
                Err(e) if is_row_missing(&e) => None,
                Err(e) => return Err(e.into()),
            };
            let outcome = match existing {
                Some(found) => {
                    // Kept as stored, even text this handler cannot read as a time.
                    let registered_at = ServiceRecord::from_entity(&found.entity).registered_at;
                    record.registered_at = registered_at.or_else(|| Some(now.clone()));
                    entity_client
                        .update(record.to_entity(), IfMatchCondition::Any)?
                        .await
                        .map(|_| ())
                }
                None => {
                    record.registered_at = Some(now.clone());
                    // A new registration starts with no health history, whatever a former holder
                    // of this key left behind (a StatefulSet pod keeps its name across restarts).
                    self.delete_row(&self.health, key.partition_key(), &key.row_key(), None)
                        .await?;
                    self.registry
                        .insert::<_, Value>(record.to_entity())?
                        .await
                        .map(|_| ())
                }
            };
            match outcome {
                Ok(()) => return Ok(()),
                // The row was created (409) or deleted (404) between our read and our write: read
                // again. (412 cannot happen without an ETag condition; kept for safety.)
                Err(e)
                    if is_status(&e, StatusCode::PreconditionFailed)
                        || is_status(&e, StatusCode::Conflict)
                        || is_row_missing(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Contended {
            detail: format!(
                "the registration row was created and deleted by concurrent requests {REGISTER_ATTEMPTS} times in a row"
            ),
        })
    }

    /// Moves `lastHeartbeat` of an existing row and nothing else (a merge, so every other property,
    /// including ones this version does not know, stays). `false`: no such row, and none was created.
    pub async fn heartbeat(&self, key: &InstanceKey, now: &str) -> Result<bool, StoreError> {
        let result = self
            .within_budget(async {
                self.ensure_tables().await?;
                let entity = ServiceRecord::heartbeat_entity(key, now);
                let merge = self
                    .registry
                    .partition_key_client(key.partition_key())
                    .entity_client(key.row_key())
                    .merge(entity, IfMatchCondition::Any)?;
                match merge.await {
                    Ok(_) => Ok(true),
                    Err(e) if is_row_missing(&e) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            })
            .await;
        self.forget_reads();
        result
    }
}
