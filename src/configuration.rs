//! Settings, read once from the environment at start-up: the only module that reads it.
//!
//! Every knob has a default that suits production; tests and the dev loop override them with
//! variables (docs/operations.md lists them all). The result is nested by concern, so each part of the
//! program takes only what it needs: the store its `StorageSettings`, the health monitor its
//! `HealthSettings`, the logger its `TelemetrySettings`. Secrets are held in `Secret`, whose `Debug`
//! never shows the value, so a settings dump or an error can never leak a connection string; every
//! error names the variable, never its value.
//!
//! `Environment` (in `environment.rs` beside this file) is the one reader: typed helpers for
//! milliseconds, counts, flags and CIDR lists, each with the variable's name in its error.

mod arm_sync;
mod connector;
mod environment;
mod identity;
mod plan;
mod schedule;
mod security;

use crate::domain::{CircuitPolicy, MAX_CHECK_TIMEOUT};
pub use arm_sync::{AppId, ArmSyncSettings, SyncSource};
pub use connector::{ConnectorSettings, ConnectorVariables, SELF_REGISTER_VAR};
use environment::Environment;
pub use identity::{IdentitySettings, IdentitySource};
pub use plan::HostingPlan;
use plan::{PROBE_CONCURRENCY_VAR, STORAGE_CONNECTIONS_VAR};
pub use security::{fetchable, ApiKeyEntry, EntraSettings, SecuritySettings};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The storage variables, in the order they are tried.
pub const CONNECTION_STRING_VARS: [&str; 3] = [
    "STORAGE_CONNECTION_STRING",
    "AZURE_STORAGETABLE_CONNECTIONSTRING",
    "AzureWebJobsStorage",
];
pub const RESOURCE_ENDPOINT_VAR: &str = "AZURE_STORAGETABLE_RESOURCEENDPOINT";
/// The host's port variables: the current name first, then the one older hosts set.
const PORT_VARS: [&str; 2] = ["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"];

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

/// Everything the process is configured with, grouped by the part that uses it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub health: HealthSettings,
    pub telemetry: TelemetrySettings,
    /// Who may call: API keys, Entra ID, the platform's principal, origins (`security.rs`).
    pub security: SecuritySettings,
    pub metrics: MetricsSettings,
    /// Service Connector linkers synced from Azure Resource Manager; `None`: off (`arm_sync.rs`).
    pub arm_sync: Option<ArmSyncSettings>,
    /// Service Connector self-registration (`connector.rs`).
    pub connector: ConnectorSettings,
    /// Things the operator must hear about that do not stop start-up; logged once telemetry is up.
    pub notices: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub mode: HostMode,
    /// Who this process is: recorded as `checkedBy` and as the sweep lease's holder.
    pub process_name: String,
    pub connections: ConnectionSettings,
}

/// What one client connection may hold of the server (see `serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// How long a connection may take to send a request's headers, counted from when the server
    /// starts waiting for them: a connection that opens and says nothing, or sits idle between
    /// requests, is closed after it too (`SERVER_HEADER_TIMEOUT_MS`). 30 s, Kestrel's
    /// `RequestHeadersTimeout`: much shorter would close the host's pooled keep-alive connections
    /// often enough to race its next request on them.
    pub header_timeout: Duration,
    /// How long reading one request's body may take (`SERVER_BODY_TIMEOUT_MS`); over it, a 408.
    pub body_timeout: Duration,
    /// Connections served at once (`SERVER_MAX_CONNECTIONS`); more wait in the listen backlog.
    pub max_connections: usize,
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

    pub fn is_standalone(&self) -> bool {
        matches!(self, HostMode::Standalone { .. })
    }
}

/// The Prometheus listener (`metrics`), standalone mode only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `GET /metrics` is served (`METRICS_BIND`); `None`, the default, serves nothing. A port
    /// of its own rather than a route beside `/api`: a scraper then needs no registry credential,
    /// and what it reads (counts by function name and status) names no service.
    pub bind: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub source: StorageSource,
    pub registry_table: String,
    pub health_table: String,
    /// The handler's own rows (the sweep lease, the last sweep's summary), kept out of the health
    /// table so that a health read is services only (`STATE_TABLE`).
    pub state_table: String,
    /// How long one storage operation may take before it counts as an outage.
    pub timeout: Duration,
    pub connections: StorageConnectionSettings,
    pub cache: CacheSettings,
}

