//! Table keys: `ServiceType` is the PartitionKey of both tables; the RowKey is the `ServiceName`, or
//! `serviceName:instanceId` for a registration that names an instance (`InstanceKey`).
//!
//! Table Storage refuses keys with `/ \ # ?` or control characters and keys over 1 KiB, and the Tables
//! crate does not escape `'` in entity URLs (a RowKey `o'brien` would be stored as `o`). Rather than
//! escape, we accept only `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`: such a key is safe in a URL, in a
//! `$filter` literal and on either side of the `:` of a `name:instance` RowKey. Parsing happens once,
//! at the edge; from then on a `ServiceName` cannot hold anything else.

use super::fields::{body_object, optional_string};
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

table_key!(
    /// One instance of a service (a pod, a VM): the right half of a `name:instance` RowKey.
    InstanceId,
    "instanceId"
);

impl Default for ServiceType {
    fn default() -> Self {
        ServiceType("default".to_owned())
    }
}

/// Which row a registration, heartbeat or health record lives in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey {
    pub service_type: ServiceType,
    pub service_name: ServiceName,
    /// `None` for a recipe-style row: one row per service name.
    pub instance_id: Option<InstanceId>,
}

impl InstanceKey {
    pub fn partition_key(&self) -> &str {
        self.service_type.as_str()
    }

    /// `serviceName`, or `serviceName:instanceId`.
    pub fn row_key(&self) -> String {
        match &self.instance_id {
            None => self.service_name.to_string(),
            Some(instance) => format!("{}:{}", self.service_name, instance),
        }
    }

    /// The recipe's service id, `<serviceType>:<serviceName>` (the instance is reported on its own).
    pub fn service_id(&self) -> String {
        format!("{}:{}", self.service_type, self.service_name)
    }

    /// The key a caller names for a write (heartbeat, deregistration): `serviceName` required,
    /// `serviceType` defaulting to `default`, `instanceId` optional. A parameter given but empty is
    /// an error, not absent: `instanceId=$POD` with `$POD` unset must not act on the service row.
    pub fn from_inputs(
        service_type: Option<&str>,
        service_name: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<Self, ValidationError> {
        let service_name = service_name
            .ok_or_else(|| ValidationError::new("serviceName", "serviceName is required"))?;
        Ok(InstanceKey {
            service_type: service_type
                .map(ServiceType::parse)
                .transpose()?
                .unwrap_or_default(),
            service_name: ServiceName::parse(service_name)?,
            instance_id: instance_id.map(InstanceId::parse).transpose()?,
        })
    }

    /// The key a JSON body names (`{"serviceName", "serviceType"?, "instanceId"?}`), with the rules
    /// of `from_inputs`.
    pub fn from_body(body: &serde_json::Value) -> Result<Self, ValidationError> {
        let object = body_object(body)?;
        Self::from_inputs(
            optional_string(object, "serviceType")?,
            optional_string(object, "serviceName")?,
            optional_string(object, "instanceId")?,
        )
    }

    /// Reads the keys of a stored row. Rows written by other clients may hold keys we would never
    /// accept (Table Storage allows `'`, spaces, unicode); such a row cannot be used safely in an entity
    /// URL or a transaction, so callers skip it and say so.
    pub fn from_stored(partition_key: &str, row_key: &str) -> Result<Self, ValidationError> {
        let (name, instance) = match row_key.split_once(':') {
            Some((name, instance)) => (name, Some(InstanceId::parse(instance)?)),
            None => (row_key, None),
        };
        Ok(InstanceKey {
            service_type: ServiceType::parse(partition_key)?,
            service_name: ServiceName::parse(name)?,
            instance_id: instance,
        })
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
    fn stored_keys_round_trip_and_unsafe_ones_are_refused() {
        let plain = InstanceKey::from_stored("api", "orders").unwrap();
        assert_eq!(
            (plain.row_key(), plain.instance_id),
            ("orders".to_owned(), None)
        );
        let pod = InstanceKey::from_stored("api", "orders:pod-1").unwrap();
        assert_eq!(pod.row_key(), "orders:pod-1");
        assert_eq!(pod.service_id(), "api:orders");
        assert_eq!(pod.instance_id.unwrap().as_str(), "pod-1");
        for (pk, rk) in [
            ("api", "o'brien"),
            ("a b", "x"),
            ("api", "x:y:z"),
            ("api", "x:"),
        ] {
            assert!(InstanceKey::from_stored(pk, rk).is_err(), "{pk:?} {rk:?}");
        }
    }

    #[test]
    fn errors_name_their_own_field() {
        assert_eq!(ServiceType::parse("a/b").unwrap_err().field, "serviceType");
        assert_eq!(ServiceType::default().as_str(), "default");
    }
}
