//! The rows of ServiceRegistry and HealthStatus: decoded once, here, into domain types.
//!
//! Writing: property names and types are exactly the recipe's (every property a string except
//! `responseTime`, an Int32), so the Node functions and this handler can share a table. Every
//! number is written with its `@odata.type` (see `properties`): the service would otherwise type it
//! by its value, and a whole `responseTimeEwma` would become an Int32.
//! Reading: rows may come from other clients, so every property is read tolerantly: a missing string
//! falls back to something sensible, numbers may come in any numeric shape, malformed `tags`/`metadata`
//! text yields `[]`/`{}` rather than failing the whole listing, and a time, status or circuit this
//! handler cannot read is kept as text (`Stored`) and counts as absent for every rule: an unknown
//! status as never checked, an unreadable `lastHeartbeat` as fresh (never expired).
//!
//! `from_entity` and `to_entity` are the only code that knows property names and spellings; every
//! consumer (discovery, the resolver, the sweep, expiry) reads the typed fields and methods.

use super::properties::{
    count, decoded, integer, json_text, number, put_double, put_int32, put_spelled, put_text,
    stored, string, JsonText, Stored,
};
use super::Cacheable;
use crate::domain::{Circuit, CircuitState, HealthCheck, HealthState, InstanceKey, DEFAULT_WEIGHT};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

fn text_weight<'a>(texts: impl IntoIterator<Item = &'a str>) -> usize {
    texts.into_iter().map(str::len).sum()
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
                    // Two kept time texts and a health check's path, about.
                    + 128
            })
            .sum()
    }
}

/// Health rows by (PartitionKey, RowKey): one sorted list, looked up by binary search. A map keyed
/// by cloned key pairs held every key twice and a hash table's slack beside it: at 10,000 services
/// a few MiB per cached copy, and a sweep or a refresh holds two copies for a moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthByKey {
    rows: Vec<HealthRecord>,
}

impl HealthByKey {
    /// One row per key: of rows with the same keys (which the table cannot hold) the last is kept.
    pub fn new(mut rows: Vec<HealthRecord>) -> Self {
        rows.reverse();
        rows.sort_by(|a, b| HealthRecord::keys(a).cmp(&HealthRecord::keys(b)));
        rows.dedup_by(|a, b| a.keys() == b.keys());
        rows.shrink_to_fit();
        HealthByKey { rows }
    }

    pub fn get(&self, partition_key: &str, row_key: &str) -> Option<&HealthRecord> {
        self.rows
            .binary_search_by(|h| h.keys().cmp(&(partition_key, row_key)))
            .ok()
            .map(|at| &self.rows[at])
    }

    /// In (PartitionKey, RowKey) order.
    pub fn values(&self) -> impl Iterator<Item = &HealthRecord> {
        self.rows.iter()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Cacheable for HealthByKey {
    fn weight(&self) -> usize {
        self.rows
            .iter()
            .map(|h| {
                std::mem::size_of::<HealthRecord>()
                    + text_weight([
                        &h.partition_key,
                        &h.row_key,
                        &h.service_name,
                        &h.error_message,
                        h.checked_by.as_deref().unwrap_or_default(),
                        h.etag.as_deref().unwrap_or_default(),
                    ])
                    + 128
            })
            .sum()
    }
}

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
    /// The row's version as read (`odata.etag`), for conditional deletes; never written.
    pub etag: Option<String>,
}

/// One HealthStatus row.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRecord {
    pub partition_key: String,
    pub row_key: String,
    pub service_name: String,
    /// A missing status reads as the empty text (and, like any unknown status, as never checked).
    pub status: Stored<HealthState>,
    pub last_checked: Option<Stored<DateTime<Utc>>>,
    pub response_time: Option<i64>,
    pub error_message: String,
    /// The circuit breaker's memory (absent on rows the recipe wrote). Counts are Int32 in the table.
    pub consecutive_failures: Option<u32>,
    pub consecutive_successes: Option<u32>,
    pub last_transition: Option<Stored<DateTime<Utc>>>,
    pub circuit: Option<Stored<Circuit>>,
    pub open_trials: Option<u32>,
    /// Shown (while the circuit is open) as this handler spells it, not kept as text: an unreadable
    /// time reads as absent.
    pub next_probe_at: Option<DateTime<Utc>>,
    pub checked_by: Option<String>,
    /// Exponentially weighted moving average of `responseTime` (ms, a Double): what the resolver
    /// prefers fast instances by.
    pub response_time_ewma: Option<f64>,
    /// The row's version as read (`odata.etag`), for conditional deletes; never written.
    pub etag: Option<String>,
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
            etag: string(entity, "odata.etag"),
            endpoint,
            partition_key,
            row_key,
        }
    }

    /// The row's keys, if they are keys this handler can safely address (see `InstanceKey`).
    pub fn key(&self) -> Option<InstanceKey> {
        InstanceKey::from_stored(&self.partition_key, &self.row_key).ok()
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
    pub(super) fn heartbeat_entity(key: &InstanceKey, now: &str) -> Value {
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
        entity
    }
}