/// How much of the plan's outbound-connection cap storage may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConnectionSettings {
    /// Storage requests in flight at once, and so connections open, per process; also the most
    /// kept idle (`STORAGE_MAX_CONNECTIONS`, default by `HEALTH_HOSTING_PLAN`). A request waits
    /// for a slot inside its `STORAGE_TIMEOUT_MS`.
    pub max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSource {
    /// A connection string and the variable it came from (named in errors instead of the value).
    ConnectionString {
        variable: &'static str,
        value: Secret,
    },
    /// Service Connector with managed identity: a table endpoint and token auth, no stored secret.
    ManagedIdentity {
        endpoint: String,
        identity: IdentitySettings,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long table reads are served from this process's cache (`DISCOVERY_CACHE_TTL_MS`, 0 = off).
    pub ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// `HEALTH_HOSTING_PLAN`: what the probe concurrency defaults to.
    pub plan: HostingPlan,
    pub probe: ProbeSettings,
    pub targets: TargetSettings,
    pub circuit: CircuitPolicy,
    pub sweep: SweepSettings,
    /// Standalone mode only: the timer's six-field NCRONTAB text (from `HEALTH_MONITOR_SCHEDULE`,
    /// else `HealthMonitor/function.json`), `%NAME%` already resolved. `None`: the host owns the timer.
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Per probe, unless the registration's `healthCheck.timeoutMs` says otherwise.
    pub timeout: Duration,
    /// Probes in flight at once: `HEALTH_PROBE_CONCURRENCY`, else the plan's default.
    pub concurrency: usize,
    /// Upper bound of each probe's random start delay, so a fleet is not hit in one burst.
    pub jitter: Duration,
}

/// What the probes may reach (the SSRF guard's configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSettings {
    pub allow_loopback: bool,
    pub allow: Vec<ipnet::IpNet>,
    pub deny: Vec<ipnet::IpNet>,
    /// The managed-identity endpoint's host (lower case) and port, from `IDENTITY_ENDPOINT`.
    pub identity_endpoint: Option<(String, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepSettings {
    /// No probe starts later than this into a sweep (`HEALTH_SWEEP_DEADLINE_MS` less one probe
    /// timeout), so the sweep ends inside the Functions timeout.
    pub start_deadline: Duration,
    /// How long an expired instance is kept before the sweep deletes it
    /// (`DEREGISTER_EXPIRED_AFTER_SECONDS`).
    pub expired_grace: Duration,
    /// How long a standalone replica's sweep lease lasts if its holder dies mid-sweep: about the
    /// longest a sweep can run.
    pub lease_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// `RUST_LOG` as given; `None` (or a filter that does not parse) means the default.
    pub filter: Option<String>,
    /// `RUST_LOG_FORMAT=json`: one JSON object per line.
    pub json: bool,
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
    /// Two settings each valid alone, not together.
    #[error("{} and {} together are invalid: {reason}", variables[0], variables[1])]
    InvalidTogether {
        variables: [&'static str; 2],
        reason: String,
    },
    #[error("cannot read {path}: {reason}; set FUNCTIONS_APP_ROOT_PATH to the folder holding HealthMonitor/, or HEALTH_MONITOR_SCHEDULE")]
    FunctionJsonUnreadable { path: String, reason: String },
    #[error("{path} has no timerTrigger binding with a schedule")]
    NoTimer { path: String },
    #[error("schedule {schedule:?} is not a six-field NCRONTAB expression: app setting {name} is not set")]
    UnsetAppSetting { schedule: String, name: String },
    /// Standalone on a reachable address with nobody checked: refused unless asked for.
    #[error("{}", security::unprotected_message(bind))]
    Unprotected { bind: SocketAddr },
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let names = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        Self::read(Environment::with_names(
            |name| std::env::var(name).ok(),
            names,
        ))
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(Environment::new(lookup))
    }

    fn read(env: Environment<impl Fn(&str) -> Option<String>>) -> Result<Self, ConfigError> {
        let server = server(&env)?;
        let plan = HostingPlan::read(&env)?;
        let storage = storage(&env, plan)?;
        let mut health = health(&env, plan, &server.mode, storage.timeout)?;
        plan.check_connections(&env, health.probe.concurrency, storage.connections.max)?;
        let security = security::security(&env, &server.mode)?;
        let metrics = metrics(&env, &server.mode)?;
        let arm_sync = arm_sync::settings(&env)?;
        if let Some(sync) = &arm_sync {
            // The sync runs in the sweep's turn, before the probes: the lease must outlast both.
            health.sweep.lease_ttl += sync.deadline;
        }
        let connector = connector::settings(&env)?;
        let notices = identity::notices(&env, &storage.source);
        Ok(Settings {
            telemetry: TelemetrySettings {
                filter: env.raw("RUST_LOG"),
                json: env
                    .raw("RUST_LOG_FORMAT")
                    .is_some_and(|v| v.eq_ignore_ascii_case("json")),
            },
            server,
            storage,
            health,
            security,
            metrics,
            arm_sync,
            connector,
            notices,
        })
    }
}

fn server(
    env: &Environment<impl Fn(&str) -> Option<String>>,
) -> Result<ServerSettings, ConfigError> {
    let mode = match env.first_of(&PORT_VARS) {
        Some((variable, _)) => HostMode::CustomHandler {
            port: env
                .parsed(variable, "a TCP port number")?
                .expect("just found"),
        },
        None => HostMode::Standalone {
            bind: env
                .parsed("DISCOVERY_BIND", "an address such as 127.0.0.1:7071")?
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7071))),
        },
    };
    let process_name = env
        .first_of(&[
            "WEBSITE_INSTANCE_ID",
            "CONTAINER_APP_REPLICA_NAME",
            "HOSTNAME",
        ])
        .map_or_else(|| "handler".to_owned(), |(_, value)| value)
        .chars()
        .take(128)
        .collect();
    let connections = ConnectionSettings {
        header_timeout: env.millis("SERVER_HEADER_TIMEOUT_MS", 30_000)?,
        body_timeout: env.millis("SERVER_BODY_TIMEOUT_MS", 15_000)?,
        max_connections: env.count("SERVER_MAX_CONNECTIONS", 10_000)? as usize,
    };
    Ok(ServerSettings {
        mode,
        process_name,
        connections,
    })
}

