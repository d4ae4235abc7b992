//! Settings, read once from the environment at start-up (DESIGN.md §2).
//!
//! Every knob has a default that suits production; tests and the dev loop override them with
//! variables. Secrets are held in `Secret`, whose `Debug` and `Display` never show the value, so a
//! settings dump or an error can never leak a connection string.

use crate::domain::CircuitPolicy;
use crate::health::TargetPolicy;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The storage variables, in the order they are tried.
pub const CONNECTION_STRING_VARS: [&str; 3] = [
    "STORAGE_CONNECTION_STRING",
    "AZURE_STORAGETABLE_CONNECTIONSTRING",
    "AzureWebJobsStorage",
];
pub const RESOURCE_ENDPOINT_VAR: &str = "AZURE_STORAGETABLE_RESOURCEENDPOINT";

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMode {
    /// Started by the Functions host, which owns auth, routing and the timer.
    CustomHandler { port: u16 },
    /// Running on its own (dev loop, containers): serves `/api/*` and runs the sweep on its schedule.
    Standalone { bind: SocketAddr },
}

impl HostMode {
    pub fn bind_address(&self) -> SocketAddr {
        match self {
            HostMode::CustomHandler { port } => SocketAddr::from(([127, 0, 0, 1], *port)),
            HostMode::Standalone { bind } => *bind,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSource {
    /// A connection string and the variable it came from (named in errors instead of the value).
    ConnectionString {
        variable: &'static str,
        value: Secret,
    },
    /// Service Connector with managed identity: a table endpoint and token auth, no secret at all.
    ManagedIdentity { endpoint: String },
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: HostMode,
    pub storage: StorageSource,
    pub registry_table: String,
    pub health_table: String,
    /// Where `HealthMonitor/function.json` lives (the function app root).
    pub app_root: PathBuf,
    /// A six-field NCRONTAB schedule that replaces the one in function.json (standalone mode only).
    pub schedule_override: Option<String>,
    pub probe_timeout: Duration,
    pub probe_concurrency: usize,
    /// How long one storage request may take before it counts as an outage.
    pub storage_timeout: Duration,
    /// What the health monitor may probe (the SSRF guard).
    pub probe_policy: TargetPolicy,
    /// Thresholds and backoff of the circuit breaker.
    pub circuit: CircuitPolicy,
    /// Recorded as `checkedBy`: the Functions instance, else the host name.
    pub instance_id: String,
    /// No probe starts later than this into a sweep (`HEALTH_SWEEP_DEADLINE_MS`).
    pub sweep_start_deadline: Duration,
    /// Upper bound of each probe's random start delay (`HEALTH_PROBE_JITTER_MS`).
    pub probe_jitter: Duration,
    /// How long table reads are served from this process's cache (`DISCOVERY_CACHE_TTL_MS`, 0 = off).
    pub cache_ttl: Duration,
    /// How long an expired instance is kept before the sweep deletes it
    /// (`DEREGISTER_EXPIRED_AFTER_SECONDS`).
    pub expired_grace: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "no storage connection configured: set one of {} (a connection string, or UseDevelopmentStorage=true for Azurite), or {} for managed identity",
        CONNECTION_STRING_VARS.join(", "),
        RESOURCE_ENDPOINT_VAR
    )]
    NoStorage,
    #[error("{variable} is invalid: {reason}")]
    Invalid { variable: String, reason: String },
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let mode = match get("FUNCTIONS_CUSTOMHANDLER_PORT")
            .or_else(|| get("FUNCTIONS_HTTPWORKER_PORT"))
        {
            Some(port) => HostMode::CustomHandler {
                port: parse(&port, "FUNCTIONS_CUSTOMHANDLER_PORT", "a TCP port number")?,
            },
            None => HostMode::Standalone {
                bind: match get("DISCOVERY_BIND") {
                    Some(bind) => {
                        parse(&bind, "DISCOVERY_BIND", "an address such as 127.0.0.1:7071")?
                    }
                    None => SocketAddr::from(([127, 0, 0, 1], 7071)),
                },
            },
        };

        // Table-specific settings first: on a Function App `AzureWebJobsStorage` always exists (the host
        // needs it), so it must not shadow a managed-identity endpoint configured for the tables.
        let connection_string = |variable: &'static str| {
            get(variable).map(|value| StorageSource::ConnectionString {
                variable,
                value: Secret::new(value),
            })
        };
        let storage = connection_string(CONNECTION_STRING_VARS[0])
            .or_else(|| connection_string(CONNECTION_STRING_VARS[1]))
            .or_else(|| {
                get(RESOURCE_ENDPOINT_VAR)
                    .map(|endpoint| StorageSource::ManagedIdentity { endpoint })
            })
            .or_else(|| connection_string(CONNECTION_STRING_VARS[2]))
            .ok_or(ConfigError::NoStorage)?;

