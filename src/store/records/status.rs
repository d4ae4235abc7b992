//! HealthStatus's rows: `HealthRecord`, read tolerantly (a recipe row is read from its `status`)
//! and written with every number typed, `HealthByKey` to look them up by key, and their cache
//! weight.

use super::text_weight;
use super::ServiceRecord;
use crate::domain::{verdict_describes_registration, Circuit, CircuitState, HealthState};
use crate::store::properties::{
    count, decoded, integer, number, put_double, put_int32, put_int64, put_spelled, put_text,
    stored, string, Stored,
};
use crate::store::Cacheable;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

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
    /// `statusRevision` (Int64): when `status` last changed, as a revision (`domain::revision`).
    /// The sweep carries it over while the status holds; `None` on a row to write asks the store
    /// for a new one.
    pub status_revision: Option<u64>,
    /// `sweepId`: the fanned-out sweep whose verdict this is (absent for an in-process sweep). A
    /// shard delivered again in the same sweep leaves such a row alone, so no failure counts twice.
    pub sweep_id: Option<String>,
    /// Storage's own `Timestamp` as read; never written.
    pub timestamp: Option<DateTime<Utc>>,
    /// The row's version as read (`odata.etag`), for conditional deletes; never written.
    pub etag: Option<String>,
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
            status_revision: integer(entity, "statusRevision").and_then(|n| u64::try_from(n).ok()),
            sweep_id: string(entity, "sweepId"),
            timestamp: string(entity, "Timestamp")
                .as_deref()
                .and_then(crate::parse_iso),
            etag: string(entity, "odata.etag"),
        }
    }

    /// What the row adds to an index: its `statusRevision`, else storage's `Timestamp` (a row the
    /// recipe's monitor wrote), else nothing.
    pub fn revision_or_timestamp(&self) -> u64 {
        self.status_revision
            .or_else(|| self.timestamp.map(crate::domain::micros))
            .unwrap_or(0)
    }

    pub fn is_healthy(&self) -> bool {
        self.status.value() == Some(HealthState::Healthy)
    }

    /// Whether this row judges `service` as it is registered now, and not a former holder of its
    /// key (the rule is the domain's `verdict_describes_registration`).
    pub fn describes(&self, service: &ServiceRecord) -> bool {
        verdict_describes_registration(
            self.circuit.is_some(),
            self.last_checked_at(),
            service.registered_at.as_ref().and_then(Stored::value),
        )
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
        if let Some(revision) = self.status_revision {
            put_int64(extra, "statusRevision", revision);
        }
        if let Some(sweep) = &self.sweep_id {
            put_text(extra, "sweepId", sweep);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::entity as map;
    use serde_json::json;

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
        let h = HealthRecord::from_entity(&map(json!({
            "PartitionKey": "p", "RowKey": "r", "status": "warning", "circuit": "ajar",
            "lastChecked": "soon", "consecutiveFailures": -1
        })));
        assert_eq!(h.status.text(), "warning");
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
            status_revision: Some(1_764_046_800_000_000),
            sweep_id: Some("20261125T050000000Z-0001".into()),
            timestamp: None,
            etag: None,
        };
        let entity = written.to_entity();
        assert_eq!(entity["statusRevision@odata.type"], "Edm.Int64");
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
