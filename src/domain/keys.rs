//! Table keys: `ServiceType` is the PartitionKey and `ServiceName` the RowKey of both tables.
//!
//! Table Storage refuses keys with `/ \ # ?` or control characters and keys over 1 KiB, and the Tables
//! crate does not escape `'` in entity URLs (a RowKey `o'brien` would be stored as `o`). Rather than
//! escape, we accept only `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`: such a key is safe in a URL, in a
//! `$filter` literal and as the left half of a future `name:instance` RowKey. Parsing happens once, at
//! the edge; from then on a `ServiceName` cannot hold anything else.

use super::ValidationError;
use std::fmt;

pub const MAX_KEY_LEN: usize = 128;

fn parse_key(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::new(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if raw.len() > MAX_KEY_LEN {
        return Err(ValidationError::new(
            field,
            format!("{field} must be at most {MAX_KEY_LEN} characters"),
        ));
    }
    let mut chars = raw.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} must start with a letter or digit and contain only letters, digits, '.', '_' and '-'"
            ),
        ));
    }
    Ok(raw.to_owned())
}

macro_rules! table_key {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The name of the input this key is parsed from, for error messages.
            pub const FIELD: &'static str = $field;

            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                parse_key($field, raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

table_key!(
    /// A service's name: the RowKey.
    ServiceName,
    "serviceName"
);
table_key!(
    /// A service's type (`api`, `database`, …): the PartitionKey. `default` when none is given.
    ServiceType,
    "serviceType"
);

impl Default for ServiceType {
    fn default() -> Self {
        ServiceType("default".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_pattern() {
        for ok in ["a", "test-api", "A.b_c-9", "0svc", &"x".repeat(128)] {
            assert_eq!(ServiceName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_what_table_storage_or_filters_would_choke_on() {
        for bad in [
            "",
            "-lead",
            ".lead",
            "_lead",
            "a/b",
            "a\\b",
            "a#b",
            "a?b",
            "o'brien",
            "a b",
            "a:b",
            "tab\there",
            "nl\n",
            "é",
            &"x".repeat(129),
            "x' or PartitionKey ne '",
        ] {
            let err = ServiceName::parse(bad).unwrap_err();
            assert_eq!(err.field, "serviceName", "{bad:?}");
        }
    }

    #[test]
    fn errors_name_their_own_field() {
        assert_eq!(ServiceType::parse("a/b").unwrap_err().field, "serviceType");
        assert_eq!(ServiceType::default().as_str(), "default");
    }
}