fn metrics(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    mode: &HostMode,
) -> Result<MetricsSettings, ConfigError> {
    const VAR: &str = "METRICS_BIND";
    let bind: Option<SocketAddr> = env.parsed(VAR, "an address such as 127.0.0.1:9090")?;
    if bind.is_some() && !mode.is_standalone() {
        // Under the host only the host's port reaches us; a second listener would be unreachable
        // or, worse, reachable around the host's authentication.
        return Err(ConfigError::Invalid {
            variable: VAR.to_owned(),
            reason: "standalone mode only: under the Functions host the metrics are in the request and sweep log lines (docs/operations.md)".to_owned(),
        });
    }
    if bind.is_some_and(|b| b.port() != 0 && b == mode.bind_address()) {
        return Err(ConfigError::Invalid {
            variable: VAR.to_owned(),
            reason: "must differ from DISCOVERY_BIND".to_owned(),
        });
    }
    Ok(MetricsSettings { bind })
}

fn storage(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    plan: HostingPlan,
) -> Result<StorageSettings, ConfigError> {
    // Table-specific settings first: on a Function App `AzureWebJobsStorage` always exists (the host
    // needs it), so it must not shadow a managed-identity endpoint configured for the tables.
    let connection_string = |variable: &'static str| {
        env.text(variable)
            .map(|value| StorageSource::ConnectionString {
                variable,
                value: Secret::new(value),
            })
    };
    let timeout = env.millis("STORAGE_TIMEOUT_MS", 10_000)?;
    let managed_identity = || {
        env.text(RESOURCE_ENDPOINT_VAR)
            .map(|endpoint| {
                Ok(StorageSource::ManagedIdentity {
                    endpoint,
                    identity: identity::settings(env, timeout)?,
                })
            })
            .transpose()
    };
    let source = match connection_string(CONNECTION_STRING_VARS[0])
        .or_else(|| connection_string(CONNECTION_STRING_VARS[1]))
    {
        Some(source) => source,
        None => managed_identity()?
            .or_else(|| connection_string(CONNECTION_STRING_VARS[2]))
            .ok_or(ConfigError::NoStorage)?,
    };
    let registry_table = table_name(env, "REGISTRY_TABLE", "ServiceRegistry")?;
    let health_table = table_name(env, "HEALTH_TABLE", "HealthStatus")?;
    let state_table = table_name(env, "STATE_TABLE", "RegistryState")?;
    // Table names are case-insensitive. The state rows in a table of registrations or health rows
    // would put back what the state table exists to keep out (an extra row in every read).
    for (other, name) in [
        ("REGISTRY_TABLE", &registry_table),
        ("HEALTH_TABLE", &health_table),
    ] {
        if state_table.eq_ignore_ascii_case(name) {
            return Err(ConfigError::Invalid {
                variable: "STATE_TABLE".to_owned(),
                reason: format!(
                    "{state_table:?} is also {other}; the state table must be a table of its own"
                ),
            });
        }
    }
    Ok(StorageSettings {
        source,
        registry_table,
        health_table,
        state_table,
        timeout,
        connections: StorageConnectionSettings {
            max: env.count(STORAGE_CONNECTIONS_VAR, plan.default_storage_connections())? as usize,
        },
        cache: CacheSettings {
            ttl: env.millis_or_zero("DISCOVERY_CACHE_TTL_MS", 2_000)?,
        },
    })
}

