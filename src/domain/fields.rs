//! Reading fields of a JSON request body, with errors that name the field. Shared by every parser of
//! a body (registration, its `healthCheck` object, heartbeat), so "absent", "null" and "wrong type"
//! mean the same thing everywhere.

use super::ValidationError;
use serde_json::{Map, Value};

/// The body as an object, or a 400 naming `body`.
pub fn body_object(body: &Value) -> Result<&Map<String, Value>, ValidationError> {
    body.as_object()
        .ok_or_else(|| ValidationError::new("body", "the request body must be a JSON object"))
}

/// The field's value; `null` counts as absent, so clients written for later versions can send it.
pub fn present<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|v| !v.is_null())
}

pub fn optional_string<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ValidationError> {
    match present(object, field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(ValidationError::new(
            field,
            format!("{field} must be a string, not {}", json_type(other)),
        )),
    }
}

pub fn required_string<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ValidationError> {
    match optional_string(object, field)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(ValidationError::new(field, format!("{field} is required"))),
    }
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
