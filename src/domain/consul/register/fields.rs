//! The service fields of a Consul registration that need more than a type check: the address the
//! endpoint is built from, `Meta` under Consul's limits, `Tags`, and `Weights`.

use super::keys::{printable_key, Object};
use super::ServiceNames;
use crate::domain::fields::json_type;
use crate::domain::ValidationError;
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv6Addr};

/// Consul's `metaMaxKeyPairs`, `metaKeyMaxLength`, `metaValueMaxLength` (`agent/structs/structs.go`).
const MAX_META_PAIRS: usize = 64;
const MAX_META_KEY_LEN: usize = 128;
const MAX_META_VALUE_LEN: usize = 512;
/// Consul's `metaKeyReservedPrefix`.
const RESERVED_META_PREFIX: &str = "consul-";
/// The native registration's highest weight.
const MAX_WEIGHT: i64 = 1000;
const MAX_HOST_LEN: usize = 253;

/// The host part of the endpoint URL: an IPv6 address in brackets, an IPv4 address or a DNS name
/// as given. Absent, empty, unspecified (`0.0.0.0`, `::`) or anything that is not a plain host is a
/// 400 naming `field`.
pub(super) fn endpoint_host(
    address: Option<&str>,
    field: &'static str,
) -> Result<String, ValidationError> {
    let address = address.ok_or_else(|| {
        ValidationError::new(
            field,
            format!("{field} is required: this registry has no agent address to fall back on"),
        )
    })?;
    let unbracketed = address
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(ValidationError::new(
                field,
                format!("Invalid service address: {field} must not be 0.0.0.0 or ::"),
            ));
        }
        return Ok(match ip {
            IpAddr::V6(v6) => bracketed(v6),
            IpAddr::V4(v4) => v4.to_string(),
        });
    }
    let plain = address.len() <= MAX_HOST_LEN
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain || address.starts_with('.') || address.starts_with('-') {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} must be an IP address or a host name (letters, digits, '.', '-', '_'), without scheme, port or path"
            ),
        ));
    }
    Ok(address.to_owned())
}

fn bracketed(v6: Ipv6Addr) -> String {
    format!("[{v6}]")
}

/// `Meta`: string values only, under Consul's limits (module docs of `register`).
pub(super) fn read_meta(
    object: Object<'_>,
    names: &ServiceNames,
) -> Result<Map<String, Value>, ValidationError> {
    let field = names.meta;
    let meta = match object.get("Meta", field)? {
        None => return Ok(Map::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ValidationError::new(
                field,
                format!(
                    "{field} must be an object of strings, not {}",
                    json_type(other)
                ),
            ))
        }
    };
    if meta.len() > MAX_META_PAIRS {
        return Err(ValidationError::new(
            field,
            format!("{field} cannot contain more than {MAX_META_PAIRS} key/value pairs"),
        ));
    }
    for (key, value) in meta {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !plain || key.len() > MAX_META_KEY_LEN {
            return Err(ValidationError::new(
                field,
                format!("{field} keys must be 1 to {MAX_META_KEY_LEN} letters, digits, '_' or '-'"),
            ));
        }
        if key.starts_with(RESERVED_META_PREFIX) {
            return Err(ValidationError::new(
                field,
                format!(
                    "{field}: key prefix '{RESERVED_META_PREFIX}' is reserved for internal use"
                ),
            ));
        }
        match value {
            Value::String(text) if text.len() <= MAX_META_VALUE_LEN => {}
            Value::String(_) => {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "{field}: the value of {} is longer than {MAX_META_VALUE_LEN} bytes",
                        printable_key(key)
                    ),
                ))
            }
            other => {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "{field} values must be strings; {} is {}",
                        printable_key(key),
                        json_type(other)
                    ),
                ))
            }
        }
    }
    Ok(meta.clone())
}

/// `Tags` as the native `tags` array (the native parser applies its limits).
pub(super) fn read_tags(
    object: Object<'_>,
    names: &ServiceNames,
) -> Result<Value, ValidationError> {
    match object.get("Tags", names.tags)? {
        None => Ok(Value::Array(Vec::new())),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Value::Array(items.clone()))
        }
        Some(_) => Err(ValidationError::new(
            names.tags,
            format!("{} must be an array of strings", names.tags),
        )),
    }
}

/// `Weights.Passing` (1 to 1000, required when `Weights` is given, as Consul's `ValidateWeights`
/// requires it); `Weights.Warning` must be a whole number ≥ 0 and is not stored.
pub(super) fn read_weight(
    object: Object<'_>,
    names: &ServiceNames,
) -> Result<Option<i64>, ValidationError> {
    let weights = match object.get("Weights", names.weights)? {
        None => return Ok(None),
        Some(value) => Object::of(value, names.weights)?,
    };
    let passing = match weights.integer("Passing", names.weights_passing)? {
        Some(passing) if (1..=MAX_WEIGHT).contains(&passing) => passing,
        _ => {
            return Err(ValidationError::new(
                names.weights_passing,
                format!("{} must be from 1 to {MAX_WEIGHT}", names.weights_passing),
            ))
        }
    };
    match weights.integer("Warning", names.weights)? {
        Some(warning) if warning < 0 => Err(ValidationError::new(
            names.weights,
            format!("{}: Warning must be 0 or more", names.weights),
        )),
        _ => Ok(Some(passing)),
    }
}
