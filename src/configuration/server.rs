//! The server's settings: whether the Functions host started us (and on which port) or we run on
//! our own (and bind where), who this process is, and what one client connection may hold.

use super::environment::Environment;
use super::ConfigError;
use std::net::SocketAddr;
use std::time::Duration;

/// The host's port variables: the current name first, then the one older hosts set.
const PORT_VARS: [&str; 2] = ["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"];

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

pub(super) fn settings(
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
