//! What a registration request must contain, parsed once into a `Registration`.
//!
//! The body arrives as untyped JSON so that every problem can be reported against the field it belongs
//! to (serde's own errors name positions, not fields). Limits keep every row far below Table Storage's
//! 64 KiB-per-string and 1 MiB-per-entity limits, so a valid registration can never fail at the store.

use super::fields::{body_object, json_type, optional_string, present, required_string};
use super::{
    has_control_char, parse_depends_on, probe_target, Dependency, Endpoint, HealthCheck,
    InstanceId, InstanceKey, ServiceName, ServiceType, ValidationError,
};
use serde_json::{Map, Value};

pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_LEN: usize = 128;
pub const MAX_METADATA_KEYS: usize = 64;
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
pub const MAX_VERSION_LEN: usize = 64;
const DEFAULT_VERSION: &str = "1.0.0";
pub const MIN_TTL_SECONDS: u64 = 5;
pub const MAX_TTL_SECONDS: u64 = 86_400;
pub const MAX_WEIGHT: u64 = 1000;
/// The weight of a registration that gives none (and of every recipe-style row).
pub const DEFAULT_WEIGHT: u32 = 100;

/// A registration that passed every rule: safe to write as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub key: InstanceKey,
    /// As registered (the URL text, not a re-serialisation), so other clients read what was sent.
    pub endpoint: String,
    pub health_endpoint: String,
    pub version: String,
    pub tags: Vec<String>,
    pub metadata: Map<String, Value>,
    /// Heartbeats older than this make the instance expired (hidden from discovery, later deleted).
    pub ttl_seconds: Option<u32>,
    /// `None` keeps a recipe-style row free of the property; readers use `DEFAULT_WEIGHT`.
    pub weight: Option<u32>,
    pub health_check: Option<HealthCheck>,
    /// What the health monitor will contact: the health endpoint with the check's kind and path
    /// applied (`probe_target`, as the sweep computes it from the stored row), judged by the SSRF
    /// guard at registration.
    pub probe_target: Endpoint,
    /// The services it declares it needs (`dependsOn`), in declared order; empty when none.
    pub depends_on: Vec<Dependency>,
}

impl Registration {
    /// Parses the request body's JSON. Unknown fields are ignored and `null` counts as absent, so
    /// clients written for later versions of the API can still register.
    pub fn parse(body: &Value) -> Result<Self, ValidationError> {
        let object = body_object(body)?;

        let service_name = ServiceName::parse(required_string(object, "serviceName")?)?;
        let instance_id = optional_string(object, "instanceId")?
            .map(InstanceId::parse)
            .transpose()?;
        let endpoint = required_string(object, "endpoint")?;
        let parsed_endpoint = Endpoint::parse("endpoint", endpoint)?;
        let (health_endpoint, parsed_health) = match optional_string(object, "healthEndpoint")? {
            Some(text) => (text, Endpoint::parse_health("healthEndpoint", text)?),
            None => (endpoint, parsed_endpoint),
        };
        let health_check = present(object, "healthCheck")
            .map(|value| HealthCheck::parse(value, &parsed_health))
            .transpose()?;
        let probe_target = probe_target(parsed_health, health_check.as_ref());
        let service_type = match optional_string(object, "serviceType")? {
            Some(text) => ServiceType::parse(text)?,
            None => ServiceType::default(),
        };
        let version = match optional_string(object, "version")? {
            Some(text) => parse_version(text)?,
            None => DEFAULT_VERSION.to_owned(),
        };
        let tags = parse_tags(object.get("tags"))?;
        let metadata = parse_metadata(object.get("metadata"))?;
        let ttl_seconds =
            optional_integer(object, "ttlSeconds", MIN_TTL_SECONDS..=MAX_TTL_SECONDS)?;
        let weight = optional_integer(object, "weight", 0..=MAX_WEIGHT)?;
        let own = format!("{service_type}:{service_name}");
        let depends_on = parse_depends_on(present(object, "dependsOn"), &own)?;

        Ok(Registration {
            key: InstanceKey {
                service_type,
                service_name,
                instance_id,
            },
            depends_on,
            endpoint: endpoint.to_owned(),
            health_endpoint: health_endpoint.to_owned(),
            version,
            tags,
            metadata,
            ttl_seconds,
            weight,
            health_check,
            probe_target,
        })
    }
}

