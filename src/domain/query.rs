//! The discovery and resolution filters, parsed from the query string: discovery's query here,
//! the resolver's (`resolve_query`) on top of it, so both handlers read a query the same way.
//!
//! Key filters (`serviceType`, `serviceName`, `instanceId`) become `$filter` literals and entity URLs,
//! so they pass the same key rules as a registration: an injection attempt such as
//! `x' or PartitionKey ne '` is a 400, never a wider query. The other filters (tags, metadata,
//! version, health, expiry) are applied in memory to the rows the key filters selected.

use super::{InstanceId, InstanceKey, ServiceName, ServiceType, ValidationError};

pub const MAX_PAGE_SIZE: usize = 1000;

/// Which rows to read: the part of a query that storage evaluates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeySelection {
    pub service_type: Option<ServiceType>,
    pub service_name: Option<ServiceName>,
    /// Only with `service_name`: one instance.
    pub instance_id: Option<InstanceId>,
}

impl KeySelection {
    /// Everything: what the sweep reads.
    pub fn all() -> Self {
        KeySelection::default()
    }
}

/// The filters applied in memory to the rows the keys selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeFilter {
    /// All of these tags.
    pub tags: Vec<String>,
    /// Each `key=value` must match.
    pub metadata: Vec<(String, String)>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryQuery {
    pub keys: KeySelection,
    pub attributes: AttributeFilter,
    pub healthy_only: bool,
    /// With `healthy_only`: when nothing selected is healthy, return everything selected.
    pub fail_open: bool,
    pub include_expired: bool,
    /// `effective=false`: `healthyOnly` judges the own verdict only, not the effective status.
    pub own_verdict_only: bool,
    pub limit: Option<usize>,
    /// Resume after this row (from a continuation token).
    pub after: Option<(String, String)>,
}

/// The query string, percent-decoded into pairs.
pub(super) fn decode(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

impl DiscoveryQuery {
    /// Parses a raw (still percent-encoded) query string.
    pub fn from_query_string(raw: &str) -> Result<Self, ValidationError> {
        let pairs = decode(raw);
        Self::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Parses decoded query pairs. An empty value counts as absent (as in the recipe), the last of a
    /// repeated key wins (except `tags` and `metadata`, which add up), and unknown keys (the host's
    /// `code` among them) are ignored.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ValidationError> {
        let mut query = DiscoveryQuery::default();
        let (mut service_type, mut service_name, mut instance_id) = (None, None, None);
        for (key, value) in pairs {
            if value.is_empty() {
                continue;
            }
            match key {
                "serviceType" => service_type = Some(value),
                "serviceName" => service_name = Some(value),
                "instanceId" => instance_id = Some(value),
                "healthyOnly" => query.healthy_only = flag("healthyOnly", value)?,
                "failOpen" => query.fail_open = flag("failOpen", value)?,
                "includeExpired" => query.include_expired = flag("includeExpired", value)?,
                "effective" => query.own_verdict_only = !flag("effective", value)?,
                "tags" | "tag" => query.attributes.tags.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                ),
                "metadata" => {
                    let (name, wanted) = value.split_once('=').ok_or_else(|| {
                        ValidationError::new(
                            "metadata",
                            "metadata filters are written metadata=key=value",
                        )
                    })?;
                    if name.is_empty() {
                        return Err(ValidationError::new(
                            "metadata",
                            "a metadata filter needs a key before '='",
                        ));
                    }
                    query
                        .attributes
                        .metadata
                        .push((name.to_owned(), wanted.to_owned()));
                }
                "version" => query.attributes.version = Some(value.to_owned()),
                "limit" => query.limit = Some(page_size(value)?),
                "continuationToken" => query.after = Some(decode_token(value)?),
                _ => {}
            }
        }
        query.keys = KeySelection {
            service_type: service_type.map(ServiceType::parse).transpose()?,
            service_name: service_name.map(ServiceName::parse).transpose()?,
            instance_id: instance_id.map(InstanceId::parse).transpose()?,
        };
        if query.keys.instance_id.is_some() && query.keys.service_name.is_none() {
            return Err(ValidationError::new(
                "instanceId",
                "instanceId needs serviceName beside it",
            ));
        }
        Ok(query)
    }
}

