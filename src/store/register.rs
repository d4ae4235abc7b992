//! The registrant's writes to the registry: a registration (an insert, or a read of `registeredAt`
//! and a replace) and a heartbeat (a merge of one property, recorded in `heartbeats` instead of
//! invalidating the caches).
//!
//! Round trips, because where storage is the bottleneck they are the registration rate: a new row
//! is one insert. A row that exists is a read and a replace: two round trips when this process
//! knows the row exists (`known`), three when it does not (the insert's 409 says so first). Nothing
//! else is on the path: no table creation (only after a `TableNotFound`, see `with_tables`), and no
//! delete of a health row a former holder of the key left behind. That delete used to make a pod
//! that returns under its old name start as not yet checked; now a health row with circuit memory
//! checked before the registration's `registeredAt` is ignored wherever rows are joined
//! (`HealthRecord::describes`), and the sweep's next verdict replaces it.
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
use super::{ConsulFields, JsonText, ServiceRecord, Store, StoreError, Stored};
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
        self.register_with(registration, &ConsulFields::default(), now)
            .await
    }

    /// `register`, with the properties a registration through the Consul API adds.
    ///
    /// The row's `revision` (docs/consul.md, "The index"): a new row gets a new one; a row that
    /// exists keeps the one it had when nothing Consul's clients see changed (`same_content`) and it
    /// had not lapsed, and gets a new one otherwise. `createRevision` is set once, at creation.
    pub async fn register_with(
        &self,
        registration: &Registration,
        consul: &ConsulFields,
        now: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .within_budget(self.register_unbounded(registration, consul, now))
            .await;
        self.forget_reads();
        result
    }

    async fn register_unbounded(
        &self,
        registration: &Registration,
        consul: &ConsulFields,
        now: &str,
    ) -> Result<(), StoreError> {
        let key = &registration.key;
        let (partition_key, row_key) = (key.partition_key(), key.row_key());
        let now = Stored::read(now);
        let mut record = ServiceRecord {
            partition_key: partition_key.to_owned(),
            row_key: row_key.clone(),
            service_name: key.service_name.to_string(),
            endpoint: registration.endpoint.clone(),
            health_endpoint: registration.health_endpoint.clone(),
            service_type: key.service_type.to_string(),
            version: registration.version.clone(),
            tags: JsonText::of(&Value::from(registration.tags.clone())),
            metadata: JsonText::of(&Value::Object(registration.metadata.clone())),
            registered_at: Some(now.clone()),
            last_heartbeat: Some(now.clone()),
            instance_id: key.instance_id.as_ref().map(ToString::to_string),
            ttl_seconds: registration.ttl_seconds.map(i64::from),
            weight: registration.weight,
            health_check: registration.health_check.clone(),
            depends_on: registration.depends_on.clone(),
            consul: consul.clone(),
            revision: None,
            create_revision: None,
            timestamp: None,
            etag: None,
        };
        let now_at = now.value().unwrap_or_else(chrono::Utc::now);

        let mut exists = self.known.contains(partition_key, &row_key);
        for attempt in 0..REGISTER_ATTEMPTS {
            if attempt > 0 {
                let ceiling = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
            }
            let mut inserted_this_round = false;
            if !exists {
                self.as_new(&mut record, &now, now_at);
                if self.insert(&record).await? {
                    break;
                }
                inserted_this_round = true;
            }
            match self.read_row(key).await? {
                Some(stored) => {
                    // Kept as stored, even text this handler cannot read as a time.
                    record.registered_at =
                        stored.registered_at.clone().or_else(|| Some(now.clone()));
                    self.observe_revision(stored.revision_or_timestamp());
                    let keep = stored
                        .revision
                        .filter(|_| stored.same_content(&record) && !stored.is_expired(now_at));
                    let revision = keep.unwrap_or_else(|| self.clock.next(now_at));
                    record.revision = Some(revision);
                    record.create_revision = stored
                        .create_revision
                        .or_else(|| {
                            stored
                                .registered_at
                                .as_ref()
                                .and_then(Stored::value)
                                .map(crate::domain::micros)
                        })
                        .or(Some(revision));
                    if self.replace(&record).await? {
                        break;
                    }
                    // Deleted between our read and our write.
                    exists = false;
                }
                // The hint was wrong (deleted elsewhere): insert now, in the same round.
                None if !inserted_this_round => {
                    self.as_new(&mut record, &now, now_at);
                    if self.insert(&record).await? {
                        break;
                    }
                    exists = true;
                }
                // Our insert found a row that was gone when we read it: created and deleted by
                // others in between.
                None => exists = false,
            }
            if attempt + 1 == REGISTER_ATTEMPTS {
                return Err(StoreError::Contended {
                    detail: format!(
                        "the registration row was created and deleted by concurrent requests {REGISTER_ATTEMPTS} times in a row"
                    ),
                });
            }
        }
        self.known.exists(partition_key, &row_key);
        Ok(())
    }

    /// Makes `record` a first registration: registered now, with a new revision that is also its
    /// creation's.
    fn as_new(
        &self,
        record: &mut ServiceRecord,
        now: &Stored<chrono::DateTime<chrono::Utc>>,
        now_at: chrono::DateTime<chrono::Utc>,
    ) {
        let revision = self.clock.next(now_at);
        record.registered_at = Some(now.clone());
        record.revision = Some(revision);
        record.create_revision = Some(revision);
    }

    /// Inserts a new row: `false` when one is already there (409).
    async fn insert(&self, record: &ServiceRecord) -> Result<bool, StoreError> {
        let entity = record.to_entity();
        let sent = self
            .with_tables(|| async { Ok(self.registry.insert::<_, Value>(entity.clone())?.await?) })
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.crate_error()
                    .is_some_and(|e| is_status(e, StatusCode::Conflict)) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The row as stored; `None`: no row.
    async fn read_row(&self, key: &InstanceKey) -> Result<Option<ServiceRecord>, StoreError> {
        let entity_client = self
            .registry
            .partition_key_client(key.partition_key())
            .entity_client(key.row_key());
        self.with_tables(|| async {
            match entity_client.get::<Map<String, Value>>().await {
                Ok(found) => Ok(Some(ServiceRecord::from_entity(&found.entity))),
                Err(e) if is_row_missing(&e) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Replaces an existing row (`If-Match: *`): `false` when it is gone (404).
    async fn replace(&self, record: &ServiceRecord) -> Result<bool, StoreError> {
        let entity_client = self
            .registry
            .partition_key_client(&record.partition_key)
            .entity_client(&record.row_key);
        let entity = record.to_entity();
        self.with_tables(|| async {
            match entity_client
                .update(entity.clone(), IfMatchCondition::Any)?
                .await
            {
                Ok(_) => Ok(true),
                // 412 cannot happen without an ETag condition; kept for safety.
                Err(e) if is_row_missing(&e) || is_status(&e, StatusCode::PreconditionFailed) => {
                    Ok(false)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Moves `lastHeartbeat` of an existing row and nothing else (a merge, so every other property,
    /// including ones this version does not know, stays). `false`: no such row, and none was created.
    pub async fn heartbeat(&self, key: &InstanceKey, now: &str) -> Result<bool, StoreError> {
        self.beat(key, now, None, false).await
    }

    /// A heartbeat that may also set what Consul's clients see of a TTL check: `check_status`, when
    /// given, is written to the row's `checkStatus` (a pass, warn or fail: the Consul API gives it
    /// on every update, so one made after a change through another instance is never lost);
    /// `new_revision` writes a new `revision` with it (the status
    /// changed as far as the caller knows, or the row had lapsed and this heartbeat revives it),
    /// and only then are this process's cached reads dropped (otherwise they already show it).
    pub async fn check_update(
        &self,
        key: &InstanceKey,
        now: &str,
        check_status: Option<&str>,
        new_revision: bool,
    ) -> Result<bool, StoreError> {
        self.beat(key, now, check_status, new_revision).await
    }

    async fn beat(
        &self,
        key: &InstanceKey,
        now: &str,
        check_status: Option<&str>,
        new_revision: bool,
    ) -> Result<bool, StoreError> {
        let revision = new_revision.then(|| {
            self.clock
                .next(crate::parse_iso(now).unwrap_or_else(chrono::Utc::now))
        });
        let visible = revision.is_some();
        let result = self
            .within_budget(self.with_tables(|| async {
                let mut entity = ServiceRecord::heartbeat_entity(key, now);
                if let Some(map) = entity.as_object_mut() {
                    if let Some(status) = check_status {
                        map.insert("checkStatus".into(), status.into());
                    }
                    if let Some(revision) = revision {
                        super::properties::put_int64(map, "revision", revision);
                    }
                }
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
            }))
            .await;
        let (partition_key, row_key) = (key.partition_key(), key.row_key());
        match result {
            Ok(true) if visible => {
                self.known.exists(partition_key, &row_key);
                self.forget_reads();
            }
            Ok(true) => {
                self.known.exists(partition_key, &row_key);
                // Not `forget_reads`: only `lastHeartbeat` moved, and readers see it here.
                let at = crate::parse_iso(now).unwrap_or_else(chrono::Utc::now);
                if self
                    .heartbeats
                    .record(partition_key, &row_key, at, now)
                    .is_err()
                {
                    self.forget_reads();
                }
            }
            // Deleted elsewhere: whatever this process cached of it is out of date.
            Ok(false) => {
                self.known.gone(partition_key, &row_key);
                self.forget_reads();
            }
            // A timeout may still have landed: the caches cannot know, so they start over.
            Err(_) => self.forget_reads(),
        }
        result
    }
}
