//! Service Connector self-registration as its tests see it: the log line that says it is done, the
//! row it writes for one target, the rows as they are stored (keyed, without the two times and the
//! revisions), and
//! the check that no secret of a connection string reached a text.

use super::user_properties;
use serde_json::{json, Map, Value};

/// The start of the line the handler logs once self-registration has run.
pub const SELF_REGISTERED: &str = "Service Connector self-registration: found";

/// (PartitionKey, RowKey) → the row's properties, without the two times and the revisions.
pub fn rows_by_key(rows: &[Value]) -> Map<String, Value> {
    rows.iter()
        .map(|row| {
            let key = format!(
                "{}/{}",
                row["PartitionKey"].as_str().unwrap(),
                row["RowKey"].as_str().unwrap()
            );
            let mut props = user_properties(row);
            props.remove("registeredAt");
            props.remove("lastHeartbeat");
            for name in super::tables::REVISION_PROPERTIES {
                props.remove(name);
                props.remove(&format!("{name}@odata.type"));
            }
            (key, Value::Object(props))
        })
        .collect()
}

/// The row self-registration writes for one target (every property but the two times).
pub fn expected_row(
    kind: &str,
    name: &str,
    endpoint: &str,
    auth: &str,
    variable: &str,
) -> (String, Value) {
    let mut row = json!({
        "serviceName": name,
        "endpoint": endpoint,
        "healthEndpoint": endpoint,
        "serviceType": kind,
        "version": "1.0.0",
        "tags": "[]",
        "metadata": json!({"source": "service-connector", "authType": auth, "variable": variable}).to_string(),
    });
    if endpoint.starts_with("http") {
        row["healthCheck"] = json!(json!({"kind": "tcp"}).to_string());
    }
    (format!("{kind}/{name}"), row)
}

pub fn assert_no_secret(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} holds the secret {secret:?}:\n{text}"
        );
    }
}
