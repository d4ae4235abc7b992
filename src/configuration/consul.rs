//! The Consul-compatible API's settings: the datacenter it reports, how a never-checked instance
//! looks to Consul's clients, how long a blocking read may be held, and the `serviceType` a Consul
//! registration gets when its `Meta` names none.
//!
//! The hold cap exists because the Functions front end cuts an HTTP call at 230 s: a blocking read
//! is held at most `CONSUL_MAX_HOLD_SECONDS` plus jitter of a sixteenth of it, so the cap stops at
//! 200 s (200 + 12.5 < 230, with room for the answer).

use super::environment::Environment;
use super::ConfigError;
use crate::domain::ServiceType;
use std::time::Duration;

pub const DATACENTER_VAR: &str = "CONSUL_DATACENTER";
pub const UNCHECKED_STATUS_VAR: &str = "CONSUL_UNCHECKED_STATUS";
pub const MAX_HOLD_VAR: &str = "CONSUL_MAX_HOLD_SECONDS";
pub const SERVICE_TYPE_VAR: &str = "CONSUL_SERVICE_TYPE";

/// The longest hold an operator may configure, in seconds (see the module comment).
pub const MAX_HOLD_LIMIT_SECONDS: u64 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulSettings {
    /// `Config.Datacenter`, `Node.Datacenter`, and the only `dc=` accepted.
    pub datacenter: String,
    /// The check status of an instance no sweep has judged yet.
    pub unchecked_status: UncheckedStatus,
    /// The longest a blocking read is held, before jitter.
    pub max_hold: Duration,
    /// `serviceType` of a Consul registration without `Meta.serviceType`.
    pub service_type: ServiceType,
}

/// What a never-checked instance reports: one of Consul's three check statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UncheckedStatus {
    Passing,
    Warning,
    Critical,
}

impl Default for ConsulSettings {
    fn default() -> Self {
        ConsulSettings {
            datacenter: "dc1".to_owned(),
            unchecked_status: UncheckedStatus::Warning,
            max_hold: Duration::from_secs(100),
            service_type: ServiceType::parse("consul").expect("a valid key"),
        }
    }
}

pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
) -> Result<ConsulSettings, ConfigError> {
    let defaults = ConsulSettings::default();
    let datacenter = match env.text(DATACENTER_VAR) {
        None => defaults.datacenter,
        Some(dc) => datacenter(dc.trim())?,
    };
    let unchecked_status = match env
        .text(UNCHECKED_STATUS_VAR)
        .map(|s| s.trim().to_ascii_lowercase())
    {
        None => defaults.unchecked_status,
        Some(s) => match s.as_str() {
            "passing" => UncheckedStatus::Passing,
            "warning" => UncheckedStatus::Warning,
            "critical" => UncheckedStatus::Critical,
            _ => {
                return Err(invalid(
                    UNCHECKED_STATUS_VAR,
                    "expected passing, warning or critical".to_owned(),
                ))
            }
        },
    };
    let hold = env.count(MAX_HOLD_VAR, defaults.max_hold.as_secs() as u32)?;
    if u64::from(hold) > MAX_HOLD_LIMIT_SECONDS {
        return Err(invalid(
            MAX_HOLD_VAR,
            format!(
                "at most {MAX_HOLD_LIMIT_SECONDS} seconds: the Functions front end ends an HTTP call at 230 s, and a hold adds up to a sixteenth of itself as jitter"
            ),
        ));
    }
    let service_type = match env.text(SERVICE_TYPE_VAR) {
        None => defaults.service_type,
        Some(t) => {
            ServiceType::parse(t.trim()).map_err(|e| invalid(SERVICE_TYPE_VAR, e.message))?
        }
    };
    Ok(ConsulSettings {
        datacenter,
        unchecked_status,
        max_hold: Duration::from_secs(u64::from(hold)),
        service_type,
    })
}

/// A datacenter name as Consul allows it: letters, digits, `-` and `_`, at most 64 characters (it
/// appears in answers and in `dc=` comparisons, never in a key).
fn datacenter(dc: &str) -> Result<String, ConfigError> {
    let ok = !dc.is_empty()
        && dc.len() <= 64
        && dc
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(invalid(
            DATACENTER_VAR,
            "expected 1 to 64 letters, digits, '-' or '_' (such as dc1 or westeurope)".to_owned(),
        ));
    }
    Ok(dc.to_owned())
}

fn invalid(variable: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<ConsulSettings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        settings(&Environment::new(move |name| vars.get(name).cloned()))
    }

    fn variable(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { variable, .. } => variable,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = read(&[]).unwrap();
        assert_eq!(s, ConsulSettings::default());
        assert_eq!(s.datacenter, "dc1");
        assert_eq!(s.unchecked_status, UncheckedStatus::Warning);
        assert_eq!(s.max_hold, Duration::from_secs(100));
        assert_eq!(s.service_type.as_str(), "consul");
    }

    #[test]
    fn reads_each_variable() {
        let s = read(&[
            (DATACENTER_VAR, "west_europe-1"),
            (UNCHECKED_STATUS_VAR, "Passing"),
            (MAX_HOLD_VAR, "200"),
            (SERVICE_TYPE_VAR, "api"),
        ])
        .unwrap();
        assert_eq!(s.datacenter, "west_europe-1");
        assert_eq!(s.unchecked_status, UncheckedStatus::Passing);
        assert_eq!(s.max_hold, Duration::from_secs(200));
        assert_eq!(s.service_type.as_str(), "api");
        assert_eq!(
            read(&[(UNCHECKED_STATUS_VAR, "critical")])
                .unwrap()
                .unchecked_status,
            UncheckedStatus::Critical
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            (DATACENTER_VAR, "dc 1"),
            (DATACENTER_VAR, &"d".repeat(65)),
            (UNCHECKED_STATUS_VAR, "unknown"),
            (MAX_HOLD_VAR, "201"),
            (MAX_HOLD_VAR, "0"),
            (MAX_HOLD_VAR, "ten"),
            (SERVICE_TYPE_VAR, "-bad"),
        ] {
            let e = read(&[(var, value)]).unwrap_err();
            let text = e.to_string();
            assert_eq!(variable(e), var, "{value}");
            assert!(!text.contains(value) || value.len() < 4, "{text}");
        }
    }
}
