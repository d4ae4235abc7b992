//! The API's bodies as tests write them (a registration, the recipe's) and as tests check them:
//! discovery's top-level shape and each item's keys and types, read two ways (`assert_discovery_shape`
//! checks the health status's keys too, `items` every item's types), and the stored types of rows.

use super::{assert_iso_utc, parse_iso};
use serde_json::{json, Value};

/// Keys a discovery item has only when its registration gave them.
pub const OPTIONAL_ITEM_KEYS: &[&str] = &["healthCheck", "dependsOn", "dependencies"];

/// Keys of one discovery item: the five instance fields, then the recipe's ten, then the
/// effective status and what blocks it (`OPTIONAL_ITEM_KEYS` come along only when the
/// registration set them).
pub const ITEM_KEYS: &[&str] = &[
    "effectiveStatus",
    "blockedBy",
    "instanceId",
    "weight",
    "ttlSeconds",
    "expiresAt",
    "expired",
    "serviceName",
    "endpoint",
    "healthEndpoint",
    "serviceType",
    "version",
    "tags",
    "metadata",
    "registeredAt",
    "lastHeartbeat",
    "healthStatus",
];

/// Assert the top-level shape and return the services array.
pub fn assert_discovery_shape(v: &Value) -> Vec<Value> {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    // failedOpen accompanies healthyOnly=true, continuationToken a page with more behind it.
    let mut keys: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "failedOpen" | "continuationToken"))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["count", "services", "timestamp"],
        "top-level keys of the discovery body: {v}"
    );
    let services = v["services"].as_array().expect("services array").clone();
    assert_eq!(
        v["count"].as_u64(),
        Some(services.len() as u64),
        "count must equal services.len(): {}",
        v["count"]
    );
    let ts = parse_iso(v["timestamp"].as_str().expect("timestamp string"));
    let now = chrono::Utc::now();
    assert!(
        (now - ts).num_seconds().abs() < 60,
        "timestamp {ts} is not now ({now})"
    );
    for s in &services {
        let so = s
            .as_object()
            .unwrap_or_else(|| panic!("service not an object: {s}"));
        let mut sk: Vec<&str> = so.keys().map(String::as_str).collect();
        sk.sort();
        let mut expected: Vec<&str> = ITEM_KEYS.to_vec();
        for key in OPTIONAL_ITEM_KEYS {
            if so.contains_key(*key) {
                expected.push(key);
            }
        }
        expected.sort();
        assert_eq!(sk, expected, "keys of a service entry: {s}");
        assert!(s["tags"].is_array(), "tags must be an array: {s}");
        assert!(s["metadata"].is_object(), "metadata must be an object: {s}");
        match &s["healthStatus"] {
            Value::Null => {}
            Value::Object(hs) => {
                // The recipe's three keys always; the circuit breaker's five together, when the row
                // was written by the handler's sweep (a recipe-written row has none of them).
                // Beside them, `errorMessage` only when non-empty and `nextProbeAt` only while the
                // circuit is open.
                if let Some(message) = hs.get("errorMessage") {
                    assert!(
                        message.as_str().is_some_and(|m| !m.is_empty()),
                        "errorMessage must be a non-empty string when present: {s}"
                    );
                }
                if let Some(next) = hs.get("nextProbeAt") {
                    assert_eq!(
                        hs["circuit"], "open",
                        "nextProbeAt on a circuit not open: {s}"
                    );
                    assert_iso_utc(next.as_str().expect("nextProbeAt string"));
                }
                let mut hk: Vec<&str> = hs
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !matches!(*k, "errorMessage" | "nextProbeAt"))
                    .collect();
                hk.sort();
                let recipe = vec!["lastChecked", "responseTime", "status"];
                let with_circuit = vec![
                    "checkedBy",
                    "circuit",
                    "consecutiveFailures",
                    "consecutiveSuccesses",
                    "lastChecked",
                    "lastTransition",
                    "responseTime",
                    "responseTimeEwma",
                    "status",
                ];
                assert!(
                    hk == recipe || hk == with_circuit,
                    "healthStatus keys {hk:?}: {s}"
                );
            }
            other => panic!("healthStatus must be null or an object: {other}"),
        }
    }
    services
}

/// An endpoint on 127.0.0.1 where nothing listens (never contacted unless a test sweeps).
pub fn local_endpoint(tag: &str) -> String {
    format!("http://127.0.0.1:1/{tag}")
}

