//! What a registration declares it depends on: `dependsOn`, parsed once at the edge into
//! `Dependency` values, and the canonical JSON text stored on its ServiceRegistry row.
//!
//! Each entry is `"serviceType:serviceName"` or `{"service": "serviceType:serviceName", "required":
//! false}` (`required` defaults to true). Both halves pass the table-key rules, which exclude `:`, so
//! the text splits in exactly one place. Errors name the entry (`dependsOn[3]`); the field names are
//! static text, one per allowed position, because a `ValidationError` names its field with one.

use crate::domain::fields::json_type;
use crate::domain::{ServiceName, ServiceType, ValidationError};
use serde::Serialize;
use serde_json::Value;

/// The most dependencies one registration may declare.
pub const MAX_DEPENDENCIES: usize = 32;

/// `dependsOn[i]` for every position an entry may hold.
const ENTRY_FIELDS: [&str; MAX_DEPENDENCIES] = [
    "dependsOn[0]",
    "dependsOn[1]",
    "dependsOn[2]",
    "dependsOn[3]",
    "dependsOn[4]",
    "dependsOn[5]",
    "dependsOn[6]",
    "dependsOn[7]",
    "dependsOn[8]",
    "dependsOn[9]",
    "dependsOn[10]",
    "dependsOn[11]",
    "dependsOn[12]",
    "dependsOn[13]",
    "dependsOn[14]",
    "dependsOn[15]",
    "dependsOn[16]",
    "dependsOn[17]",
    "dependsOn[18]",
    "dependsOn[19]",
    "dependsOn[20]",
    "dependsOn[21]",
    "dependsOn[22]",
    "dependsOn[23]",
    "dependsOn[24]",
    "dependsOn[25]",
    "dependsOn[26]",
    "dependsOn[27]",
    "dependsOn[28]",
    "dependsOn[29]",
    "dependsOn[30]",
    "dependsOn[31]",
];

/// One declared dependency: a service key (`serviceType:serviceName`, both halves valid keys) and
/// whether the dependent cannot work without it. Serialises to the stored, canonical shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub service: String,
    pub required: bool,
}

/// Parses the registration's `dependsOn` (absent or `null`: none). `own` is the registering
/// service's key, which may not be its own dependency.
pub fn parse_depends_on(
    value: Option<&Value>,
    own: &str,
) -> Result<Vec<Dependency>, ValidationError> {
    let dependencies = parse_list(value)?;
    if let Some(at) = dependencies.iter().position(|d| d.service == own) {
        return Err(ValidationError::new(
            ENTRY_FIELDS[at],
            format!("{} may not depend on itself ({own})", ENTRY_FIELDS[at]),
        ));
    }
    Ok(dependencies)
}

/// The canonical text stored in the row's `dependsOn` property; `None` when there is nothing to
/// store (the property is then left out, so such a row is exactly what it was before).
pub fn stored_text(dependencies: &[Dependency]) -> Option<String> {
    if dependencies.is_empty() {
        return None;
    }
    serde_json::to_string(dependencies).ok()
}

/// Reads a stored `dependsOn` text (any client may have written it) by the same rules as a
/// registration, less the self-dependency check (a stored one is reported as a cycle instead).
/// The error says why the text was refused, for the caller's log line.
pub fn from_stored(text: &str) -> Result<Vec<Dependency>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    parse_list(Some(&value)).map_err(|e| e.message)
}

fn parse_list(value: Option<&Value>) -> Result<Vec<Dependency>, ValidationError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ValidationError::new(
                "dependsOn",
                format!(
                    "dependsOn must be an array of \"serviceType:serviceName\" strings or \
                     {{\"service\": …, \"required\": …}} objects, not {}",
                    json_type(other)
                ),
            ))
        }
    };
    if items.len() > MAX_DEPENDENCIES {
        return Err(ValidationError::new(
            "dependsOn",
            format!("dependsOn may list at most {MAX_DEPENDENCIES} services"),
        ));
    }
    let mut dependencies: Vec<Dependency> = Vec::with_capacity(items.len());
    for (at, item) in items.iter().enumerate() {
        let field = ENTRY_FIELDS[at];
        let dependency = parse_entry(field, item)?;
        if dependencies.iter().any(|d| d.service == dependency.service) {
            return Err(ValidationError::new(
                field,
                format!("{field} repeats {}", dependency.service),
            ));
        }
        dependencies.push(dependency);
    }
    Ok(dependencies)
}

