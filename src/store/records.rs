//! The rows of ServiceRegistry and HealthStatus, as the recipe's Node functions write them.
//!
//! Writing: property names and types are exactly the recipe's (every property a string except
//! `responseTime`, an Int32), so the Node functions and this handler can share a table.
//! Reading: rows may come from other clients, so every property is read tolerantly: a missing string
//! falls back to something sensible, `responseTime` may be Int32, Double or an Int64 string, and
//! malformed `tags`/`metadata` text yields `[]`/`{}` rather than failing the whole listing.

use crate::domain::{HealthCheck, InstanceKey, DEFAULT_WEIGHT};
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
    pub tags: Value,
    pub metadata: Value,
    pub registered_at: Option<String>,
    pub last_heartbeat: Option<String>,
    // Beside the recipe's properties, each written only when the registration gave it, so a
    // recipe-style registration writes a recipe-identical row.
    pub instance_id: Option<String>,
    pub ttl_seconds: Option<i64>,
    pub weight: Option<i64>,
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
    pub status: String,
    pub last_checked: Option<String>,
    pub response_time: Option<i64>,
    pub error_message: String,
    /// The circuit breaker's memory (absent on rows the recipe wrote). Counts are Int32, times ISO text.
    pub consecutive_failures: Option<i64>,
    pub consecutive_successes: Option<i64>,
    pub last_transition: Option<String>,
    pub circuit: Option<String>,
    pub open_trials: Option<i64>,
    pub next_probe_at: Option<String>,
    pub checked_by: Option<String>,
    /// Exponentially weighted moving average of `responseTime` (ms, a Double): what the resolver
    /// prefers fast instances by.
    pub response_time_ewma: Option<f64>,
    /// The row's version as read (`odata.etag`), for conditional deletes; never written.
    pub etag: Option<String>,
}

fn string(entity: &Map<String, Value>, name: &str) -> Option<String> {
    match entity.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A JSON document stored as text; `fallback` when absent or not the expected shape.
fn json_text(entity: &Map<String, Value>, name: &str, fallback: Value) -> Value {
    let parsed = string(entity, name).and_then(|text| serde_json::from_str::<Value>(&text).ok());
    match parsed {
        Some(v) if std::mem::discriminant(&v) == std::mem::discriminant(&fallback) => v,
        Some(_) | None => {
            if entity.contains_key(name) {
                tracing::warn!(
                    partition_key = string(entity, "PartitionKey").unwrap_or_default(),
                    row_key = string(entity, "RowKey").unwrap_or_default(),
                    property = name,
                    "stored property is not the expected JSON text; returning an empty value"
                );
            }
            fallback
        }
    }
}

fn number(entity: &Map<String, Value>, name: &str) -> Option<f64> {
    match entity.get(name)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// A count or duration as the recipe's Node client sends `responseTime`: a plain JSON number in Int32
/// range, which the service stores as Int32 (an unannotated larger number would lose precision).
fn int32(n: i64) -> i32 {
    n.clamp(0, i64::from(i32::MAX)) as i32
}

/// Int32 and Double arrive as JSON numbers; Int64 arrives as a string annotated `Edm.Int64`.
fn integer(entity: &Map<String, Value>, name: &str) -> Option<i64> {
    match entity.get(name)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().map(|f| f.round() as i64)),
        _ => None,
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
            registered_at: string(entity, "registeredAt"),
            last_heartbeat: string(entity, "lastHeartbeat"),
            instance_id: string(entity, "instanceId"),
            ttl_seconds: integer(entity, "ttlSeconds").filter(|n| *n > 0),
            weight: integer(entity, "weight").filter(|n| *n >= 0),
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
        self.weight
            .and_then(|w| u32::try_from(w).ok())
            .unwrap_or(DEFAULT_WEIGHT)
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
            "tags": self.tags.to_string(),
            "metadata": self.metadata.to_string(),
            "registeredAt": self.registered_at,
            "lastHeartbeat": self.last_heartbeat,
        });
        let extra = entity.as_object_mut().expect("a JSON object literal");
        if let Some(instance_id) = &self.instance_id {
            extra.insert("instanceId".into(), instance_id.clone().into());
        }
        if let Some(ttl) = self.ttl_seconds {
            extra.insert("ttlSeconds".into(), int32(ttl).into());
        }
        if let Some(weight) = self.weight {
            extra.insert("weight".into(), int32(weight).into());
        }
        if let Some(check) = &self.health_check {
            extra.insert("healthCheck".into(), check.to_json().to_string().into());
        }
        entity
    }
}