/// A whole number in `range`, or absent. `1.0` and `"5"` are refused: a client sending them has a bug
/// worth hearing about.
fn optional_integer(
    object: &Map<String, Value>,
    field: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u32>, ValidationError> {
    match present(object, field) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|n| range.contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!(
                        "{field} must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

fn parse_version(text: &str) -> Result<String, ValidationError> {
    if text.is_empty() || text.chars().count() > MAX_VERSION_LEN || has_control_char(text) {
        return Err(ValidationError::new(
            "version",
            format!("version must be 1 to {MAX_VERSION_LEN} characters without control characters"),
        ));
    }
    Ok(text.to_owned())
}

fn parse_tags(value: Option<&Value>) -> Result<Vec<String>, ValidationError> {
    let tags = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ValidationError::new(
                "tags",
                format!("tags must be an array of strings, not {}", json_type(other)),
            ))
        }
    };
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::new(
            "tags",
            format!("at most {MAX_TAGS} tags are allowed"),
        ));
    }
    tags.iter()
        .map(|tag| match tag {
            Value::String(text)
                if !text.is_empty()
                    && text.chars().count() <= MAX_TAG_LEN
                    && !has_control_char(text) =>
            {
                Ok(text.clone())
            }
            Value::String(_) => Err(ValidationError::new(
                "tags",
                format!(
                    "each tag must be 1 to {MAX_TAG_LEN} characters without control characters"
                ),
            )),
            other => Err(ValidationError::new(
                "tags",
                format!(
                    "tags must be an array of strings; found {}",
                    json_type(other)
                ),
            )),
        })
        .collect()
}

