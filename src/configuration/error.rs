//! `ConfigError`: why the settings could not be read, for every concern's reader. Each message
//! names the variable and never its value (start-up prints it and stops).

use super::security;
use super::storage::{CONNECTION_STRING_VARS, RESOURCE_ENDPOINT_VAR};
use std::net::SocketAddr;

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