fn health(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    plan: HostingPlan,
    mode: &HostMode,
    storage_timeout: Duration,
) -> Result<HealthSettings, ConfigError> {
    let probe = ProbeSettings {
        timeout: env.millis("HEALTH_PROBE_TIMEOUT_MS", 5_000)?,
        // A sweep cannot beat silent targets x timeout / concurrency, so the concurrency is as high
        // as the plan's outbound-connection cap allows with room for storage (`plan`).
        concurrency: env.count(PROBE_CONCURRENCY_VAR, plan.default_probe_concurrency())? as usize,
        jitter: env.millis_or_zero("HEALTH_PROBE_JITTER_MS", 100)?,
    };
    let targets = TargetSettings {
        allow_loopback: env.flag("HEALTH_ALLOW_LOOPBACK", false)?,
        allow: env.cidrs("HEALTH_ALLOW_CIDRS")?,
        deny: env.cidrs("HEALTH_DENY_CIDRS")?,
        identity_endpoint: env
            .text("IDENTITY_ENDPOINT")
            .and_then(|text| url::Url::parse(&text).ok())
            .and_then(|url| {
                Some((
                    url.host_str()?.to_ascii_lowercase(),
                    url.port_or_known_default()?,
                ))
            }),
    };
    let defaults = CircuitPolicy::default();
    let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let circuit = CircuitPolicy {
        failures_to_open: env.count("HEALTH_FAILURES_TO_UNHEALTHY", defaults.failures_to_open)?,
        successes_to_close: env
            .count("HEALTH_SUCCESSES_TO_HEALTHY", defaults.successes_to_close)?,
        base_backoff: to_chrono(env.millis("HEALTH_CIRCUIT_BACKOFF_MS", 300_000)?),
        max_backoff: to_chrono(env.millis("HEALTH_CIRCUIT_MAX_BACKOFF_MS", 3_600_000)?),
    };
    // The sweep must end within the Functions timeout (5 minutes on Consumption): by default it
    // stops starting probes at 4 minutes less one probe timeout, which leaves a minute to write.
    let start_deadline = env
        .millis("HEALTH_SWEEP_DEADLINE_MS", 240_000)?
        .saturating_sub(probe.timeout);
    let sweep = SweepSettings {
        start_deadline,
        expired_grace: env.seconds_or_zero("DEREGISTER_EXPIRED_AFTER_SECONDS", 600)?,
        // The longest a sweep can run: its start deadline, one probe at the longest timeout any
        // registration may ask for, and the writes.
        lease_ttl: start_deadline + MAX_CHECK_TIMEOUT + storage_timeout * 2,
    };
    let schedule = match mode {
        HostMode::CustomHandler { .. } => None,
        HostMode::Standalone { .. } => Some(schedule::text(env)?),
    };
    Ok(HealthSettings {
        plan,
        probe,
        targets,
        circuit,
        sweep,
        schedule,
    })
}

/// Table names: 3-63 alphanumeric characters starting with a letter (the service's rule).
fn table_name(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    variable: &str,
    default: &str,
) -> Result<String, ConfigError> {
    let name = env.text(variable).unwrap_or_else(|| default.to_owned());
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
mod tests;