fn parse_metadata(value: Option<&Value>) -> Result<Map<String, Value>, ValidationError> {
    let metadata = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ValidationError::new(
                "metadata",
                format!("metadata must be a JSON object, not {}", json_type(other)),
            ))
        }
    };
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(ValidationError::new(
            "metadata",
            format!("metadata may have at most {MAX_METADATA_KEYS} keys"),
        ));
    }
    let size = serde_json::to_string(metadata)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(ValidationError::new(
            "metadata",
            format!("metadata must serialize to at most {MAX_METADATA_BYTES} bytes"),
        ));
    }
    Ok(metadata.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(body: Value) -> &'static str {
        Registration::parse(&body).unwrap_err().field
    }

    #[test]
    fn the_recipe_body_parses_with_its_values() {
        let r = Registration::parse(&json!({
            "serviceName": "test-api", "endpoint": "https://test-api.example.com",
            "serviceType": "api", "version": "1.0.0",
            "tags": ["production", "rest-api"], "metadata": {"region": "eastus", "port": 443}
        }))
        .unwrap();
        assert_eq!(r.key.service_id(), "api:test-api");
        assert_eq!(r.key.row_key(), "test-api");
        assert_eq!(
            (r.ttl_seconds, r.weight, r.health_check),
            (None, None, None)
        );
        assert_eq!(r.health_endpoint, "https://test-api.example.com");
        assert_eq!(r.tags, vec!["production", "rest-api"]);
        assert_eq!(r.metadata["port"], json!(443));
    }

    #[test]
    fn defaults_fill_what_is_absent_or_null() {
        let r = Registration::parse(&json!({
            "serviceName": "svc", "endpoint": "tcp://redis:6379", "serviceType": null, "future": 1
        }))
        .unwrap();
        assert_eq!(r.key.service_type.as_str(), "default");
        assert_eq!(r.version, "1.0.0");
        assert!(r.tags.is_empty() && r.metadata.is_empty());
        assert_eq!(r.health_endpoint, "tcp://redis:6379");
    }

    #[test]
    fn instance_settings_parse_and_shape_the_probe_target() {
        let r = Registration::parse(&json!({
            "serviceName": "orders", "instanceId": "pod-7", "endpoint": "http://10.0.0.7:8080",
            "ttlSeconds": 30, "weight": 0, "healthCheck": {"path": "/healthz", "timeoutMs": 1500}
        }))
        .unwrap();
        assert_eq!(r.key.row_key(), "orders:pod-7");
        assert_eq!((r.ttl_seconds, r.weight), (Some(30), Some(0)));
        assert_eq!(
            r.probe_target,
            Endpoint::parse("x", "http://10.0.0.7:8080/healthz").unwrap()
        );
    }

    #[test]
    fn the_target_judged_at_registration_is_the_one_the_sweep_derives_from_the_row() {
        for body in [
            json!({"serviceName": "a", "endpoint": "http://10.0.0.1:8080/x?q=1"}),
            json!({"serviceName": "b", "endpoint": "http://10.0.0.2", "healthEndpoint": "https://10.0.0.2:8443/ready",
                   "healthCheck": {"path": "/healthz?deep=1"}}),
            json!({"serviceName": "c", "endpoint": "http://svc.internal:81", "healthCheck": {"kind": "tcp"}}),
            json!({"serviceName": "d", "endpoint": "tcp://redis.internal:6379", "healthCheck": {"timeoutMs": 500}}),
        ] {
            let r = Registration::parse(&body).unwrap();
            // What the sweep reads back: the health endpoint's text and the stored check settings.
            let stored = r
                .health_check
                .as_ref()
                .and_then(|check| HealthCheck::from_stored(&check.to_json().to_string()));
            let endpoint = Endpoint::parse_health("healthEndpoint", &r.health_endpoint).unwrap();
            assert_eq!(
                probe_target(endpoint, stored.as_ref()),
                r.probe_target,
                "{body}"
            );
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let ok = || json!({"serviceName": "svc", "endpoint": "http://x"});
        let with = |k: &str, v: Value| {
            let mut b = ok();
            b[k] = v;
            b
        };
        assert_eq!(field_of(json!([1])), "body");
        assert_eq!(field_of(json!("text")), "body");
        assert_eq!(field_of(json!({"endpoint": "http://x"})), "serviceName");
        assert_eq!(field_of(with("serviceName", json!(""))), "serviceName");
        assert_eq!(field_of(with("serviceName", json!(5))), "serviceName");
        assert_eq!(field_of(with("serviceName", json!("a/b"))), "serviceName");
        assert_eq!(field_of(json!({"serviceName": "svc"})), "endpoint");
        assert_eq!(field_of(with("endpoint", json!("ftp://x"))), "endpoint");
        assert_eq!(
            field_of(with("healthEndpoint", json!("nope"))),
            "healthEndpoint"
        );
        assert_eq!(
            field_of(with("serviceType", json!("x' or 1"))),
            "serviceType"
        );
        assert_eq!(field_of(with("version", json!(1.0))), "version");
        assert_eq!(field_of(with("version", json!(""))), "version");
        assert_eq!(field_of(with("tags", json!("prod"))), "tags");
        assert_eq!(field_of(with("tags", json!([1]))), "tags");
        assert_eq!(field_of(with("tags", json!(vec!["t"; 33]))), "tags");
        assert_eq!(field_of(with("tags", json!(["x".repeat(129)]))), "tags");
        assert_eq!(field_of(with("metadata", json!(["a"]))), "metadata");
        assert_eq!(
            field_of(with("metadata", json!({"big": "x".repeat(9000)}))),
            "metadata"
        );
        assert_eq!(field_of(with("instanceId", json!("a:b"))), "instanceId");
        assert_eq!(field_of(with("ttlSeconds", json!(4))), "ttlSeconds");
        assert_eq!(field_of(with("ttlSeconds", json!("30"))), "ttlSeconds");
        assert_eq!(field_of(with("weight", json!(1001))), "weight");
        assert_eq!(field_of(with("weight", json!(-1))), "weight");
        assert_eq!(field_of(with("weight", json!(2.5))), "weight");
        assert_eq!(
            field_of(with("healthCheck", json!({"kind": "udp"}))),
            "healthCheck.kind"
        );
        assert_eq!(field_of(with("dependsOn", json!("db:x"))), "dependsOn");
        assert_eq!(
            field_of(with("dependsOn", json!(["db:x", 1]))),
            "dependsOn[1]"
        );
        assert_eq!(
            field_of(with("dependsOn", json!(["default:svc"]))),
            "dependsOn[0]"
        );
        let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(field_of(with("metadata", Value::Object(many))), "metadata");
    }
}