        let registry_table =
            table_name(get("REGISTRY_TABLE"), "REGISTRY_TABLE", "ServiceRegistry")?;
        let health_table = table_name(get("HEALTH_TABLE"), "HEALTH_TABLE", "HealthStatus")?;

        let app_root = get("FUNCTIONS_APP_ROOT_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));

        let millis = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                Some(v) => parse::<u64>(&v, name, "a whole number of milliseconds above 0")
                    .and_then(|ms| positive(ms, name))
                    .map(Duration::from_millis),
                None => Ok(Duration::from_millis(default)),
            }
        };
        let probe_concurrency = match get("HEALTH_PROBE_CONCURRENCY") {
            Some(v) => parse::<u64>(&v, "HEALTH_PROBE_CONCURRENCY", "a whole number above 0")
                .and_then(|n| positive(n, "HEALTH_PROBE_CONCURRENCY"))?
                as usize,
            // 2,500 silent targets at a 5 s timeout take about 50 s at 256 in flight (the 60 s goal for
            // 10,000 services, a quarter silent); Consumption allows 600 outbound connections.
            None => 256,
        };

        let cidrs = |name: &str| -> Result<Vec<ipnet::IpNet>, ConfigError> {
            get(name)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| {
                            // A bare address is a /32 (or /128) range.
                            item.parse::<ipnet::IpNet>()
                                .or_else(|_| {
                                    item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)
                                })
                                .map_err(|_| ConfigError::Invalid {
                                    variable: name.to_owned(),
                                    reason: format!(
                                        "{item:?} is not a CIDR range such as 10.0.0.0/8"
                                    ),
                                })
                        })
                        .collect()
                })
                .unwrap_or(Ok(Vec::new()))
        };
        let allow_loopback = match get("HEALTH_ALLOW_LOOPBACK").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" || v == "1" => true,
            Some(v) if v == "false" || v == "0" => false,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    variable: "HEALTH_ALLOW_LOOPBACK".to_owned(),
                    reason: format!("expected true or false, got {v:?}"),
                })
            }
        };
        let identity_endpoint = get("IDENTITY_ENDPOINT")
            .and_then(|text| url::Url::parse(&text).ok())
            .and_then(|url| {
                Some((
                    url.host_str()?.to_ascii_lowercase(),
                    url.port_or_known_default()?,
                ))
            });
        let probe_policy = TargetPolicy {
            allow_loopback,
            allow: cidrs("HEALTH_ALLOW_CIDRS")?,
            deny: cidrs("HEALTH_DENY_CIDRS")?,
            identity_endpoint,
        };

        let count = |name: &str, default: u32| -> Result<u32, ConfigError> {
            match get(name) {
                Some(v) => parse::<u64>(&v, name, "a whole number above 0")
                    .and_then(|n| positive(n, name))
                    .map(|n| n.min(u64::from(u32::MAX)) as u32),
                None => Ok(default),
            }
        };
        let defaults = CircuitPolicy::default();
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let circuit = CircuitPolicy {
            failures_to_open: count("HEALTH_FAILURES_TO_UNHEALTHY", defaults.failures_to_open)?,
            successes_to_close: count("HEALTH_SUCCESSES_TO_HEALTHY", defaults.successes_to_close)?,
            base_backoff: to_chrono(millis("HEALTH_CIRCUIT_BACKOFF_MS", 300_000)?),
            max_backoff: to_chrono(millis("HEALTH_CIRCUIT_MAX_BACKOFF_MS", 3_600_000)?),
        };
        let instance_id = get("WEBSITE_INSTANCE_ID")
            .or_else(|| get("CONTAINER_APP_REPLICA_NAME"))
            .or_else(|| get("HOSTNAME"))
            .unwrap_or_else(|| "handler".to_owned())
            .chars()
            .take(128)
            .collect();

        let probe_timeout = millis("HEALTH_PROBE_TIMEOUT_MS", 5_000)?;
        // The sweep must end within the Functions timeout (5 minutes on Consumption): by default it
        // stops starting probes at 4 minutes less one probe timeout, which leaves a minute to write.
        let sweep_deadline = millis("HEALTH_SWEEP_DEADLINE_MS", 240_000)?;
        let sweep_start_deadline = sweep_deadline.saturating_sub(probe_timeout);
        // Settings where 0 is meaningful (no jitter, no cache, delete at once).
        let millis_or_zero = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                Some(v) => {
                    parse(&v, name, "a whole number of milliseconds").map(Duration::from_millis)
                }
                None => Ok(Duration::from_millis(default)),
            }
        };
        let probe_jitter = millis_or_zero("HEALTH_PROBE_JITTER_MS", 100)?;
        let cache_ttl = millis_or_zero("DISCOVERY_CACHE_TTL_MS", 2_000)?;
        let expired_grace = match get("DEREGISTER_EXPIRED_AFTER_SECONDS") {
            Some(v) => Duration::from_secs(parse(
                &v,
                "DEREGISTER_EXPIRED_AFTER_SECONDS",
                "a whole number of seconds",
            )?),
            None => Duration::from_secs(600),
        };
        if get("AZURE_STORAGETABLE_CLIENTID").is_some() {
            // Start-up is not the place to fail for it, but the operator must hear it: azure_identity
            // 0.21 offers only the system-assigned identity.
            tracing::warn!(
                "AZURE_STORAGETABLE_CLIENTID is set, but only the system-assigned managed identity is supported; it is ignored"
            );
        }

        Ok(Settings {
            cache_ttl,
            expired_grace,
            sweep_start_deadline,
            probe_jitter,
            circuit,
            instance_id,
            probe_policy,
            mode,
            storage,
            registry_table,
            health_table,
            app_root,
            schedule_override: get("HEALTH_MONITOR_SCHEDULE"),
            probe_timeout,
            probe_concurrency,
            storage_timeout: millis("STORAGE_TIMEOUT_MS", 10_000)?,
        })
    }
}

