//! What a resolve asks for, parsed from the query string with discovery's rules (`query`), but with
//! the one difference that matters to the type: a resolve always names a service.

use super::query::decode;
use super::{
    AttributeFilter, DiscoveryQuery, InstanceId, KeySelection, ServiceName, ServiceType,
    ValidationError,
};

/// The keys of a resolve: like a `KeySelection`, but always naming a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSelection {
    pub service_type: Option<ServiceType>,
    pub service_name: ServiceName,
    pub instance_id: Option<InstanceId>,
}

impl ServiceSelection {
    /// The rows to read for it.
    pub fn keys(&self) -> KeySelection {
        KeySelection {
            service_type: self.service_type.clone(),
            service_name: Some(self.service_name.clone()),
            instance_id: self.instance_id.clone(),
        }
    }
}

/// What a resolve asks for: one named service, narrowed by the same attribute filters as discovery.
/// Health and expiry are not the caller's to choose (eligibility decides: `eligible`), and one
/// instance is the whole answer, so nothing pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveQuery {
    pub keys: ServiceSelection,
    pub attributes: AttributeFilter,
    /// `effective=false`: eligibility judges the own verdict only, not the effective status.
    pub own_verdict_only: bool,
}

impl ResolveQuery {
    /// Parses a raw (still percent-encoded) query string.
    pub fn from_query_string(raw: &str) -> Result<Self, ValidationError> {
        let pairs = decode(raw);
        Self::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Parses decoded query pairs with discovery's rules. A missing `serviceName` is reported first,
    /// before anything else about the query. Discovery's own parameters (`healthyOnly`, `failOpen`,
    /// `includeExpired`, `limit`, `continuationToken`) are still checked, so a malformed one is a 400
    /// here as there, but they change nothing.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ValidationError> {
        let required = || ValidationError::new("serviceName", "serviceName is required");
        let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        if !pairs
            .iter()
            .any(|(key, value)| *key == "serviceName" && !value.is_empty())
        {
            return Err(required());
        }
        let DiscoveryQuery {
            keys,
            attributes,
            own_verdict_only,
            ..
        } = DiscoveryQuery::parse(pairs)?;
        Ok(ResolveQuery {
            keys: ServiceSelection {
                service_type: keys.service_type,
                // Present: parsing keeps a non-empty serviceName (or refuses it).
                service_name: keys.service_name.ok_or_else(required)?,
                instance_id: keys.instance_id,
            },
            attributes,
            own_verdict_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolve_names_its_service_and_keeps_discoverys_filters() {
        let q = ResolveQuery::from_query_string(
            "serviceType=api&serviceName=orders&instanceId=pod-1&tags=blue&metadata=zone=1\
             &version=2.0.0&healthyOnly=true&limit=5&code=secret",
        )
        .unwrap();
        assert_eq!(q.keys.service_name.as_str(), "orders");
        assert_eq!(
            q.keys.keys(),
            KeySelection {
                service_type: Some(ServiceType::parse("api").unwrap()),
                service_name: Some(ServiceName::parse("orders").unwrap()),
                instance_id: Some(InstanceId::parse("pod-1").unwrap()),
            }
        );
        assert_eq!(
            q.attributes,
            AttributeFilter {
                tags: vec!["blue".into()],
                metadata: vec![("zone".into(), "1".into())],
                version: Some("2.0.0".into()),
            }
        );
        assert!(!q.own_verdict_only);
        let own = ResolveQuery::from_query_string("serviceName=a&effective=false").unwrap();
        assert!(own.own_verdict_only);
        // The last non-empty serviceName wins, as in discovery.
        let q = ResolveQuery::parse([("serviceName", "a"), ("serviceName", "")]).unwrap();
        assert_eq!(q.keys.service_name.as_str(), "a");
    }

    #[test]
    fn a_missing_service_name_is_reported_before_anything_else() {
        for raw in [
            "",
            "serviceName=",
            "serviceType=api",
            "tags=canary",
            "serviceName=&serviceName=",
            "metadata=zone&limit=0&serviceType=a%20b",
        ] {
            let e = ResolveQuery::from_query_string(raw).unwrap_err();
            assert_eq!(
                e,
                ValidationError::new("serviceName", "serviceName is required"),
                "?{raw}"
            );
        }
    }

    #[test]
    fn a_resolve_refuses_what_discovery_refuses() {
        for (raw, field) in [
            ("serviceName=a%2Fb", "serviceName"),
            ("serviceName=flt&serviceType=a%20b", "serviceType"),
            ("serviceName=flt&metadata=zone", "metadata"),
            // Discovery's own parameters change nothing here but are still checked.
            ("serviceName=flt&limit=0", "limit"),
            ("serviceName=flt&healthyOnly=yes", "healthyOnly"),
            (
                "serviceName=flt&continuationToken=garbage",
                "continuationToken",
            ),
        ] {
            let e = ResolveQuery::from_query_string(raw).unwrap_err();
            assert_eq!(e.field, field, "?{raw}");
        }
        let e = ResolveQuery::from_query_string("serviceName=a%2Fb").unwrap_err();
        assert_ne!(e.message, "serviceName is required");
    }
}
