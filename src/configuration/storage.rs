//! The storage settings: which connection (a connection string, tried in a fixed order of
//! variables, or a managed identity's table endpoint), the three tables' names, the storage
//! timeout, how many requests may be in flight, and the read cache's lifetime.

use super::environment::Environment;
use super::plan::STORAGE_CONNECTIONS_VAR;
use super::{identity, ConfigError, HostingPlan, IdentitySettings, Secret};
use std::time::Duration;

/// The storage variables, in the order they are tried.
pub const CONNECTION_STRING_VARS: [&str; 3] = [
    "STORAGE_CONNECTION_STRING",
    "AZURE_STORAGETABLE_CONNECTIONSTRING",
    "AzureWebJobsStorage",
];
pub const RESOURCE_ENDPOINT_VAR: &str = "AZURE_STORAGETABLE_RESOURCEENDPOINT";
/// With a managed identity, the queue endpoint (Service Connector's name first, then the Functions
/// host's identity-based connection); without either, the table endpoint's host read as a queue host.
pub const QUEUE_ENDPOINT_VARS: [&str; 2] = [
    "AZURE_STORAGEQUEUE_RESOURCEENDPOINT",
    "AzureWebJobsStorage__queueServiceUri",
];

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
        /// The same account's queue endpoint, when configured (`QUEUE_ENDPOINT_VARS`).
        queue_endpoint: Option<String>,
        identity: IdentitySettings,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long table reads are served from this process's cache (`DISCOVERY_CACHE_TTL_MS`, 0 = off).
    pub ttl: Duration,
}

pub(super) fn settings(
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
                    queue_endpoint: QUEUE_ENDPOINT_VARS.iter().find_map(|v| env.text(v)),
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
