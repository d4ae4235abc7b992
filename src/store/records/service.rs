//! ServiceRegistry's rows: `ServiceRecord`, read tolerantly from any client's entity and written as
//! the recipe writes it (plus the instance properties a registration gave), and its cache weight.

use super::text_weight;
use crate::domain::{Dependency, HealthCheck, InstanceKey, DEFAULT_WEIGHT};
use crate::store::properties::{
    count, integer, json_text, put_int32, put_int64, stored, string, JsonText, Stored,
};
use crate::store::Cacheable;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// One ServiceRegistry row.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecord {
    pub partition_key: String,
    pub row_key: String,
    pub service_name: String,
    pub endpoint: String,
    pub health_endpoint: String,
    pub service_type: String,
    pub version: String,
    pub tags: JsonText,
    pub metadata: JsonText,
    /// Kept as stored text too: discovery shows it as written, and a re-registration keeps it.
    pub registered_at: Option<Stored<DateTime<Utc>>>,
    pub last_heartbeat: Option<Stored<DateTime<Utc>>>,
    // Beside the recipe's properties, each written only when the registration gave it, so a
    // recipe-style registration writes a recipe-identical row.
    pub instance_id: Option<String>,
    pub ttl_seconds: Option<i64>,
    pub weight: Option<u32>,
    pub health_check: Option<HealthCheck>,
    /// `dependsOn` (String, canonical JSON): the services the registration declared it needs;
    /// empty when absent, and when another client stored text this handler cannot read.
    pub depends_on: Vec<Dependency>,
    /// What the Consul-compatible API adds (absent on rows it did not write).
    pub consul: ConsulFields,
    /// `revision` (Int64): when a Consul-visible part of the row last changed (`domain::revision`);
    /// absent on rows other clients wrote, which count from their `Timestamp` instead.
    pub revision: Option<u64>,
    /// `createRevision` (Int64): the revision of the row's first registration.
    pub create_revision: Option<u64>,
    /// Storage's own `Timestamp` as read; never written.
    pub timestamp: Option<DateTime<Utc>>,
    /// The row's version as read (`odata.etag`), for conditional deletes; never written.
    pub etag: Option<String>,
}

/// The properties only a registration through the Consul API writes, each only when it has one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsulFields {
    /// `consulChecks`: the checks as Consul clients named them (JSON text; the API's own shape).
    pub checks: Option<JsonText>,
    /// `deregisterCriticalAfter` (Int32 seconds): remove the registration once its check has been
    /// critical this long.
    pub deregister_critical_after: Option<u32>,
    /// `checkStatus`: the status a check update (`/v1/agent/check/warn|fail|update`) or the
    /// register body's `Check.Status` set, until the next one.
    pub check_status: Option<String>,
}

impl ConsulFields {
    pub fn is_empty(&self) -> bool {
        *self == ConsulFields::default()
    }
}

