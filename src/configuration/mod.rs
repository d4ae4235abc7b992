//! Settings, read once from the environment at start-up: the only module that reads it.
//!
//! Every knob has a default that suits production; tests and the dev loop override them with
//! variables (docs/operations.md lists them all). The result is nested by concern, so each part of the
//! program takes only what it needs: the store its `StorageSettings`, the health monitor its
//! `HealthSettings`, the logger its `TelemetrySettings`. Secrets are held in `Secret`, whose `Debug`
//! never shows the value, so a settings dump or an error can never leak a connection string; every
//! error names the variable, never its value.
//!
//! Each concern has a file of its own beside this one, holding its types and the reader that fills
//! them (`settings(&env, …)`); this file assembles them into `Settings`. `Environment` (in
//! `environment.rs`) is the one reader of variables: typed helpers for milliseconds, counts, flags
//! and CIDR lists, each with the variable's name in its error.

mod arm_sync;
mod connector;
mod consul;
mod environment;
mod error;
mod events;
mod fanout;
mod health;
mod identity;
mod metrics;
mod plan;
mod schedule;
mod secret;
mod security;
mod server;
mod storage;
mod telemetry;

pub use arm_sync::{AppId, ArmSyncSettings, SyncSource, MAX_ITEMS_VAR};
pub use connector::{ConnectorSettings, ConnectorVariables, SELF_REGISTER_VAR};
pub use consul::{ConsulSettings, UncheckedStatus};
use environment::Environment;
pub use error::ConfigError;
pub use events::{EventSettings, TopicAuth, TopicSettings, QUEUE_VAR as HEALTH_EVENTS_QUEUE_VAR};
pub use fanout::{FanoutSettings, SWEEP_QUEUE_VAR};
pub use health::{HealthSettings, ProbeGuardSettings, ProbeSettings, SweepSettings};
pub use identity::{IdentitySettings, IdentitySource};
pub use metrics::MetricsSettings;
pub use plan::HostingPlan;
pub use secret::Secret;
pub use security::{fetchable, ApiKeyEntry, EntraSettings, SecuritySettings};
pub use server::{ConnectionSettings, HostMode, ServerSettings};
pub use storage::{
    CacheSettings, StorageConnectionSettings, StorageSettings, StorageSource,
    CONNECTION_STRING_VARS, RESOURCE_ENDPOINT_VAR,
};
pub use telemetry::TelemetrySettings;

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
    /// The Consul-compatible API (`consul.rs`).
    pub consul: ConsulSettings,
    /// Things the operator must hear about that do not stop start-up; logged once telemetry is up.
    pub notices: Vec<&'static str>,
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
        let server = server::settings(&env)?;
        let plan = HostingPlan::read(&env)?;
        let storage = storage::settings(&env, plan)?;
        let mut health = health::settings(&env, plan, &server.mode, storage.timeout)?;
        plan.check_connections(&env, health.probe.concurrency, storage.connections.max)?;
        let security = security::security(&env, &server.mode)?;
        let metrics = metrics::settings(&env, &server.mode)?;
        let arm_sync = arm_sync::settings(&env)?;
        if let Some(sync) = &arm_sync {
            // The sync runs in the sweep's turn, before the probes: the lease must outlast both.
            health.sweep.lease_ttl += sync.deadline;
        }
        let connector = connector::settings(&env)?;
        let consul = consul::settings(&env)?;
        let notices = identity::notices(&env, &storage.source);
        Ok(Settings {
            telemetry: telemetry::settings(&env),
            server,
            storage,
            health,
            security,
            metrics,
            arm_sync,
            connector,
            consul,
            notices,
        })
    }
}

#[cfg(test)]
mod tests;
