//! Reading a Consul JSON body the way Consul does: keys match case-insensitively (Go's
//! `encoding/json`), and snake_case spellings match too (`deregister_critical_service_after`,
//! `enable_tag_override`, which python-consul and py-consul send; Consul's `CheckType.UnmarshalJSON`
//! aliases them). A key is compared with its underscores dropped and lower-cased, so `TTL`, `ttl`,
//! `Ttl`, `DeregisterCriticalServiceAfter` and `deregister_critical_service_after` all find their
//! field. Two spellings of one field in the same object are refused (Consul would keep one of them
//! silently), and `null` counts as absent.
//!
//! Durations are read as Consul reads them: a string is a Go duration (`"10s"`, `"1m30s"`), a number
//! is nanoseconds (Go's `time.Duration(float64)`).

use crate::domain::consul::duration::go_duration_nanos;
use crate::domain::fields::json_type;
use crate::domain::ValidationError;
use serde_json::{Map, Value};
use std::time::Duration;

/// A JSON object read with Consul's key matching.
#[derive(Clone, Copy)]
pub(super) struct Object<'a> {
    pub map: &'a Map<String, Value>,
}

/// The form a key is compared in.
pub(super) fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

impl<'a> Object<'a> {
    /// `value` as an object, or a 400 naming `field`.
    pub fn of(value: &'a Value, field: &'static str) -> Result<Self, ValidationError> {
        match value {
            Value::Object(map) => Ok(Object { map }),
            other => Err(ValidationError::new(
                field,
                format!("{field} must be a JSON object, not {}", json_type(other)),
            )),
        }
    }

    /// The value of the field spelled `canonical` (in any case, with or without underscores).
    pub fn get(
        &self,
        canonical: &str,
        field: &'static str,
    ) -> Result<Option<&'a Value>, ValidationError> {
        let wanted = fold(canonical);
        let mut found = None;
        for (key, value) in self.map {
            if fold(key) != wanted {
                continue;
            }
            if found.is_some() {
                return Err(ValidationError::new(
                    field,
                    format!("{field} is given twice, in two spellings"),
                ));
            }
            found = Some(value);
        }
        Ok(found.filter(|value| !value.is_null()))
    }

    /// A string field; absent and `""` are both `None` (Go's zero value).
    pub fn string(
        &self,
        canonical: &str,
        field: &'static str,
    ) -> Result<Option<&'a str>, ValidationError> {
        match self.get(canonical, field)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str()).filter(|t| !t.is_empty())),
            Some(other) => Err(ValidationError::new(
                field,
                format!("{field} must be a string, not {}", json_type(other)),
            )),
        }
    }

    /// A whole-number field (Go `int`: `80.0` and `"80"` are refused, as Go's decoder refuses them).
    pub fn integer(
        &self,
        canonical: &str,
        field: &'static str,
    ) -> Result<Option<i64>, ValidationError> {
        match self.get(canonical, field)? {
            None => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or_else(|| {
                ValidationError::new(field, format!("{field} must be a whole number"))
            }),
        }
    }

    /// A boolean field; absent is `false`.
    pub fn flag(&self, canonical: &str, field: &'static str) -> Result<bool, ValidationError> {
        match self.get(canonical, field)? {
            None => Ok(false),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(other) => Err(ValidationError::new(
                field,
                format!("{field} must be true or false, not {}", json_type(other)),
            )),
        }
    }

    /// A duration field: `None` when absent, zero or negative (Go's "not set").
    pub fn duration(
        &self,
        canonical: &str,
        field: &'static str,
    ) -> Result<Option<Duration>, ValidationError> {
        let invalid = || {
            ValidationError::new(
                field,
                format!("{field} must be a duration such as \"10s\", \"1m30s\" or \"500ms\""),
            )
        };
        let nanos: i128 = match self.get(canonical, field)? {
            None => return Ok(None),
            Some(Value::String(text)) if text.is_empty() => return Ok(None),
            Some(Value::String(text)) => go_duration_nanos(text).ok_or_else(invalid)?,
            Some(Value::Number(number)) => match (number.as_i64(), number.as_f64()) {
                (Some(whole), _) => i128::from(whole),
                (None, Some(float)) if float.abs() < 9.2e18 => float as i128,
                _ => return Err(invalid()),
            },
            Some(_) => return Err(invalid()),
        };
        Ok(u64::try_from(nanos)
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_nanos))
    }

    /// Every key of the object not in `known` (compared folded), in the body's order.
    pub fn unknown_keys<'k>(&'k self, known: &'k [&str]) -> impl Iterator<Item = &'a str> + 'k {
        self.map
            .keys()
            .filter(move |key| !known.iter().any(|k| fold(k) == fold(key)))
            .map(String::as_str)
    }
}

/// A key as it may appear in an error message: short and plain, or not at all (a key is not a
/// secret, but a client that sent garbage does not need it echoed).
pub(super) fn printable_key(key: &str) -> &str {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        key
    } else {
        "(a key that is not plain)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_match_in_any_case_and_in_snake_case() {
        let body = json!({"deregister_critical_service_after": "90m", "ttl": "10s", "Id": "x"});
        let object = Object::of(&body, "Check").unwrap();
        assert_eq!(
            object
                .duration("DeregisterCriticalServiceAfter", "D")
                .unwrap(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            object.duration("TTL", "T").unwrap(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(object.string("ID", "ID").unwrap(), Some("x"));
        assert_eq!(object.string("Name", "Name").unwrap(), None);
    }

    #[test]
    fn two_spellings_of_one_key_are_refused() {
        let body = json!({"Name": "a", "name": "b"});
        let object = Object::of(&body, "body").unwrap();
        assert_eq!(object.get("Name", "Name").unwrap_err().field, "Name");
    }

    #[test]
    fn durations_are_go_strings_or_nanoseconds() {
        let body =
            json!({"a": 1_500_000_000u64, "b": "0s", "c": -5, "d": "10", "e": true, "f": 2.5e9});
        let o = Object::of(&body, "x").unwrap();
        assert_eq!(
            o.duration("a", "a").unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(o.duration("b", "b").unwrap(), None);
        assert_eq!(o.duration("c", "c").unwrap(), None);
        assert_eq!(o.duration("d", "d").unwrap_err().field, "d");
        assert_eq!(o.duration("e", "e").unwrap_err().field, "e");
        assert_eq!(
            o.duration("f", "f").unwrap(),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn integers_and_flags_refuse_other_types() {
        let body = json!({"p": 80, "q": 80.5, "r": "80", "t": true, "u": "true"});
        let o = Object::of(&body, "x").unwrap();
        assert_eq!(o.integer("p", "p").unwrap(), Some(80));
        assert_eq!(o.integer("q", "q").unwrap_err().field, "q");
        assert_eq!(o.integer("r", "r").unwrap_err().field, "r");
        assert!(o.flag("t", "t").unwrap());
        assert!(!o.flag("missing", "m").unwrap());
        assert_eq!(o.flag("u", "u").unwrap_err().field, "u");
    }

    #[test]
    fn only_plain_keys_are_printed() {
        assert_eq!(printable_key("Script"), "Script");
        assert_ne!(printable_key("a b"), "a b");
        assert_ne!(printable_key(&"k".repeat(65)), "k".repeat(65));
    }
}
