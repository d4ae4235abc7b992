//! The `ProbeShard` queue trigger's envelope: what the Functions host sends a custom handler for
//! one queue message, read into the message text and its dequeue count.
//!
//! From the host's source (docs/functions-host-protocol.md, "The queue trigger"):
//! - `Data.<name>` is the message text as a *JSON string holding the text's JSON encoding* (the host
//!   serialises a string input once more), so a message `{"v":1}` arrives as `"\"{\\\"v\\\":1}\""`.
//!   Also read: the text itself as a string (the docs' older example), base64 of it (a trigger
//!   declared `"dataType": "binary"`), and an object (defensively).
//! - `Metadata` scalars are strings (`"DequeueCount": "1"`, `"Id": "\"…\""`); the docs show
//!   `"DequeueCount": 1`: both are read. The host also copies the message's top-level fields into
//!   `Metadata`, so the shard is never read from there.

use crate::error::ApiError;
use base64::Engine as _;
use serde_json::{Map, Value};

/// The trigger's name in `ProbeShard/function.json`.
const TRIGGER: &str = "shard";

/// One queue message as the envelope carries it.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueMessage {
    /// The message text as its sender wrote it (our shard's compact JSON).
    pub text: String,
    /// Times the host has received it, this time included (`None`: not in `Metadata`).
    pub dequeue_count: Option<u64>,
}

impl QueueMessage {
    pub fn from_envelope(envelope: &Value) -> Result<Self, ApiError> {
        let object = envelope.as_object().cloned().unwrap_or_default();
        let data = field(&object, "Data")
            .and_then(as_object)
            .unwrap_or_default();
        // Our function.json names the trigger `shard`; accept another name if it is the only one.
        let value = field(&data, TRIGGER)
            .or_else(|| (data.len() == 1).then(|| data.values().next()).flatten())
            .ok_or_else(|| {
                ApiError::bad_request("Data.shard", "the invocation envelope has no Data.shard")
            })?;
        let text = message_text(value).ok_or_else(|| {
            ApiError::bad_request(
                "Data.shard",
                "Data.shard is not a queue message's text (a JSON string, its JSON encoding, or base64)",
            )
        })?;
        let metadata = field(&object, "Metadata")
            .and_then(as_object)
            .unwrap_or_default();
        let dequeue_count = field(&metadata, "DequeueCount").and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().trim_matches('"').parse().ok(),
            _ => None,
        });
        Ok(QueueMessage {
            text,
            dequeue_count,
        })
    }
}

/// Case-insensitive, as the host's own deserialiser reads; `null` is absent.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

/// An object, or JSON text of one.
fn as_object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map.clone()),
        Value::String(text) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

/// The message text in whichever of the host's forms it came.
fn message_text(value: &Value) -> Option<String> {
    match value {
        Value::String(outer) => {
            let trimmed = outer.trim();
            // The host's form: JSON text of a string (unwrap once).
            if let Ok(Value::String(inner)) = serde_json::from_str::<Value>(trimmed) {
                return Some(inner);
            }
            // The text itself (a JSON document, as the docs' example shows it).
            if trimmed.starts_with('{') || trimmed.starts_with('[') {
                return Some(outer.clone());
            }
            // `dataType: binary`: base64 of the message bytes.
            base64::engine::general_purpose::STANDARD
                .decode(trimmed)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .or_else(|| Some(outer.clone()))
        }
        Value::Object(_) | Value::Array(_) => Some(value.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEXT: &str = r#"{"v":1,"sweep":"s1","ranges":[["api",null,null]]}"#;

    fn envelope(data: Value, metadata: Value) -> Value {
        json!({"Data": {"shard": data}, "Metadata": metadata})
    }

    #[test]
    fn the_hosts_double_encoded_string_and_string_metadata() {
        let double = Value::String(serde_json::to_string(TEXT).unwrap());
        let metadata = json!({
            "DequeueCount": "2", "Id": "\"5b1e\"", "PopReceipt": "\"AgAA\"",
            "v": "\"1\"", "sweep": "\"s1\"", "sys": {"MethodName": "ProbeShard"}
        });
        let read = QueueMessage::from_envelope(&envelope(double, metadata)).unwrap();
        assert_eq!(read.text, TEXT);
        assert_eq!(read.dequeue_count, Some(2));
    }

    #[test]
    fn the_docs_plain_text_numeric_count_base64_and_object_forms() {
        let plain = QueueMessage::from_envelope(&envelope(json!(TEXT), json!({"DequeueCount": 1})))
            .unwrap();
        assert_eq!((plain.text.as_str(), plain.dequeue_count), (TEXT, Some(1)));
        let base64 = base64::engine::general_purpose::STANDARD.encode(TEXT);
        let binary = QueueMessage::from_envelope(&envelope(json!(base64), json!({}))).unwrap();
        assert_eq!((binary.text.as_str(), binary.dequeue_count), (TEXT, None));
        let object: Value = serde_json::from_str(TEXT).unwrap();
        let read = QueueMessage::from_envelope(&envelope(object.clone(), json!({}))).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&read.text).unwrap(), object);
        // Another trigger name, when it is the only input; Data as JSON text.
        let renamed = json!({"Data": json!({"msg": TEXT}).to_string()});
        assert_eq!(QueueMessage::from_envelope(&renamed).unwrap().text, TEXT);
    }

    #[test]
    fn an_envelope_without_a_message_names_the_field() {
        for bad in [
            json!({}),
            json!({"Data": {"a": 1, "b": 2}}),
            envelope(json!(5), json!({})),
        ] {
            let e = QueueMessage::from_envelope(&bad).unwrap_err();
            assert!(e.to_string().contains("Data.shard"), "{e}");
        }
    }
}
