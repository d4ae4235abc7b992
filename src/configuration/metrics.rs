//! The Prometheus listener's setting (`METRICS_BIND`): off unless asked for, and standalone mode
//! only.

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
}

pub(super) fn settings(
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