impl HealthRecord {
    pub fn from_entity(entity: &Map<String, Value>) -> Self {
        HealthRecord {
            partition_key: string(entity, "PartitionKey").unwrap_or_default(),
            row_key: string(entity, "RowKey").unwrap_or_default(),
            service_name: string(entity, "serviceName").unwrap_or_default(),
            status: string(entity, "status").unwrap_or_default(),
            last_checked: string(entity, "lastChecked"),
            response_time: integer(entity, "responseTime"),
            error_message: string(entity, "errorMessage").unwrap_or_default(),
            consecutive_failures: integer(entity, "consecutiveFailures"),
            consecutive_successes: integer(entity, "consecutiveSuccesses"),
            last_transition: string(entity, "lastTransition"),
            circuit: string(entity, "circuit"),
            open_trials: integer(entity, "openTrials"),
            next_probe_at: string(entity, "nextProbeAt"),
            checked_by: string(entity, "checkedBy"),
            response_time_ewma: number(entity, "responseTimeEwma"),
            etag: string(entity, "odata.etag"),
        }
    }

    pub fn to_entity(&self) -> Value {
        let mut entity = json!({
            "PartitionKey": self.partition_key,
            "RowKey": self.row_key,
            "serviceName": self.service_name,
            "status": self.status,
            "lastChecked": self.last_checked,
            "responseTime": int32(self.response_time.unwrap_or(0)),
            "errorMessage": self.error_message,
        });
        let extra = entity.as_object_mut().expect("a JSON object literal");
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                extra.insert(name.to_owned(), value);
            }
        };
        put(
            "consecutiveFailures",
            self.consecutive_failures.map(|n| int32(n).into()),
        );
        put(
            "consecutiveSuccesses",
            self.consecutive_successes.map(|n| int32(n).into()),
        );
        put(
            "lastTransition",
            self.last_transition.clone().map(Value::from),
        );
        put("circuit", self.circuit.clone().map(Value::from));
        put("openTrials", self.open_trials.map(|n| int32(n).into()));
        put("nextProbeAt", self.next_probe_at.clone().map(Value::from));
        put("checkedBy", self.checked_by.clone().map(Value::from));
        // Sent as a JSON number with a fraction, which the service stores as a Double.
        put(
            "responseTimeEwma",
            self.response_time_ewma
                .filter(|f| f.is_finite())
                .map(|f| Value::from((f * 10.0).round() / 10.0 + 0.0)),
        );
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
    fn reads_a_recipe_row() {
        let r = ServiceRecord::from_entity(&map(json!({
            "PartitionKey": "api", "RowKey": "test-api", "serviceName": "test-api",
            "endpoint": "https://x", "healthEndpoint": "https://x/h", "serviceType": "api",
            "version": "1.0.0", "tags": "[\"a\"]", "metadata": "{\"port\":443}",
            "registeredAt": "2026-01-01T00:00:00.000Z", "lastHeartbeat": "2026-01-01T00:00:00.000Z",
            "Timestamp": "2026-01-01T00:00:00Z", "odata.etag": "W/\"x\""
        })));
        assert_eq!(r.tags, json!(["a"]));
        assert_eq!(r.metadata, json!({"port": 443}));
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
        assert_eq!((r.tags, r.metadata), (json!([]), json!({})));
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
}
