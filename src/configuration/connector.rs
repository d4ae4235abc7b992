//! The self-registration group: whether this app registers the services Service Connector
//! connected it to (`SERVICE_CONNECTOR_SELF_REGISTER`), and, when it does, the variables that say
//! what they are, captured once here like every other setting (docs/service-connector.md).
//!
//! A second connection to the same kind of target gets its connection's name inside the variable's
//! name (`AZURE_STORAGEBLOB_CONN2_RESOURCEENDPOINT`), so the names cannot be listed in advance: the
//! process environment's names are listed and matched (`domain::connector::is_candidate`). A lookup
//! without a list of names (the unit tests' `from_lookup`) still finds the first connection's.

use super::environment::Environment;
use super::{ConfigError, Secret};
use crate::domain::connector::{default_variable_names, is_candidate};
use std::fmt;

pub const SELF_REGISTER_VAR: &str = "SERVICE_CONNECTOR_SELF_REGISTER";

#[derive(Debug, Clone, Default)]
pub struct ConnectorSettings {
    /// Register this app's Service Connector targets at start-up and on each sweep.
    pub self_register: bool,
    /// The candidate variables (empty when self-registration is off).
    pub variables: ConnectorVariables,
}

/// Names and values of the candidate variables. Values are connection strings that may hold keys,
/// so `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectorVariables(Vec<(String, Secret)>);

impl ConnectorVariables {
    /// (name, value) pairs, for the one reader that parses them (`domain::connector::discover`).
    pub fn expose(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ConnectorVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
) -> Result<ConnectorSettings, ConfigError> {
    let self_register = env.flag(SELF_REGISTER_VAR, false)?;
    if !self_register {
        return Ok(ConnectorSettings::default());
    }
    let mut names: Vec<String> = env
        .names()
        .iter()
        .filter(|name| is_candidate(name))
        .cloned()
        .chain(default_variable_names())
        .collect();
    names.sort();
    names.dedup();
    let variables = names
        .into_iter()
        .filter_map(|name| env.text(&name).map(|value| (name, Secret::new(value))))
        .collect();
    Ok(ConnectorSettings {
        self_register,
        variables: ConnectorVariables(variables),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_of(
        pairs: &[(&str, &str)],
        names: &[&str],
    ) -> Result<ConnectorSettings, ConfigError> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Environment::with_names(
            move |name: &str| {
                owned
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            },
            names.iter().map(|n| n.to_string()).collect(),
        );
        settings(&env)
    }

    #[test]
    fn off_by_default_and_then_nothing_is_captured() {
        let s = settings_of(&[("AZURE_REDIS_HOST", "c.redis.cache.windows.net")], &[]).unwrap();
        assert!(!s.self_register);
        assert!(s.variables.is_empty());
    }

    #[test]
    fn a_flag_that_is_not_a_bool_is_refused_naming_the_variable() {
        let e = settings_of(&[(SELF_REGISTER_VAR, "yes please")], &[]).unwrap_err();
        assert_eq!(
            e,
            ConfigError::Invalid {
                variable: SELF_REGISTER_VAR.to_owned(),
                reason: "expected true or false, got \"yes please\"".to_owned(),
            }
        );
        assert!(e
            .to_string()
            .starts_with("SERVICE_CONNECTOR_SELF_REGISTER is invalid"));
    }

    #[test]
    fn when_on_the_candidates_are_captured_and_never_printed() {
        let pairs = [
            (SELF_REGISTER_VAR, "true"),
            (
                "AZURE_REDIS_CONNECTIONSTRING",
                "c.redis.cache.windows.net:6380,password=TopSecret1",
            ),
            (
                "AZURE_STORAGEBLOB_CONN2_RESOURCEENDPOINT",
                "https://b.blob.core.windows.net/",
            ),
            ("AZURE_REDIS_CLIENTID", "not-a-candidate"),
            ("AZURE_SQL_SERVER", "   "),
            ("PATH", "/usr/bin"),
        ];
        let names = [
            "AZURE_STORAGEBLOB_CONN2_RESOURCEENDPOINT",
            "AZURE_REDIS_CLIENTID",
            "PATH",
        ];
        let s = settings_of(&pairs, &names).unwrap();
        assert!(s.self_register);
        let captured: Vec<&str> = s.variables.names().collect();
        assert_eq!(
            captured,
            [
                "AZURE_REDIS_CONNECTIONSTRING",
                "AZURE_STORAGEBLOB_CONN2_RESOURCEENDPOINT"
            ]
        );
        let shown = format!("{s:?}");
        assert!(shown.contains("AZURE_REDIS_CONNECTIONSTRING"), "{shown}");
        assert!(
            !shown.contains("TopSecret1") && !shown.contains("b.blob"),
            "{shown}"
        );
        let values: Vec<(&str, &str)> = s.variables.expose().collect();
        assert_eq!(values[1].1, "https://b.blob.core.windows.net/");
    }
}