fn parse<T: std::str::FromStr>(
    raw: &str,
    variable: &str,
    expected: &str,
) -> Result<T, ConfigError> {
    raw.trim().parse().map_err(|_| ConfigError::Invalid {
        variable: variable.to_owned(),
        reason: format!("expected {expected}, got {raw:?}"),
    })
}

fn positive(n: u64, variable: &str) -> Result<u64, ConfigError> {
    if n == 0 {
        return Err(ConfigError::Invalid {
            variable: variable.to_owned(),
            reason: "must be above 0".to_owned(),
        });
    }
    Ok(n)
}

/// Table names: 3-63 alphanumeric characters starting with a letter (the service's rule).
fn table_name(value: Option<String>, variable: &str, default: &str) -> Result<String, ConfigError> {
    let name = value.unwrap_or_else(|| default.to_owned());
    let valid = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(ConfigError::Invalid {
            variable: variable.to_owned(),
            reason: format!(
                "{name:?} is not a table name (3-63 letters and digits, starting with a letter)"
            ),
        });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_standalone_on_7071() {
        let s = settings(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")]).unwrap();
        assert_eq!(s.mode.bind_address().to_string(), "127.0.0.1:7071");
        assert_eq!(
            (s.registry_table.as_str(), s.health_table.as_str()),
            ("ServiceRegistry", "HealthStatus")
        );
        assert_eq!(s.probe_timeout, Duration::from_secs(5));
        assert!(matches!(
            s.storage,
            StorageSource::ConnectionString {
                variable: "AzureWebJobsStorage",
                ..
            }
        ));
    }

    #[test]
    fn the_recipe_variable_wins_then_service_connector() {
        let s = settings(&[
            ("AzureWebJobsStorage", "c"),
            ("AZURE_STORAGETABLE_CONNECTIONSTRING", "b"),
            ("STORAGE_CONNECTION_STRING", "a"),
        ])
        .unwrap();
        assert_eq!(
            s.storage,
            StorageSource::ConnectionString {
                variable: "STORAGE_CONNECTION_STRING",
                value: Secret::new("a")
            }
        );
        let s = settings(&[
            ("AZURE_STORAGETABLE_CONNECTIONSTRING", "b"),
            ("AzureWebJobsStorage", "c"),
        ])
        .unwrap();
        assert!(matches!(
            s.storage,
            StorageSource::ConnectionString {
                variable: "AZURE_STORAGETABLE_CONNECTIONSTRING",
                ..
            }
        ));
    }

    #[test]
    fn managed_identity_endpoint_beats_the_functions_own_storage() {
        let s = settings(&[
            ("AzureWebJobsStorage", "c"),
            (
                "AZURE_STORAGETABLE_RESOURCEENDPOINT",
                "https://acct.table.core.windows.net/",
            ),
        ])
        .unwrap();
        assert!(matches!(s.storage, StorageSource::ManagedIdentity { .. }));
        let s = settings(&[
            ("AZURE_STORAGETABLE_CONNECTIONSTRING", "b"),
            (
                "AZURE_STORAGETABLE_RESOURCEENDPOINT",
                "https://acct.table.core.windows.net/",
            ),
        ])
        .unwrap();
        assert!(matches!(s.storage, StorageSource::ConnectionString { .. }));
    }

    #[test]
    fn custom_handler_port_selects_the_mode() {
        let s = settings(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "5123"),
            ("AzureWebJobsStorage", "x"),
        ])
        .unwrap();
        assert_eq!(s.mode, HostMode::CustomHandler { port: 5123 });
        assert_eq!(s.mode.bind_address().to_string(), "127.0.0.1:5123");
    }

    #[test]
    fn missing_storage_names_every_variable_and_secrets_stay_hidden() {
        let message = settings(&[]).unwrap_err().to_string();
        for var in CONNECTION_STRING_VARS {
            assert!(message.contains(var), "{message}");
        }
        let s = settings(&[("STORAGE_CONNECTION_STRING", "AccountKey=topsecret")]).unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
    }

    #[test]
    fn probe_policy_from_variables() {
        let s = settings(&[
            ("AzureWebJobsStorage", "x"),
            ("HEALTH_ALLOW_LOOPBACK", "TRUE"),
            ("HEALTH_DENY_CIDRS", "10.9.0.0/16, 192.168.1.7"),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token"),
        ])
        .unwrap();
        assert!(s.probe_policy.allow_loopback);
        assert_eq!(s.probe_policy.deny.len(), 2);
        assert_eq!(
            s.probe_policy.identity_endpoint,
            Some(("127.0.0.1".into(), 41234))
        );
        let defaults = settings(&[("AzureWebJobsStorage", "x")]).unwrap();
        assert!(!defaults.probe_policy.allow_loopback && defaults.probe_policy.deny.is_empty());
        let e = settings(&[
            ("AzureWebJobsStorage", "x"),
            ("HEALTH_ALLOW_CIDRS", "10.0.0.0/33"),
        ])
        .unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { ref variable, .. } if variable == "HEALTH_ALLOW_CIDRS")
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e =
            settings(&[("AzureWebJobsStorage", "x"), ("REGISTRY_TABLE", "bad-name")]).unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { ref variable, .. } if variable == "REGISTRY_TABLE")
        );
        let e = settings(&[
            ("AzureWebJobsStorage", "x"),
            ("HEALTH_PROBE_TIMEOUT_MS", "0"),
        ])
        .unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { ref variable, .. } if variable == "HEALTH_PROBE_TIMEOUT_MS")
        );
    }
}
