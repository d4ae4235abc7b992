//! The Prometheus listener's settings (`METRICS_BIND`, `METRICS_ALLOW_REMOTE`): off unless asked
//! for, standalone mode only, and on a loopback address unless reaching it from elsewhere is asked
//! for too, as `REGISTRY_ALLOW_ANONYMOUS` is for the API: the listener has no authentication.

use super::environment::Environment;
use super::{ConfigError, HostMode};
use std::net::SocketAddr;

/// The Prometheus listener (`metrics`), standalone mode only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `GET /metrics` is served (`METRICS_BIND`); `None`, the default, serves nothing. A port
    /// of its own rather than a route beside `/api`: a scraper then needs no registry credential,
    /// and what it reads (counts by function name and status) names no service.
    pub bind: Option<SocketAddr>,
    /// `METRICS_ALLOW_REMOTE=true`: a non-loopback `bind` is meant (every scraper that reaches it
    /// may read it). It also ends the listener's `Host` check, since remote scrapers name it as
    /// they please.
    pub allow_remote: bool,
}

pub const BIND_VAR: &str = "METRICS_BIND";
pub const ALLOW_REMOTE_VAR: &str = "METRICS_ALLOW_REMOTE";

pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    mode: &HostMode,
) -> Result<MetricsSettings, ConfigError> {
    const VAR: &str = BIND_VAR;
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
    let allow_remote = env.flag(ALLOW_REMOTE_VAR, false)?;
    if let Some(bind) = bind.filter(|b| !b.ip().is_loopback()) {
        if !allow_remote {
            return Err(ConfigError::Invalid {
                variable: VAR.to_owned(),
                reason: format!(
                    "{bind} is not a loopback address and the metrics listener has no authentication: bind 127.0.0.1 (or [::1]), or set {ALLOW_REMOTE_VAR}=true to let anyone who reaches the port read the counters (docs/operations.md)"
                ),
            });
        }
    }
    Ok(MetricsSettings { bind, allow_remote })
}