fn flag(field: &'static str, value: &str) -> Result<bool, ValidationError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ValidationError::new(
            field,
            format!("{field} must be true or false"),
        ))
    }
}

fn page_size(value: &str) -> Result<usize, ValidationError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .ok_or_else(|| {
            ValidationError::new(
                "limit",
                format!("limit must be a whole number from 1 to {MAX_PAGE_SIZE}"),
            )
        })
}

const TOKEN_PREFIX: &str = "v1~";

/// The token that resumes a listing after the row `(partition_key, row_key)`. Keys are restricted
/// to characters that cannot include `~`, so the token needs no escaping; clients treat it as opaque.
pub fn continuation_token(partition_key: &str, row_key: &str) -> String {
    format!("{TOKEN_PREFIX}{partition_key}~{row_key}")
}

fn decode_token(token: &str) -> Result<(String, String), ValidationError> {
    let invalid = || {
        ValidationError::new(
            "continuationToken",
            "continuationToken is not one this service issued",
        )
    };
    let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
    let (partition_key, row_key) = rest.split_once('~').ok_or_else(invalid)?;
    InstanceKey::from_stored(partition_key, row_key).map_err(|_| invalid())?;
    Ok((partition_key.to_owned(), row_key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_ignores_the_rest() {
        let q = DiscoveryQuery::parse([
            ("serviceType", "api"),
            ("code", "secret"),
            ("healthyOnly", "TRUE"),
            ("serviceName", ""),
            ("tags", "prod, eu"),
            ("tags", "blue"),
            ("metadata", "region=eu=west"),
            ("limit", "10"),
        ])
        .unwrap();
        assert_eq!(q.keys.service_type.unwrap().as_str(), "api");
        assert!(q.keys.service_name.is_none());
        assert!(q.healthy_only && !q.fail_open);
        assert_eq!(q.attributes.tags, ["prod", "eu", "blue"]);
        assert_eq!(
            q.attributes.metadata,
            [("region".to_owned(), "eu=west".to_owned())]
        );
        assert_eq!(q.limit, Some(10));
        assert!(!q.own_verdict_only, "the effective status by default");
        let own = DiscoveryQuery::parse([("effective", "false")]).unwrap();
        assert!(own.own_verdict_only);
        assert_eq!(
            DiscoveryQuery::parse([]).unwrap(),
            DiscoveryQuery::default()
        );
    }

    #[test]
    fn refuses_injection_and_bad_values_naming_the_parameter() {
        for (key, value) in [
            ("serviceType", "x' or PartitionKey ne '"),
            ("serviceName", "a' or '1' eq '1"),
            ("healthyOnly", "yes"),
            ("failOpen", "1"),
            ("includeExpired", "maybe"),
            ("effective", "no"),
            ("metadata", "novalue"),
            ("metadata", "=v"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "ten"),
            ("continuationToken", "garbage"),
            ("continuationToken", "v1~api~o'brien"),
            ("instanceId", "pod-1"),
        ] {
            let e = DiscoveryQuery::parse([(key, value)]).unwrap_err();
            assert_eq!(e.field, key, "{key}={value}");
        }
    }

    #[test]
    fn continuation_tokens_round_trip() {
        let token = continuation_token("api", "orders:pod-9");
        let q = DiscoveryQuery::parse([("continuationToken", token.as_str())]).unwrap();
        assert_eq!(q.after, Some(("api".into(), "orders:pod-9".into())));
    }

    #[test]
    fn query_strings_are_percent_decoded_before_parsing() {
        let q =
            DiscoveryQuery::from_query_string("serviceName=orders&metadata=zone%3D1&tags=a%2Cb")
                .unwrap();
        assert_eq!(q.keys.service_name.unwrap().as_str(), "orders");
        assert_eq!(q.attributes.metadata, [("zone".to_owned(), "1".to_owned())]);
        assert_eq!(q.attributes.tags, ["a", "b"]);
        assert_eq!(
            DiscoveryQuery::from_query_string("").unwrap(),
            DiscoveryQuery::default()
        );
        let e = DiscoveryQuery::from_query_string("serviceName=flt%27%20or%20RowKey%20ne%20%27")
            .unwrap_err();
        assert_eq!(e.field, "serviceName");
    }
}
