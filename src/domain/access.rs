//! Who may do what: roles, the services a grant covers (its scope), and the checks the handlers
//! make once they have parsed the key they act on.
//!
//! Three roles, each including the one before: `read` (discovery, resolver), `write` (register,
//! heartbeat, deregister) and `admin` (the manual sweep, anything that acts on all services). A
//! read or write grant may be limited to some services, like a Consul ACL `service_prefix` rule:
//!
//! - `*`: every service;
//! - `api` or `api:*`: every service of type `api`;
//! - `api:orders`: the service `orders` of type `api` (and all its instances);
//! - `api:orders-*`: names starting with `orders-` in type `api`;
//! - `*:orders-*`: names starting with `orders-` in any type.
//!
//! A scope is a comma-separated list of such patterns; a caller may hold several grants (an Entra
//! token carries several app roles), which add up. Patterns match the stored strings, so rows
//! other clients wrote with keys outside our key rule are judged like any other.

use super::{ServiceName, ServiceType};
use std::fmt;

/// The three roles, in order: each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    /// `read`, `write` or `admin`, in any case (the key file's spelling).
    pub fn parse(text: &str) -> Option<Role> {
        match text.to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The Entra app role value for this role (`Registry.Read`, …).
    pub fn app_role(self) -> &'static str {
        match self {
            Role::Read => "Registry.Read",
            Role::Write => "Registry.Write",
            Role::Admin => "Registry.Admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum NamePattern {
    Any,
    Exact(String),
    Prefix(String),
}

/// One pattern of a scope: a service type (or any) and a name rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServicePattern {
    /// `None`: any type.
    service_type: Option<String>,
    name: NamePattern,
}

impl ServicePattern {
    fn parse(text: &str) -> Result<Self, String> {
        let (type_part, name_part) = text.split_once(':').unwrap_or((text, "*"));
        let service_type = match type_part {
            "*" => None,
            other => Some(
                ServiceType::parse(other)
                    .map_err(|_| format!("{other:?} in {text:?} is not a service type or *"))?
                    .to_string(),
            ),
        };
        let name = match name_part {
            "*" => NamePattern::Any,
            other => match other.strip_suffix('*') {
                // A prefix of a valid name is a valid name itself: check it as one.
                Some(prefix) => NamePattern::Prefix(
                    ServiceName::parse(prefix)
                        .map_err(|_| format!("{other:?} in {text:?} is not a name prefix"))?
                        .to_string(),
                ),
                None => NamePattern::Exact(
                    ServiceName::parse(other)
                        .map_err(|_| format!("{other:?} in {text:?} is not a service name"))?
                        .to_string(),
                ),
            },
        };
        Ok(ServicePattern { service_type, name })
    }

    fn type_matches(&self, service_type: &str) -> bool {
        self.service_type
            .as_deref()
            .is_none_or(|t| t == service_type)
    }

    fn name_matches(&self, name: &str) -> bool {
        match &self.name {
            NamePattern::Any => true,
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }

    fn is_everything(&self) -> bool {
        self.service_type.is_none() && self.name == NamePattern::Any
    }
}

impl fmt::Display for ServicePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.service_type.as_deref().unwrap_or("*"))?;
        match &self.name {
            NamePattern::Any => f.write_str(":*"),
            NamePattern::Exact(name) => write!(f, ":{name}"),
            NamePattern::Prefix(prefix) => write!(f, ":{prefix}*"),
        }
    }
}

/// The services a grant covers: any of its patterns. Empty covers nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    patterns: Vec<ServicePattern>,
}

impl Scope {
    pub fn everything() -> Self {
        Scope {
            patterns: vec![ServicePattern {
                service_type: None,
                name: NamePattern::Any,
            }],
        }
    }

    pub fn nothing() -> Self {
        Scope::default()
    }