/// `t` as the handler stores times: RFC 3339 in UTC with milliseconds (`2026-11-25T05:00:00.123Z`).
pub fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Check one discovery item's shape (exactly `ITEM_KEYS`, typed as the contract says).
pub fn assert_item_shape(s: &Value) {
    let obj = s
        .as_object()
        .unwrap_or_else(|| panic!("service item is not an object: {s}"));
    // Exactly the contract's keys; the optional ones may come along when the registration set them.
    let mut keys: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !OPTIONAL_ITEM_KEYS.contains(k))
        .collect();
    keys.sort();
    let mut expected = ITEM_KEYS.to_vec();
    expected.sort();
    assert_eq!(keys, expected, "keys of a discovery item: {s}");
    assert!(s["tags"].is_array(), "tags must be an array: {s}");
    assert!(s["metadata"].is_object(), "metadata must be an object: {s}");
    assert!(
        s["instanceId"].is_null() || s["instanceId"].is_string(),
        "instanceId must be a string or null: {s}"
    );
    assert!(s["weight"].is_u64(), "weight must be an integer: {s}");
    assert!(
        s["ttlSeconds"].is_null() || s["ttlSeconds"].is_u64(),
        "ttlSeconds must be an integer or null: {s}"
    );
    match &s["expiresAt"] {
        Value::Null => assert!(
            s["ttlSeconds"].is_null(),
            "expiresAt null with a ttlSeconds: {s}"
        ),
        Value::String(e) => assert_iso_utc(e),
        other => panic!("expiresAt must be an ISO string or null, got {other}: {s}"),
    }
    assert!(s["expired"].is_boolean(), "expired must be a bool: {s}");
    assert!(
        matches!(
            s["effectiveStatus"].as_str(),
            Some("healthy" | "degraded" | "unhealthy" | "unknown")
        ),
        "effectiveStatus: {s}"
    );
    assert!(s["blockedBy"].is_array(), "blockedBy must be an array: {s}");
    assert!(
        s["healthStatus"].is_null() || s["healthStatus"].is_object(),
        "healthStatus must be null or an object: {s}"
    );
}

/// Check the top-level discovery shape and every item; returns the items.
pub fn items(v: &Value) -> Vec<Value> {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("discovery body is not an object: {v}"));
    for k in ["services", "count", "timestamp"] {
        assert!(obj.contains_key(k), "discovery body lacks {k}: {v}");
    }
    for k in obj.keys() {
        assert!(
            matches!(
                k.as_str(),
                "services" | "count" | "timestamp" | "failedOpen" | "continuationToken"
            ),
            "unexpected top-level key {k} in discovery body: {v}"
        );
    }
    assert_iso_utc(v["timestamp"].as_str().expect("timestamp string"));
    let services = v["services"].as_array().expect("services array").clone();
    assert_eq!(
        v["count"].as_u64(),
        Some(services.len() as u64),
        "count must equal services.len(): {v}"
    );
    for s in &services {
        assert_item_shape(s);
    }
    services
}

/// `type/name/instanceId` (`-` for no instance id) of one item.
pub fn key_of(s: &Value) -> String {
    format!(
        "{}/{}/{}",
        s["serviceType"].as_str().unwrap_or("?"),
        s["serviceName"].as_str().unwrap_or("?"),
        s["instanceId"].as_str().unwrap_or("-")
    )
}

/// `key_of` every item of a discovery body, in order, after checking its shape (`items`).
pub fn keys(v: &Value) -> Vec<String> {
    items(v).iter().map(key_of).collect()
}

/// The value of an integer property stored as Edm.Int32 (no Int64/Double/String annotation).
pub fn int32_prop(row: &Value, key: &str) -> i64 {
    let ann = row.get(format!("{key}@odata.type")).and_then(Value::as_str);
    assert!(
        ann.is_none() || ann == Some("Edm.Int32"),
        "{key} must be stored as Int32, found annotation {ann:?}: {row}"
    );
    row[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} must be an integer property: {row}"))
}

/// A registration body: `name` of type `service_type` at an address nothing is asked for.
pub fn service(service_type: &str, name: &str) -> Value {
    json!({"serviceName": name, "serviceType": service_type, "endpoint": "https://x.example.com"})
}

/// The recipe's registration body.
pub fn recipe_body() -> Value {
    json!({
        "serviceName": "test-api",
        "endpoint": "https://test-api.example.com",
        "serviceType": "api",
        "version": "1.0.0",
        "tags": ["production", "rest-api"],
        "metadata": {"region": "eastus", "port": 443}
    })
}
