//! The discovery filters, parsed from the query string.
//!
//! Filter values become `$filter` literals and entity URLs, so they pass the same key rules as a
//! registration: an injection attempt such as `x' or PartitionKey ne '` is a 400, never a wider query.

use super::{ServiceName, ServiceType, ValidationError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryQuery {
    pub service_type: Option<ServiceType>,
    pub service_name: Option<ServiceName>,
    pub healthy_only: bool,
}

impl DiscoveryQuery {
    /// Parses decoded query pairs. An empty value counts as absent (as in the recipe), the last of a
    /// repeated key wins, and unknown keys (the host's `code` among them) are ignored.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ValidationError> {
        let (mut service_type, mut service_name, mut healthy_only) = (None, None, None);
        for (key, value) in pairs {
            match key {
                "serviceType" => service_type = Some(value),
                "serviceName" => service_name = Some(value),
                "healthyOnly" => healthy_only = Some(value),
                _ => {}
            }
        }
        let non_empty = |v: Option<&'a str>| v.filter(|v| !v.is_empty());
        Ok(DiscoveryQuery {
            service_type: non_empty(service_type)
                .map(ServiceType::parse)
                .transpose()?,
            service_name: non_empty(service_name)
                .map(ServiceName::parse)
                .transpose()?,
            healthy_only: match non_empty(healthy_only) {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("true") => true,
                Some(v) if v.eq_ignore_ascii_case("false") => false,
                Some(_) => {
                    return Err(ValidationError::new(
                        "healthyOnly",
                        "healthyOnly must be true or false",
                    ))
                }
            },
        })
    }
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
        ])
        .unwrap();
        assert_eq!(q.service_type.unwrap().as_str(), "api");
        assert!(q.service_name.is_none());
        assert!(q.healthy_only);
        assert_eq!(
            DiscoveryQuery::parse([]).unwrap(),
            DiscoveryQuery::default()
        );
    }

    #[test]
    fn refuses_injection_and_bad_flags() {
        let e = DiscoveryQuery::parse([("serviceType", "x' or PartitionKey ne '")]).unwrap_err();
        assert_eq!(e.field, "serviceType");
        let e = DiscoveryQuery::parse([("serviceName", "a' or '1' eq '1")]).unwrap_err();
        assert_eq!(e.field, "serviceName");
        let e = DiscoveryQuery::parse([("healthyOnly", "yes")]).unwrap_err();
        assert_eq!(e.field, "healthyOnly");
    }
}
