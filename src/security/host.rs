//! DNS rebinding: a web page must not read an unauthenticated listener on this machine by giving
//! its own host name a loopback address.
//!
//! A page on `http://rebind.attacker.example:7071` whose name is re-resolved to 127.0.0.1 makes
//! same-origin requests to our port: the browser sends no `Origin` for them (so `origin` lets them
//! pass) and reads the answers. What it cannot change is the `Host` header, which still names the
//! attacker's host. So a listener that checks nobody (standalone with no authentication configured,
//! and the metrics listener unless `METRICS_ALLOW_REMOTE`) answers only requests whose `Host` names
//! it: `localhost`, `127.0.0.1`, `[::1]` or the address it is bound on, with its port or none,
//! plus the names in `REGISTRY_ALLOWED_HOSTS` (an anonymous container reached by a service name).
//! Anything else is a 421 naming `Host`, before routing. Vite's `server.allowedHosts` and
//! Jupyter's `local_hostnames` do the same. Authenticated listeners do not check: a rebinding page
//! holds no credential of ours. Under the Functions host the handler never checks: the host
//! forwards with its own `Host` and owns authentication in front of us.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The `Host` values one listener answers.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// The listener's port, as bound (never 0).
    port: u16,
    /// The address it is bound on, when that is one address (not 0.0.0.0 or [::]).
    address: Option<IpAddr>,
    /// More names (lower case, no port): `REGISTRY_ALLOWED_HOSTS`.
    names: Vec<String>,
}

impl HostPolicy {
    /// The loopback names of a listener bound on `bound`, and `names` besides.
    pub fn loopback(bound: SocketAddr, names: Vec<String>) -> Self {
        HostPolicy {
            port: bound.port(),
            address: Some(bound.ip()).filter(|ip| !ip.is_unspecified()),
            names,
        }
    }

    /// Refuses a request whose `Host` (or, without one, the request target's authority) does not
    /// name this listener.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
        let named = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        match named {
            Some(host) if self.allows(host) => Ok(()),
            _ => Err(ApiError::MisdirectedHost {
                message: format!(
                    "this listener has no authentication and answers only requests for localhost, 127.0.0.1 or [::1] (port {}): the Host header names another server",
                    self.port
                ),
            }),
        }
    }

    /// `host[:port]`, as RFC 9110 `Host` spells it (`[::1]:7071` for IPv6).
    fn allows(&self, value: &str) -> bool {
        let value = value.trim();
        let (name, port) = match value.rsplit_once(':') {
            // `::1` without brackets has colons but is no `Host` form: the bracket rule below
            // refuses it.
            Some((name, port)) if !port.contains(']') => (name, Some(port)),
            _ => (value, None),
        };
        if let Some(port) = port {
            if port.parse::<u16>().ok() != Some(self.port) {
                return false;
            }
        }
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        if name == "localhost" || self.names.iter().any(|allowed| allowed == name) {
            return true;
        }
        let ip = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
            None => name.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
        };
        ip.is_some_and(|ip| {
            ip == IpAddr::from([127, 0, 0, 1])
                || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                || Some(ip) == self.address
        })
    }
}

/// The layer on a whole listener that checks nobody: refuses a request naming another host.
pub async fn refuse_other_hosts(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check(request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn allowed(policy: &HostPolicy, host: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        policy.check(&headers, &Uri::from_static("/")).is_ok()
    }

    #[test]
    fn only_the_loopback_names_with_the_bound_port_or_none_are_answered() {
        let policy = HostPolicy::loopback("127.0.0.1:7071".parse().unwrap(), vec![]);
        for host in [
            "localhost",
            "localhost:7071",
            "LocalHost:7071",
            "localhost.:7071",
            "127.0.0.1",
            "127.0.0.1:7071",
            "[::1]",
            "[::1]:7071",
            "[0:0:0:0:0:0:0:1]:7071",
        ] {
            assert!(allowed(&policy, host), "{host}");
        }
        for host in [
            "rebind.attacker.example:7071",
            "rebind.attacker.example",
            "localhost:7072",
            "127.0.0.1:80",
            "localhost.attacker.example:7071",
            "127.0.0.1.nip.io:7071",
            "127.0.0.2:7071",
            "10.0.0.1:7071",
            "0.0.0.0:7071",
            "[::]:7071",
            "::1",
            "localhost:",
            "",
        ] {
            assert!(!allowed(&policy, host), "{host}");
        }
        // No Host and no authority: nothing names us.
        assert!(policy
            .check(&HeaderMap::new(), &Uri::from_static("/"))
            .is_err());
    }

    #[test]
    fn the_bound_address_and_the_configured_names_are_answered_too() {
        let policy = HostPolicy::loopback(
            "127.0.0.2:9464".parse().unwrap(),
            vec!["registry".to_owned()],
        );
        for host in [
            "127.0.0.2:9464",
            "registry:9464",
            "Registry",
            "localhost:9464",
        ] {
            assert!(allowed(&policy, host), "{host}");
        }
        assert!(!allowed(&policy, "registry.attacker.example:9464"));
        let any = HostPolicy::loopback("0.0.0.0:7071".parse().unwrap(), vec![]);
        assert!(!allowed(&any, "0.0.0.0:7071"));
        assert!(allowed(&any, "127.0.0.1:7071"));
    }

    #[tokio::test]
    async fn the_refusal_is_a_421_naming_host() {
        let policy = HostPolicy::loopback("127.0.0.1:7071".parse().unwrap(), vec![]);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("rebind.attacker.example:7071"),
        );
        let response = policy
            .check(&headers, &Uri::from_static("/"))
            .unwrap_err()
            .into_response();
        assert_eq!(response.status(), 421);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["field"], "Host");
        assert!(!json["error"].as_str().unwrap().contains("attacker"));
    }
}
