//! The registrant's writes to the registry: a registration (a read, then a write conditional on what
//! was read, retried while other writers race for the row) and a heartbeat (a merge of one property).

use super::error::{is_row_missing, is_status};
use super::{ServiceRecord, Store, StoreError, Stored};
use crate::domain::{InstanceKey, Registration};
use azure_core::StatusCode;
use azure_data_tables::IfMatchCondition;
use serde_json::{Map, Value};

/// Optimistic-concurrency attempts for a registration racing another writer of the same row.
const REGISTER_ATTEMPTS: usize = 5;

impl Store {
    /// Upserts a registration. An existing row keeps its `registeredAt`; the write is conditional on
    /// the ETag read, so two registrations racing for one row cannot lose the original timestamp.
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

        for _ in 0..REGISTER_ATTEMPTS {
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
                        .update(record.to_entity(), IfMatchCondition::Etag(found.etag))?
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
                // Someone else wrote (or deleted) the row between our read and our write: read again.
                Err(e)
                    if is_status(&e, StatusCode::PreconditionFailed)
                        || is_status(&e, StatusCode::Conflict)
                        || is_row_missing(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::unavailable(
            "the registration row kept changing under concurrent writers",
        ))
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