    /// `*`, or comma-separated patterns (see the module docs). The error says which part is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("{text:?} has an empty pattern"));
        }
        let patterns = parts
            .into_iter()
            .map(ServicePattern::parse)
            .collect::<Result<_, _>>()?;
        Ok(Scope { patterns })
    }

    pub fn is_everything(&self) -> bool {
        self.patterns.iter().any(ServicePattern::is_everything)
    }

    pub fn is_nothing(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the service `service_type:name` (any of its instances) is covered.
    pub fn covers(&self, service_type: &str, name: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.type_matches(service_type) && p.name_matches(name))
    }

    /// Whether a selection by type and/or name can meet a covered service at all: false means
    /// every row it selects is outside the scope.
    pub fn may_meet(&self, service_type: Option<&str>, name: Option<&str>) -> bool {
        self.patterns.iter().any(|p| {
            service_type.is_none_or(|t| p.type_matches(t)) && name.is_none_or(|n| p.name_matches(n))
        })
    }

    /// Which input puts a key outside the scope: its type when no pattern has that type, else
    /// its name.
    pub fn refusing_field(&self, service_type: &str) -> &'static str {
        if self.patterns.iter().any(|p| p.type_matches(service_type)) {
            "serviceName"
        } else {
            "serviceType"
        }
    }

    fn extend(&mut self, other: &Scope) {
        for pattern in &other.patterns {
            if !self.patterns.contains(pattern) {
                self.patterns.push(pattern.clone());
            }
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_everything() {
            return f.write_str("*");
        }
        let parts: Vec<String> = self.patterns.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Everything one caller may do: the union of its roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Grants {
    read: Scope,
    write: Scope,
    admin: bool,
}

impl Grants {
    /// Everything: anonymous access where the operator allowed it, and admins.
    pub fn everything() -> Self {
        Grants::of(Role::Admin, Scope::everything())
    }

    /// One role over one scope. Writing includes reading what one may write; admin covers all.
    pub fn of(role: Role, scope: Scope) -> Self {
        match role {
            Role::Read => Grants {
                read: scope,
                ..Grants::default()
            },
            Role::Write => Grants {
                read: scope.clone(),
                write: scope,
                admin: false,
            },
            Role::Admin => Grants {
                read: Scope::everything(),
                write: Scope::everything(),
                admin: true,
            },
        }
    }

    /// Grants from Entra app role values (or App Service role claims): `Registry.Read`,
    /// `Registry.Write`, `Registry.Admin`, or `Registry.Read:<scope>` / `Registry.Write:<scope>`
    /// for a limited grant, spelt exactly so (case included). Other values, `Registry.Admin` with
    /// any scope, and scoped values that do not parse, grant nothing.
    pub fn from_app_roles<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut grants = Grants::default();
        for value in values {
            let (name, scope, scoped) = match value.split_once(':') {
                Some((name, scope)) => (name, Scope::parse(scope).ok(), true),
                None => (value, Some(Scope::everything()), false),
            };
            let role = [Role::Read, Role::Write, Role::Admin]
                .into_iter()
                // Exactly as defined in the app registration: app role values are case-sensitive
                // strings, and a differently spelt value is another role, which grants nothing.
                .find(|role| role.app_role() == name);
            match (role, scope) {
                // An admin role acts on all services; a scoped one, even `:*`, is not one of the
                // values defined (`Registry.Admin` alone) and grants nothing.
                (Some(Role::Admin), _) if scoped => {}
                (Some(role), Some(scope)) => grants.add(&Grants::of(role, scope)),
                _ => {}
            }
        }
        grants
    }

    pub fn add(&mut self, other: &Grants) {
        self.read.extend(&other.read);
        self.write.extend(&other.write);
        self.admin |= other.admin;
    }

    pub fn read_scope(&self) -> &Scope {
        &self.read
    }

    pub fn write_scope(&self) -> &Scope {
        &self.write
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// The strongest role held over any service, for the log line.
    pub fn strongest(&self) -> Option<Role> {
        if self.admin {
            Some(Role::Admin)
        } else if !self.write.is_nothing() {
            Some(Role::Write)
        } else if !self.read.is_nothing() {
            Some(Role::Read)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_cover_types_names_and_prefixes() {
        let scope = Scope::parse("api, web:front, *:orders-*, db:cache*").unwrap();
        assert!(scope.covers("api", "anything"));
        assert!(scope.covers("web", "front"));
        assert!(!scope.covers("web", "front-2"));
        assert!(scope.covers("queue", "orders-eu"));
        assert!(!scope.covers("queue", "orders"));
        assert!(scope.covers("db", "cache"));
        assert!(scope.covers("db", "cache-2"));
        assert!(!scope.covers("db", "main"));
        assert!(!scope.covers("apix", "a"));
        assert!(!scope.is_everything());
        assert_eq!(scope.to_string(), "api:*,web:front,*:orders-*,db:cache*");
        assert!(Scope::parse("*").unwrap().is_everything());
        assert!(Scope::parse("*:*").unwrap().covers("x", "y"));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_part_at_fault() {
        for (bad, says) in [
            ("", "empty"),
            ("api,", "empty"),
            ("a/b", "\"a/b\""),
            ("api:o'brien", "\"o'brien\""),
            ("api:-x*", "\"-x*\""),
            ("api:x:y", "\"x:y\""),
            ("~lease", "\"~lease\""),
        ] {
            let error = Scope::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_selection_outside_the_scope_is_told_apart_from_one_that_may_meet_it() {
        let scope = Scope::parse("api:orders-*").unwrap();
        assert!(scope.may_meet(None, None));
        assert!(scope.may_meet(Some("api"), None));
        assert!(scope.may_meet(None, Some("orders-eu")));
        assert!(!scope.may_meet(Some("db"), None));
        assert!(!scope.may_meet(Some("api"), Some("payments")));
        assert_eq!(scope.refusing_field("db"), "serviceType");
        assert_eq!(scope.refusing_field("api"), "serviceName");
        assert!(!Scope::nothing().may_meet(None, None));
    }

    #[test]
    fn roles_include_the_ones_below_and_add_up() {
        let writer = Grants::of(Role::Write, Scope::parse("api").unwrap());
        assert!(writer.read_scope().covers("api", "x"));
        assert!(writer.write_scope().covers("api", "x"));
        assert!(!writer.write_scope().covers("db", "x"));
        assert!(!writer.is_admin());
        let reader = Grants::of(Role::Read, Scope::everything());
        assert!(reader.write_scope().is_nothing());
        assert_eq!(reader.strongest(), Some(Role::Read));
        let mut both = reader.clone();
        both.add(&writer);
        assert!(both.read_scope().covers("db", "x"));
        assert!(both.write_scope().covers("api", "x"));
        assert!(!both.write_scope().covers("db", "x"));
        let admin = Grants::of(Role::Admin, Scope::nothing());
        assert!(admin.is_admin() && admin.write_scope().is_everything());
        assert_eq!(Grants::default().strongest(), None);
    }

    #[test]
    fn app_roles_map_to_grants_and_unknown_or_malformed_ones_grant_nothing() {
        let grants = Grants::from_app_roles(["Registry.Read", "Registry.Write:api,web:front"]);
        assert!(grants.read_scope().is_everything());
        assert!(grants.write_scope().covers("api", "x"));
        assert!(grants.write_scope().covers("web", "front"));
        assert!(!grants.write_scope().covers("db", "x"));
        assert!(!grants.is_admin());
        assert!(Grants::from_app_roles(["Registry.Admin"]).is_admin());
        assert!(Grants::from_app_roles(["Registry.Read:*"])
            .read_scope()
            .is_everything());
        for nothing in [
            "registry.admin",
            "REGISTRY.ADMIN",
            "Registry.admin",
            "registry.Admin:*",
            "registry.read",
            "REGISTRY.WRITE:api",
            " Registry.Admin",
            "Registry.Admin:*",
            "Registry.Writer",
            "Registry.Write:a/b",
            "Registry.Admin:api",
            "Other.Role",
            "",
        ] {
            assert_eq!(
                Grants::from_app_roles([nothing]),
                Grants::default(),
                "{nothing:?}"
            );
        }
    }
}