impl HealthRecord {
    fn keys(&self) -> (&str, &str) {
        (&self.partition_key, &self.row_key)
    }

    pub fn from_entity(entity: &Map<String, Value>) -> Self {
        HealthRecord {
            partition_key: string(entity, "PartitionKey").unwrap_or_default(),
            row_key: string(entity, "RowKey").unwrap_or_default(),
            service_name: string(entity, "serviceName").unwrap_or_default(),
            status: Stored::read(string(entity, "status").unwrap_or_default()),
            last_checked: stored(entity, "lastChecked"),
            response_time: integer(entity, "responseTime"),
            error_message: string(entity, "errorMessage").unwrap_or_default(),
            consecutive_failures: count(entity, "consecutiveFailures"),
            consecutive_successes: count(entity, "consecutiveSuccesses"),
            last_transition: stored(entity, "lastTransition"),
            circuit: stored(entity, "circuit"),
            open_trials: count(entity, "openTrials"),
            next_probe_at: decoded(entity, "nextProbeAt"),
            checked_by: string(entity, "checkedBy"),
            response_time_ewma: number(entity, "responseTimeEwma"),
            etag: string(entity, "odata.etag"),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.status.value() == Some(HealthState::Healthy)
    }

    /// Whether this row judges `service` as it is registered now, and not a former holder of its
    /// key: a row with circuit-breaker memory checked before the registration's `registeredAt` was
    /// left by one (a sweep that wrote its verdict after a deregistration; a delete that failed
    /// half-way) and counts as absent, so a pod that returns under its old name starts as not yet
    /// checked instead of inheriting an open circuit. This handler's registrations keep
    /// `registeredAt` when they re-register, so their own history stays. Rows with the recipe's
    /// properties only (no `circuit`) are trusted as the recipe trusts them: its registrar resets
    /// `registeredAt` on every upsert, so the rule would throw away every verdict on such a row.
    /// A time either side cannot read keeps the row.
    pub fn describes(&self, service: &ServiceRecord) -> bool {
        if self.circuit.is_none() {
            return true;
        }
        let registered = service.registered_at.as_ref().and_then(Stored::value);
        match (self.last_checked_at(), registered) {
            (Some(checked), Some(registered)) => checked >= registered,
            _ => true,
        }
    }

    pub fn last_checked_at(&self) -> Option<DateTime<Utc>> {
        self.last_checked.as_ref().and_then(Stored::value)
    }

    /// The circuit state the row describes. A row without our properties (written by the recipe)
    /// is read from its `status`; a row with an unknown status counts as never checked.
    pub fn circuit_state(&self) -> Option<CircuitState> {
        let status = self.status.value()?;
        let last_checked = self.last_checked_at().unwrap_or(DateTime::UNIX_EPOCH);
        let Some(circuit) = self.circuit.as_ref().and_then(Stored::value) else {
            return Some(CircuitState::from_recipe_status(status, last_checked));
        };
        Some(CircuitState {
            status,
            circuit,
            consecutive_failures: self.consecutive_failures.unwrap_or(0),
            consecutive_successes: self.consecutive_successes.unwrap_or(0),
            last_transition: self
                .last_transition
                .as_ref()
                .and_then(Stored::value)
                .unwrap_or(last_checked),
            open_trials: self.open_trials.unwrap_or(0),
            next_probe_at: self.next_probe_at,
        })
    }

    pub fn to_entity(&self) -> Value {
        let mut entity = json!({
            "PartitionKey": self.partition_key,
            "RowKey": self.row_key,
            "serviceName": self.service_name,
            "status": self.status.text(),
            "lastChecked": self.last_checked.as_ref().map(Stored::text),
            "errorMessage": self.error_message,
        });
        let extra = entity.as_object_mut().expect("a JSON object literal");
        put_int32(extra, "responseTime", self.response_time.unwrap_or(0));
        let counts = [
            ("consecutiveFailures", self.consecutive_failures),
            ("consecutiveSuccesses", self.consecutive_successes),
            ("openTrials", self.open_trials),
        ];
        for (name, n) in counts {
            if let Some(n) = n {
                put_int32(extra, name, i64::from(n));
            }
        }
        if let Some(time) = &self.last_transition {
            put_text(extra, "lastTransition", time.text());
        }
        if let Some(circuit) = &self.circuit {
            put_text(extra, "circuit", circuit.text());
        }
        if let Some(time) = self.next_probe_at {
            put_spelled(extra, "nextProbeAt", &time);
        }
        if let Some(who) = &self.checked_by {
            put_text(extra, "checkedBy", who);
        }
        // A tenth of a millisecond is all the ranking needs; `+ 0.0` turns -0 into 0.
        if let Some(ewma) = self.response_time_ewma.filter(|f| f.is_finite()) {
            put_double(
                extra,
                "responseTimeEwma",
                (ewma * 10.0).round() / 10.0 + 0.0,
            );
        }
        entity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_health_row_checked_before_the_registration_describes_a_former_holder() {
        let service = ServiceRecord::from_entity(&map(json!({
            "PartitionKey": "api", "RowKey": "web:pod-0",
            "registeredAt": "2026-11-25T05:00:00.000Z"})));
        let checked = |at: &str| {
            HealthRecord::from_entity(&map(json!({
                "PartitionKey": "api", "RowKey": "web:pod-0", "status": "unhealthy",
                "circuit": "open", "lastChecked": at})))
        };
        assert!(!checked("2026-11-25T04:59:59.999Z").describes(&service));
        assert!(checked("2026-11-25T05:00:00.000Z").describes(&service));
        assert!(checked("2026-11-25T05:05:00.000Z").describes(&service));
        // A time that does not read keeps the row, as every rule treats unreadable text.
        assert!(checked("yesterday").describes(&service));
        let unread = ServiceRecord::from_entity(&map(json!({"registeredAt": "soon"})));
        assert!(checked("2026-11-25T04:00:00.000Z").describes(&unread));
        // A recipe row (no circuit): its registrar moves `registeredAt` on every upsert.
        let recipe = HealthRecord::from_entity(&map(json!({
            "PartitionKey": "api", "RowKey": "web:pod-0", "status": "healthy",
            "lastChecked": "2026-11-25T04:59:59.999Z"})));
        assert!(recipe.describes(&service));
    }

    #[test]
    fn health_rows_are_found_by_their_keys_and_the_last_of_a_duplicate_wins() {
        let row = |pk: &str, rk: &str, status: &str| {
            HealthRecord::from_entity(&map(json!({
                "PartitionKey": pk, "RowKey": rk, "status": status})))
        };
        let by_key = HealthByKey::new(vec![
            row("web", "b", "healthy"),
            row("api", "z", "healthy"),
            row("api", "a", "healthy"),
            row("web", "b", "unhealthy"),
        ]);
        assert_eq!(by_key.len(), 3);
        assert_eq!(by_key.get("web", "b").unwrap().status.text(), "unhealthy");
        assert_eq!(by_key.get("api", "a").unwrap().row_key, "a");
        assert!(by_key.get("api", "b").is_none());
        assert!(by_key.get("web", "a").is_none());
        let order: Vec<_> = by_key.values().map(|h| h.keys()).collect();
        assert_eq!(order, [("api", "a"), ("api", "z"), ("web", "b")]);
        assert!(HealthByKey::default().is_empty());
    }

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
        let written = ServiceRecord::from_entity(r.to_entity().as_object().unwrap());
        assert_eq!(written, ServiceRecord { etag: None, ..r });
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
    fn response_time_in_every_numeric_shape() {
        for (value, expected) in [
            (json!(12), Some(12)),
            (json!(12.6), Some(13)),
            (json!("9007199254740993"), Some(9_007_199_254_740_993)),
            (json!("abc"), None),
        ] {
            let h = HealthRecord::from_entity(&map(json!({"responseTime": value})));
            assert_eq!(h.response_time, expected);
        }
    }

    #[test]
    fn unreadable_times_and_statuses_are_kept_as_text_and_count_as_absent() {
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

        let h = HealthRecord::from_entity(&map(json!({
            "PartitionKey": "p", "RowKey": "r", "status": "degraded", "circuit": "ajar",
            "lastChecked": "soon", "consecutiveFailures": -1
        })));
        assert_eq!(h.status.text(), "degraded");
        assert!(!h.is_healthy());
        assert_eq!(
            h.circuit_state(),
            None,
            "an unknown status counts as never checked"
        );
        assert_eq!(h.last_checked_at(), None);
        assert_eq!(h.consecutive_failures, None);
        let missing = HealthRecord::from_entity(&map(json!({"PartitionKey": "p", "RowKey": "r"})));
        assert_eq!(missing.status.text(), "");
    }

    #[test]
    fn a_recipe_health_row_is_read_from_its_status() {
        let h = HealthRecord::from_entity(&map(json!({
            "PartitionKey": "api", "RowKey": "test-api", "serviceName": "test-api",
            "status": "unhealthy", "lastChecked": "2026-11-25T05:05:00.456Z",
            "responseTime": 87, "errorMessage": "HTTP 503"
        })));
        let checked = crate::parse_iso("2026-11-25T05:05:00.456Z").unwrap();
        assert_eq!(
            h.circuit_state(),
            Some(CircuitState::from_recipe_status(
                HealthState::Unhealthy,
                checked
            ))
        );
        // Our properties with an unknown circuit: still read as a recipe row.
        let odd = HealthRecord {
            circuit: Some(Stored::read("ajar")),
            consecutive_failures: Some(7),
            ..h.clone()
        };
        assert_eq!(odd.circuit_state(), h.circuit_state());
    }

    #[test]
    fn a_swept_health_row_round_trips_with_typed_numbers() {
        let t = |s: &str| crate::parse_iso(s).unwrap();
        let written = HealthRecord {
            partition_key: "api".into(),
            row_key: "svc:pod-1".into(),
            service_name: "svc".into(),
            status: HealthState::Unhealthy.into(),
            last_checked: Some(t("2026-11-25T05:05:00.456Z").into()),
            response_time: Some(12),
            error_message: "HTTP 503".into(),
            consecutive_failures: Some(3),
            consecutive_successes: Some(0),
            last_transition: Some(t("2026-11-25T05:00:00.000Z").into()),
            circuit: Some(Circuit::Open.into()),
            open_trials: Some(1),
            next_probe_at: Some(t("2026-11-25T05:15:00.000Z")),
            checked_by: Some("host-1".into()),
            response_time_ewma: Some(12.0),
            etag: None,
        };
        let entity = written.to_entity();
        assert_eq!(entity["status"], "unhealthy");
        assert_eq!(entity["circuit"], "open");
        assert_eq!(entity["lastTransition"], "2026-11-25T05:00:00.000Z");
        assert_eq!(entity["nextProbeAt"], "2026-11-25T05:15:00.000Z");
        for name in [
            "responseTime",
            "consecutiveFailures",
            "consecutiveSuccesses",
            "openTrials",
        ] {
            assert_eq!(entity[format!("{name}@odata.type")], "Edm.Int32", "{name}");
        }
        assert_eq!(entity["responseTimeEwma@odata.type"], "Edm.Double");
        let read = HealthRecord::from_entity(entity.as_object().unwrap());
        assert_eq!(read, written);
        let state = read.circuit_state().unwrap();
        assert_eq!((state.circuit, state.open_trials), (Circuit::Open, 1));
        assert_eq!(state.next_probe_at, Some(t("2026-11-25T05:15:00.000Z")));
    }
}