impl ServiceRecord {
    pub fn from_entity(entity: &Map<String, Value>) -> Self {
        let partition_key = string(entity, "PartitionKey").unwrap_or_default();
        let row_key = string(entity, "RowKey").unwrap_or_default();
        let endpoint = string(entity, "endpoint").unwrap_or_default();
        ServiceRecord {
            service_name: string(entity, "serviceName").unwrap_or_else(|| row_key.clone()),
            health_endpoint: string(entity, "healthEndpoint")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| endpoint.clone()),
            service_type: string(entity, "serviceType").unwrap_or_else(|| partition_key.clone()),
            version: string(entity, "version").unwrap_or_default(),
            tags: json_text(entity, "tags", json!([])),
            metadata: json_text(entity, "metadata", json!({})),
            registered_at: stored(entity, "registeredAt"),
            last_heartbeat: stored(entity, "lastHeartbeat"),
            instance_id: string(entity, "instanceId"),
            ttl_seconds: integer(entity, "ttlSeconds").filter(|n| *n > 0),
            weight: count(entity, "weight"),
            health_check: string(entity, "healthCheck")
                .as_deref()
                .and_then(HealthCheck::from_stored),
            depends_on: depends_on(entity, &partition_key, &row_key),
            consul: ConsulFields {
                checks: entity
                    .contains_key("consulChecks")
                    .then(|| json_text(entity, "consulChecks", json!([]))),
                deregister_critical_after: count(entity, "deregisterCriticalAfter"),
                check_status: string(entity, "checkStatus"),
            },
            revision: integer(entity, "revision").and_then(|n| u64::try_from(n).ok()),
            create_revision: integer(entity, "createRevision").and_then(|n| u64::try_from(n).ok()),
            timestamp: string(entity, "Timestamp")
                .as_deref()
                .and_then(crate::parse_iso),
            etag: string(entity, "odata.etag"),
            endpoint,
            partition_key,
            row_key,
        }
    }

    /// Whether the health monitor probes this registration. Not when the Consul API wrote it with
    /// no HTTP or TCP check (a TTL check only, or none): its health is what its TTL and check
    /// updates say, as in Consul, and its `endpoint` may well refuse a probe. The marker is the
    /// stored `consulChecks` list itself (each entry's `Type`); rows without it (the native API's,
    /// the recipe's) are always probed. An unreadable list reads as empty, as the Consul view
    /// shows it (no checks), so such a row is not probed either.
    pub fn probed(&self) -> bool {
        let Some(checks) = &self.consul.checks else {
            return true;
        };
        match checks.value() {
            Value::Array(items) => items.iter().any(|check| {
                let kind = check.get("Type").and_then(Value::as_str);
                !matches!(kind, Some("ttl"))
            }),
            _ => true,
        }
    }

    /// The row's keys, if they are keys this handler can safely address (see `InstanceKey`).
    pub fn key(&self) -> Option<InstanceKey> {
        InstanceKey::from_stored(&self.partition_key, &self.row_key).ok()
    }

    /// The row's revision: as written, else storage's `Timestamp` (a row the recipe's registrar
    /// wrote moves with every write it makes, heartbeats included), else 1.
    pub fn revision_or_timestamp(&self) -> u64 {
        self.revision
            .or_else(|| self.timestamp.map(crate::domain::micros))
            .unwrap_or(1)
    }

    /// Whether `other` shows Consul's clients the same registration: everything but the times,
    /// revisions and storage's own stamps.
    pub fn same_content(&self, other: &ServiceRecord) -> bool {
        let bare = |r: &ServiceRecord| ServiceRecord {
            registered_at: None,
            last_heartbeat: None,
            revision: None,
            create_revision: None,
            timestamp: None,
            etag: None,
            ..r.clone()
        };
        bare(self) == bare(other)
    }

    /// Whether the sweep's verdict is one of this row's checks: always, unless the Consul API
    /// registered it with checks of its own and none of them is an HTTP or TCP check.
    pub fn probe_is_a_check(&self) -> bool {
        match &self.consul.checks {
            None => true,
            Some(checks) => checks.value().as_array().is_some_and(|checks| {
                checks
                    .iter()
                    .any(|c| matches!(c["Type"].as_str(), Some("http" | "tcp")))
            }),
        }
    }

    /// Since when this row's checks have been critical, as its rows say: its TTL's lapse, or the
    /// unhealthy verdict `unhealthy_since` (when the probe is one of its checks). What Consul's
    /// `DeregisterCriticalServiceAfter` counts from.
    pub fn critical_since(
        &self,
        unhealthy_since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let lapsed = self.expires_at().filter(|at| *at <= now);
        let unhealthy = unhealthy_since.filter(|_| self.probe_is_a_check());
        [lapsed, unhealthy, self.failed_since()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Since when a `critical` its client set (a TTL check's `fail`, an `update` or the register
    /// body's `Status`) has shown, when one shows: the row's `revision`, which that change wrote
    /// and which only later visible changes move on (so this never counts from too early).
    fn failed_since(&self) -> Option<DateTime<Utc>> {
        if self.consul.check_status.as_deref() != Some("critical") {
            return None;
        }
        // The status shows on a native row's one check, or on a Consul registration's TTL check.
        let shown = match &self.consul.checks {
            None => true,
            Some(checks) => checks
                .value()
                .as_array()
                .is_some_and(|checks| checks.iter().any(|c| c["Type"].as_str() == Some("ttl"))),
        };
        let revision = self.revision.filter(|_| shown)?;
        DateTime::from_timestamp_micros(i64::try_from(revision).ok()?)
    }

    pub fn weight_or_default(&self) -> u32 {
        self.weight.unwrap_or(DEFAULT_WEIGHT)
    }

    /// When the registration lapses (`None`: no TTL, or a heartbeat that cannot be read).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        let heartbeat = self.last_heartbeat.as_ref().and_then(Stored::value);
        crate::domain::expires_at(self.ttl_seconds, heartbeat)
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        let heartbeat = self.last_heartbeat.as_ref().and_then(Stored::value);
        crate::domain::is_expired(self.ttl_seconds, heartbeat, now)
    }

    /// The merge a heartbeat sends: the keys and `lastHeartbeat`, nothing else.
    pub(in crate::store) fn heartbeat_entity(key: &InstanceKey, now: &str) -> Value {
        json!({
            "PartitionKey": key.partition_key(),
            "RowKey": key.row_key(),
            "lastHeartbeat": now,
        })
    }

    /// The entity as the recipe writes it (the two keys and nine string properties), plus the
    /// instance properties a registration gave.
    pub fn to_entity(&self) -> Value {
        let mut entity = json!({
            "PartitionKey": self.partition_key,
            "RowKey": self.row_key,
            "serviceName": self.service_name,
            "endpoint": self.endpoint,
            "healthEndpoint": self.health_endpoint,
            "serviceType": self.service_type,
            "version": self.version,
            "tags": self.tags.text(),
            "metadata": self.metadata.text(),
            "registeredAt": self.registered_at.as_ref().map(Stored::text),
            "lastHeartbeat": self.last_heartbeat.as_ref().map(Stored::text),
        });
        let extra = entity.as_object_mut().expect("a JSON object literal");
        if let Some(instance_id) = &self.instance_id {
            extra.insert("instanceId".into(), instance_id.clone().into());
        }
        if let Some(ttl) = self.ttl_seconds {
            put_int32(extra, "ttlSeconds", ttl);
        }
        if let Some(weight) = self.weight {
            put_int32(extra, "weight", i64::from(weight));
        }
        if let Some(check) = &self.health_check {
            extra.insert("healthCheck".into(), check.to_json().to_string().into());
        }
        if let Some(text) = crate::domain::depends_on_text(&self.depends_on) {
            extra.insert("dependsOn".into(), text.into());
        }
        if let Some(checks) = &self.consul.checks {
            extra.insert("consulChecks".into(), checks.text().into());
        }
        if let Some(after) = self.consul.deregister_critical_after {
            put_int32(extra, "deregisterCriticalAfter", i64::from(after));
        }
        if let Some(status) = &self.consul.check_status {
            extra.insert("checkStatus".into(), status.clone().into());
        }
        if let Some(revision) = self.revision {
            put_int64(extra, "revision", revision);
        }
        if let Some(revision) = self.create_revision {
            put_int64(extra, "createRevision", revision);
        }
        entity
    }
}

/// The row's `dependsOn`, read tolerantly: text another client stored that does not read as a
/// list of dependencies is ignored (a debug line says so), never fatal to the listing.
fn depends_on(entity: &Map<String, Value>, partition_key: &str, row_key: &str) -> Vec<Dependency> {
    let Some(text) = string(entity, "dependsOn") else {
        return Vec::new();
    };
    crate::domain::depends_on_from_stored(&text).unwrap_or_else(|why| {
        tracing::debug!(partition_key, row_key, %why, "ignoring an unreadable dependsOn");
        Vec::new()
    })
}

impl Cacheable for Vec<ServiceRecord> {
    fn weight(&self) -> usize {
        self.iter()
            .map(|r| {
                std::mem::size_of::<ServiceRecord>()
                    + text_weight([
                        r.partition_key.as_str(),
                        &r.row_key,
                        &r.service_name,
                        &r.endpoint,
                        &r.health_endpoint,
                        &r.service_type,
                        &r.version,
                        r.instance_id.as_deref().unwrap_or_default(),
                        r.etag.as_deref().unwrap_or_default(),
                    ])
                    + r.tags.text().len()
                    + r.metadata.text().len()
                    + r.depends_on.iter().map(|d| d.service.len() + 8).sum::<usize>()
                    // Two kept time texts and a health check's path, about.
                    + 128
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::entity as map;
    use serde_json::json;

    #[test]
    fn reads_a_recipe_row() {
        let r = ServiceRecord::from_entity(&map(json!({
            "PartitionKey": "api", "RowKey": "test-api", "serviceName": "test-api",
            "endpoint": "https://x", "healthEndpoint": "https://x/h", "serviceType": "api",
            "version": "1.0.0", "tags": "[\"a\"]", "metadata": "{\"port\":443}",
            "registeredAt": "2026-01-01T00:00:00.000Z", "lastHeartbeat": "2026-01-01T00:00:00.000Z",
            "Timestamp": "2026-01-01T00:00:00Z", "odata.etag": "W/\"x\""
        })));
        assert_eq!(r.tags.value(), json!(["a"]));
        assert_eq!(r.metadata.value(), json!({"port": 443}));
        assert_eq!(r.health_endpoint, "https://x/h");
        assert_eq!(r.etag.as_deref(), Some("W/\"x\""));
        assert_eq!(r.revision_or_timestamp(), 1_767_225_600_000_000);
        let written = ServiceRecord::from_entity(r.to_entity().as_object().unwrap());
        assert_eq!(
            written,
            ServiceRecord {
                etag: None,
                timestamp: None,
                ..r
            }
        );
    }

    #[test]
    fn revisions_and_consul_fields_round_trip_as_typed_properties() {
        let mut r = ServiceRecord::from_entity(&map(json!({
            "PartitionKey": "p", "RowKey": "r", "endpoint": "http://e",
        })));
        assert_eq!((r.revision, r.consul.is_empty()), (None, true));
        r.revision = Some(1_765_000_000_000_123);
        r.create_revision = Some(1_765_000_000_000_001);
        r.consul = ConsulFields {
            checks: Some(JsonText::of(&json!([{"id": "service:r"}]))),
            deregister_critical_after: Some(60),
            check_status: Some("warning".into()),
        };
        let entity = r.to_entity();
        assert_eq!(entity["revision@odata.type"], "Edm.Int64");
        assert_eq!(entity["revision"], "1765000000000123");
        assert_eq!(entity["deregisterCriticalAfter@odata.type"], "Edm.Int32");
        let back = ServiceRecord::from_entity(entity.as_object().unwrap());
        assert_eq!(back, r);
        assert!(back.same_content(&r));
        let mut moved = back.clone();
        moved.revision = Some(9);
        moved.last_heartbeat = None;
        assert!(moved.same_content(&r));
        moved.consul.check_status = None;
        assert!(!moved.same_content(&r));
    }

    #[test]
    fn a_critical_its_client_set_counts_from_the_revision_that_set_it() {
        let now = crate::parse_iso("2026-12-07T10:00:00.000Z").unwrap();
        let set = crate::parse_iso("2026-12-07T09:59:00.000Z").unwrap();
        let row = |checks: Option<Value>, status: &str| {
            let mut r = ServiceRecord::from_entity(&map(json!({
                "PartitionKey": "p", "RowKey": "r", "endpoint": "http://e",
                "lastHeartbeat": "2026-12-07T09:59:50.000Z", "ttlSeconds": 30
            })));
            r.revision = Some(crate::domain::micros(set));
            r.consul = ConsulFields {
                checks: checks.map(|c| JsonText::of(&c)),
                deregister_critical_after: Some(10),
                check_status: Some(status.into()),
            };
            r
        };
        let ttl = json!([{"CheckID": "c", "Type": "ttl"}]);
        assert_eq!(
            row(Some(ttl.clone()), "critical").critical_since(None, now),
            Some(set)
        );
        assert_eq!(row(None, "critical").critical_since(None, now), Some(set));
        assert_eq!(row(Some(ttl), "passing").critical_since(None, now), None);
        // On an HTTP-only Consul registration the set status shows nowhere.
        let http = json!([{"CheckID": "c", "Type": "http"}]);
        assert_eq!(row(Some(http), "critical").critical_since(None, now), None);
    }

    #[test]
    fn depends_on_round_trips_as_canonical_text_and_bad_text_is_ignored() {
        let mut r = ServiceRecord::from_entity(&map(json!({
            "PartitionKey": "api", "RowKey": "y", "endpoint": "http://e",
            "dependsOn": "[\"db:x\", {\"service\": \"cache:r\", \"required\": false}]"
        })));
        assert_eq!(r.depends_on.len(), 2);
        let entity = r.to_entity();
        assert_eq!(
            entity["dependsOn"],
            r#"[{"service":"db:x","required":true},{"service":"cache:r","required":false}]"#
        );
        r.depends_on.clear();
        assert!(
            r.to_entity().get("dependsOn").is_none(),
            "absent when empty"
        );
        for bad in ["not json", "{}", "[\"nocolon\"]", "[1]"] {
            let r = ServiceRecord::from_entity(&map(json!({
                "PartitionKey": "api", "RowKey": "y", "endpoint": "http://e", "dependsOn": bad
            })));
            assert!(r.depends_on.is_empty(), "{bad}");
        }
    }

    #[test]
    fn malformed_json_text_and_missing_properties_do_not_fail() {
        let r = ServiceRecord::from_entity(&map(json!({
            "PartitionKey": "p", "RowKey": "r", "endpoint": "http://e",
            "tags": "not json", "metadata": "[1,2]"
        })));
        assert_eq!((r.tags.value(), r.metadata.value()), (json!([]), json!({})));
        assert_eq!((r.tags.text(), r.metadata.text()), ("[]", "{}"));
        assert_eq!(
            (r.service_name.as_str(), r.service_type.as_str()),
            ("r", "p")
        );
        assert_eq!(r.health_endpoint, "http://e");
    }

    #[test]
    fn unreadable_times_are_kept_as_text_and_count_as_absent() {
        let r = ServiceRecord::from_entity(&map(json!({
            "PartitionKey": "p", "RowKey": "r", "endpoint": "http://e",
            "registeredAt": "last week", "lastHeartbeat": "yesterday", "ttlSeconds": 30
        })));
        assert_eq!(
            r.registered_at.as_ref().map(Stored::text),
            Some("last week")
        );
        // An unreadable heartbeat is fresh: the row never expires.
        assert_eq!(r.expires_at(), None);
        assert!(!r.is_expired(DateTime::<Utc>::MAX_UTC));
        // Written back as it was read.
        assert_eq!(r.to_entity()["registeredAt"], "last week");
    }

    #[test]
    fn only_consul_rows_without_a_probe_check_go_unprobed() {
        let with = |checks: Option<&str>| {
            let mut e = json!({"PartitionKey": "p", "RowKey": "r", "endpoint": "http://e"});
            if let Some(c) = checks {
                e["consulChecks"] = json!(c);
            }
            ServiceRecord::from_entity(&map(e)).probed()
        };
        assert!(with(None), "native and recipe rows are probed");
        assert!(!with(Some("[]")), "a check-less Consul registration");
        assert!(!with(Some(r#"[{"CheckID":"service:a","Type":"ttl"}]"#)));
        assert!(with(Some(r#"[{"Type":"ttl"},{"Type":"http"}]"#)));
        assert!(with(Some(r#"[{"Type":"tcp"}]"#)));
        assert!(
            !with(Some("not json")),
            "unreadable reads as no checks, as Consul shows it"
        );
    }
}
