//! The authenticated caller, as handlers see it: who it is (for the log line, never a secret) and
//! what it may do. Handlers take a `Caller` argument and ask it once they have parsed the key they
//! act on (`caller.may_write(&key)?`), so scope checks need no second parse of the body.

use crate::domain::{Grants, InstanceKey, KeySelection, Scope};
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::fmt;

/// Who is calling, as the log line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Nobody checked: the loopback dev loop, the Functions host without opt-in, or explicit
    /// `REGISTRY_ALLOW_ANONYMOUS`.
    Anonymous,
    /// An API key, by its configured id.
    ApiKey(String),
    /// An Entra ID access token, by its object id (or subject when it has none).
    Token(String),
    /// App Service authentication's principal, by its id claim.
    Principal(String),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::ApiKey(id) => write!(f, "key:{id}"),
            Identity::Token(subject) => write!(f, "token:{subject}"),
            Identity::Principal(id) => write!(f, "principal:{id}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    grants: Grants,
}

impl Caller {
    pub fn new(identity: Identity, grants: Grants) -> Self {
        Caller { identity, grants }
    }

    pub fn anonymous() -> Self {
        Caller::new(Identity::Anonymous, Grants::everything())
    }

    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// May change (register, heartbeat, deregister) this registration.
    pub fn may_write(&self, key: &InstanceKey) -> Result<(), ApiError> {
        self.check(self.grants.write_scope(), "write", key)
    }

    /// May write some registration: refused before a lookup by ID, so that the answer says
    /// nothing about which IDs exist.
    pub fn may_write_any(&self) -> Result<(), ApiError> {
        if !self.grants.write_scope().is_nothing() {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            field: None,
            message: format!("{} may not write any service", self.identity),
        })
    }

    /// May see this registration.
    pub fn may_read(&self, key: &InstanceKey) -> Result<(), ApiError> {
        self.check(self.grants.read_scope(), "read", key)
    }

    /// A discovery or resolve names keys: refused when every row they select is outside what the
    /// caller may read (rather than answering an empty list that looks like "not registered").
    /// Rows inside the selection but outside the scope are filtered by `read_scope`.
    pub fn may_select(&self, keys: &KeySelection) -> Result<(), ApiError> {
        let scope = self.grants.read_scope();
        let service_type = keys.service_type.as_ref().map(|t| t.as_str());
        let name = keys.service_name.as_ref().map(|n| n.as_str());
        if scope.may_meet(service_type, name) {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            field: match service_type {
                Some(t) if name.is_none() || scope.refusing_field(t) == "serviceType" => {
                    Some("serviceType")
                }
                _ => Some("serviceName"),
            },
            message: format!(
                "{} may not read the services this query names",
                self.identity
            ),
        })
    }

    /// What discovery and the resolver may show this caller.
    pub fn read_scope(&self) -> &Scope {
        self.grants.read_scope()
    }

    /// Acts on all services (the manual sweep).
    pub fn may_administer(&self) -> Result<(), ApiError> {
        if self.grants.is_admin() {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            field: None,
            message: format!("{} is not an admin", self.identity),
        })
    }

    fn check(&self, scope: &Scope, verb: &str, key: &InstanceKey) -> Result<(), ApiError> {
        let service_type = key.service_type.as_str();
        if scope.covers(service_type, key.service_name.as_str()) {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            field: Some(scope.refusing_field(service_type)),
            message: format!("{} may not {verb} {}", self.identity, key.service_id()),
        })
    }
}

/// The caller the authentication layer admitted. A route without that layer is a wiring bug:
/// refuse (500) rather than guess.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal("a handler that needs a caller runs without authentication".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn key(service_type: &str, name: &str) -> InstanceKey {
        InstanceKey::from_inputs(Some(service_type), Some(name), None).unwrap()
    }

    fn status_and_field(result: Result<(), ApiError>) -> (u16, Option<String>) {
        match result {
            Ok(()) => (200, None),
            Err(ApiError::Forbidden { field, .. }) => (403, field.map(str::to_owned)),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_scoped_writer_writes_only_its_services_and_is_told_which_input_is_outside() {
        let caller = Caller::new(
            Identity::ApiKey("ci".into()),
            Grants::of(Role::Write, Scope::parse("api,web:front").unwrap()),
        );
        assert_eq!(status_and_field(caller.may_write(&key("api", "x"))).0, 200);
        assert_eq!(
            status_and_field(caller.may_write(&key("db", "x"))),
            (403, Some("serviceType".into()))
        );
        assert_eq!(
            status_and_field(caller.may_write(&key("web", "back"))),
            (403, Some("serviceName".into()))
        );
        assert_eq!(status_and_field(caller.may_read(&key("api", "y"))).0, 200);
        assert_eq!(status_and_field(caller.may_administer()).0, 403);
        let message = caller.may_write(&key("db", "x")).unwrap_err().to_string();
        assert_eq!(message, "key:ci may not write db:x");
    }

    #[test]
    fn selections_outside_the_read_scope_are_refused() {
        let caller = Caller::new(
            Identity::Token("oid-1".into()),
            Grants::of(Role::Read, Scope::parse("api:orders-*").unwrap()),
        );
        let select = |t: Option<&str>, n: Option<&str>| KeySelection {
            service_type: t.map(|t| crate::domain::ServiceType::parse(t).unwrap()),
            service_name: n.map(|n| crate::domain::ServiceName::parse(n).unwrap()),
            instance_id: None,
        };
        assert_eq!(
            status_and_field(caller.may_select(&select(None, None))).0,
            200
        );
        assert_eq!(
            status_and_field(caller.may_select(&select(Some("api"), Some("orders-eu")))).0,
            200
        );
        assert_eq!(
            status_and_field(caller.may_select(&select(Some("db"), None))),
            (403, Some("serviceType".into()))
        );
        assert_eq!(
            status_and_field(caller.may_select(&select(Some("api"), Some("pay")))),
            (403, Some("serviceName".into()))
        );
        assert_eq!(
            status_and_field(caller.may_select(&select(None, Some("pay")))),
            (403, Some("serviceName".into()))
        );
        assert!(Caller::anonymous().may_administer().is_ok());
        assert_eq!(Caller::anonymous().identity.to_string(), "anonymous");
    }
}