fn parse_entry(field: &'static str, item: &Value) -> Result<Dependency, ValidationError> {
    let (service, required) = match item {
        Value::String(text) => (text.as_str(), true),
        Value::Object(object) => {
            let service = match object.get("service") {
                Some(Value::String(text)) => text.as_str(),
                None | Some(Value::Null) => {
                    return Err(ValidationError::new(
                        field,
                        format!("{field}.service is required"),
                    ))
                }
                Some(other) => {
                    return Err(ValidationError::new(
                        field,
                        format!("{field}.service must be a string, not {}", json_type(other)),
                    ))
                }
            };
            let required = match object.get("required") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(flag)) => *flag,
                Some(other) => {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "{field}.required must be true or false, not {}",
                            json_type(other)
                        ),
                    ))
                }
            };
            (service, required)
        }
        other => {
            return Err(ValidationError::new(
                field,
                format!(
                    "{field} must be a \"serviceType:serviceName\" string or an object, not {}",
                    json_type(other)
                ),
            ))
        }
    };
    Ok(Dependency {
        service: service_key(field, service)?,
        required,
    })
}

/// `serviceType:serviceName`, each half by the table-key rules.
fn service_key(field: &'static str, text: &str) -> Result<String, ValidationError> {
    let refuse = |why: String| ValidationError::new(field, format!("{field} {why}"));
    let Some((service_type, service_name)) = text.split_once(':') else {
        return Err(refuse(format!(
            "must name a service as \"serviceType:serviceName\", not {text:?}"
        )));
    };
    let service_type = ServiceType::parse(service_type)
        .map_err(|e| refuse(format!("has a bad type: {}", e.message)))?;
    let service_name = ServiceName::parse(service_name)
        .map_err(|e| refuse(format!("has a bad name: {}", e.message)))?;
    Ok(format!("{service_type}:{service_name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Vec<Dependency>, ValidationError> {
        parse_depends_on(Some(&value), "api:orders")
    }

    #[test]
    fn strings_and_objects_parse_with_required_defaulting_to_true() {
        let parsed = parse(json!([
            "db:orders-sql",
            {"service": "cache:redis", "required": false},
            {"service": "queue:events", "required": null, "future": 1}
        ]))
        .unwrap();
        assert_eq!(
            stored_text(&parsed).unwrap(),
            r#"[{"service":"db:orders-sql","required":true},{"service":"cache:redis","required":false},{"service":"queue:events","required":true}]"#
        );
        assert_eq!(from_stored(&stored_text(&parsed).unwrap()).unwrap(), parsed);
    }

    #[test]
    fn absent_null_and_empty_store_nothing() {
        assert_eq!(parse_depends_on(None, "a:b").unwrap(), vec![]);
        assert_eq!(parse(json!(null)).unwrap(), vec![]);
        assert_eq!(stored_text(&parse(json!([])).unwrap()), None);
    }

    #[test]
    fn each_refusal_names_the_entry() {
        let field = |value: Value| parse(value).unwrap_err().field;
        assert_eq!(field(json!("db:x")), "dependsOn");
        assert_eq!(field(json!({"service": "db:x"})), "dependsOn");
        assert_eq!(field(json!(vec!["db:x"; 33])), "dependsOn");
        assert_eq!(field(json!(["db:x", "nocolon"])), "dependsOn[1]");
        assert_eq!(field(json!(["db:x", "db:y", ":y"])), "dependsOn[2]");
        assert_eq!(field(json!(["db:x'or"])), "dependsOn[0]");
        assert_eq!(field(json!(["db:a:b"])), "dependsOn[0]");
        assert_eq!(field(json!([5])), "dependsOn[0]");
        assert_eq!(field(json!([{"required": true}])), "dependsOn[0]");
        assert_eq!(field(json!([{"service": 1}])), "dependsOn[0]");
        assert_eq!(
            field(json!([{"service": "db:x", "required": "no"}])),
            "dependsOn[0]"
        );
        assert_eq!(field(json!(["db:x", "db:x"])), "dependsOn[1]");
        let own = parse(json!(["db:x", "api:orders"])).unwrap_err();
        assert_eq!(own.field, "dependsOn[1]");
        assert!(own.message.contains("itself"), "{}", own.message);
        let last: Vec<String> = (0..32).map(|i| format!("db:x{i}")).collect();
        assert_eq!(parse(json!(last)).unwrap().len(), 32);
        let mut bad = last.clone();
        bad[31] = "bad".into();
        assert_eq!(field(json!(bad)), "dependsOn[31]");
    }

    #[test]
    fn stored_text_from_other_clients_is_refused_not_fatal() {
        assert!(from_stored("not json").is_err());
        assert!(from_stored("{}").is_err());
        assert!(from_stored(r#"["x"]"#).is_err());
        // A self-dependency another client stored is kept: the evaluation reports it as a cycle.
        assert_eq!(from_stored(r#"["api:orders"]"#).unwrap().len(), 1);
    }
}
