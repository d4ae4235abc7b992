//! Endpoints a service registers: where clients reach it and where the health monitor probes it.
//!
//! Two kinds: an absolute `http://` / `https://` URL (probed with GET), and `tcp://host:port` for
//! backing services that do not speak HTTP, such as Redis or SQL (probed with a TCP connect). A
//! health endpoint may also be `grpc://host:port[/service]` or `grpcs://…` (TLS), probed with the
//! standard `grpc.health.v1.Health/Check` for `service` (`""`, the server as a whole, when the path
//! is empty); `parse_health` accepts those, `parse` (a service's own endpoint) does not. The text is
//! stored exactly as registered, so rows stay readable by the recipe's Node functions.
//!
//! A `tcp://` host is read the way an `http://` host is (the URL standard's host parser: percent
//! decoding, IDNA, and IPv4 in every numeric spelling, `127.1`, `0x7f000001`, `017700000001`,
//! `2852039166`), because the URL parser leaves hosts of unknown schemes opaque, while the
//! system resolver would still read those spellings as addresses: the SSRF guard must judge the
//! address the connection will go to, whatever the scheme.

use super::{has_control_char, ValidationError};
use url::Url;

pub const MAX_ENDPOINT_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Http(Url),
    Tcp {
        host: String,
        port: u16,
    },
    /// `grpc://` (plaintext HTTP/2) or `grpcs://` (TLS), health endpoints only.
    Grpc {
        host: String,
        port: u16,
        /// The service name asked about; `""` is the server's overall health.
        service: String,
        tls: bool,
    },
}

/// The longest gRPC service name a health endpoint may name (a fully qualified proto name).
pub const MAX_GRPC_SERVICE_LEN: usize = 256;

impl Endpoint {
    /// A service's own endpoint: http(s) or tcp.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        Self::parse_any(field, raw, false)
    }

    /// A health endpoint: http(s), tcp, or grpc(s).
    pub fn parse_health(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        Self::parse_any(field, raw, true)
    }

    /// The host and port a probe of this endpoint connects to.
    pub fn host_and_port(&self) -> (&str, u16) {
        match self {
            Endpoint::Http(url) => (
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(80),
            ),
            Endpoint::Tcp { host, port } | Endpoint::Grpc { host, port, .. } => {
                (host.as_str(), *port)
            }
        }
    }

    fn parse_any(field: &'static str, raw: &str, grpc: bool) -> Result<Self, ValidationError> {
        let expected = if grpc {
            "an absolute http(s) URL, tcp://host:port or grpc(s)://host:port[/service]"
        } else {
            "an absolute http(s) URL or tcp://host:port"
        };
        let invalid =
            |why: &str| ValidationError::new(field, format!("{field} {why}; expected {expected}"));
        if raw.is_empty() {
            return Err(ValidationError::new(
                field,
                format!("{field} must not be empty"),
            ));
        }
        if raw.len() > MAX_ENDPOINT_LEN {
            return Err(invalid(&format!(
                "is longer than {MAX_ENDPOINT_LEN} characters"
            )));
        }
        if has_control_char(raw) || raw.trim() != raw {
            return Err(invalid("contains whitespace or control characters"));
        }
        // WHATWG parsing is forgiving (`https:///x` gets host `x`, `http:x` becomes `http://x`): insist
        // on an explicit `scheme://authority` in the text itself.
        let has_authority = raw
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
        if !has_authority {
            return Err(invalid("has no host"));
        }
        let url = Url::parse(raw).map_err(|_| invalid("is not an absolute URL"))?;
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(invalid("has no host")),
        };
        match url.scheme() {
            "http" | "https" => Ok(Endpoint::Http(url)),
            "tcp" => {
                let port = url.port().ok_or_else(|| invalid("has no port"))?;
                if url.path() != "" && url.path() != "/" || url.query().is_some() {
                    return Err(invalid("must not have a path or query"));
                }
                let host = url::Host::parse(&host).map_err(|_| invalid("has an invalid host"))?;
                Ok(Endpoint::Tcp {
                    host: host.to_string(),
                    port,
                })
            }
            scheme @ ("grpc" | "grpcs") if grpc => {
                let port = url.port().ok_or_else(|| invalid("has no port"))?;
                if url.query().is_some() || url.fragment().is_some() || raw.contains('@') {
                    return Err(invalid("must not have a query, fragment or user"));
                }
                let service = url.path().strip_prefix('/').unwrap_or_default();
                let service = percent_encoding::percent_decode_str(service)
                    .decode_utf8()
                    .map_err(|_| invalid("has a service name that is not UTF-8"))?;
                let valid_service = service.len() <= MAX_GRPC_SERVICE_LEN
                    && service
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !valid_service {
                    return Err(invalid(&format!(
                        "names a service that is not a gRPC service name (letters, digits, '.', '_', '-'; at most {MAX_GRPC_SERVICE_LEN})"
                    )));
                }
                let host = url::Host::parse(&host).map_err(|_| invalid("has an invalid host"))?;
                Ok(Endpoint::Grpc {
                    host: host.to_string(),
                    port,
                    service: service.into_owned(),
                    tls: scheme == "grpcs",
                })
            }
            other => Err(invalid(&format!("has unsupported scheme '{other}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_https_and_tcp() {
        assert!(matches!(
            Endpoint::parse("endpoint", "https://test-api.example.com"),
            Ok(Endpoint::Http(_))
        ));
        assert!(matches!(
            Endpoint::parse("endpoint", "http://127.0.0.1:8080/health?x=1"),
            Ok(Endpoint::Http(_))
        ));
        assert_eq!(
            Endpoint::parse("endpoint", "tcp://redis.internal:6380").unwrap(),
            Endpoint::Tcp {
                host: "redis.internal".into(),
                port: 6380
            }
        );
        assert!(matches!(
            Endpoint::parse("endpoint", "tcp://[::1]:5432"),
            Ok(Endpoint::Tcp { .. })
        ));
    }

    #[test]
    fn tcp_hosts_are_read_like_http_hosts() {
        for (text, host) in [
            ("tcp://127.1:80", "127.0.0.1"),
            ("tcp://0x7f000001:80", "127.0.0.1"),
            ("tcp://017700000001:80", "127.0.0.1"),
            ("tcp://2852039166:80", "169.254.169.254"),
            ("tcp://0:80", "0.0.0.0"),
            ("tcp://%31%32%37.0.0.1:80", "127.0.0.1"),
            ("tcp://Redis.Internal:6379", "redis.internal"),
            ("tcp://[::ffff:7f00:1]:80", "[::ffff:7f00:1]"),
        ] {
            let Endpoint::Tcp { host: parsed, .. } = Endpoint::parse("endpoint", text).unwrap()
            else {
                panic!("{text} is tcp")
            };
            assert_eq!(parsed, host, "{text}");
            let Endpoint::Http(url) =
                Endpoint::parse("endpoint", &text.replace("tcp:", "http:")).unwrap()
            else {
                panic!("http")
            };
            assert_eq!(url.host_str().unwrap(), host, "{text} as http");
        }
        assert!(Endpoint::parse("endpoint", "tcp://a%20b:80").is_err());
    }

    #[test]
    fn grpc_health_endpoints_name_host_port_service_and_tls() {
        let grpc = |text: &str| Endpoint::parse_health("healthEndpoint", text);
        assert_eq!(
            grpc("grpc://orders.internal:50051").unwrap(),
            Endpoint::Grpc {
                host: "orders.internal".into(),
                port: 50051,
                service: String::new(),
                tls: false
            }
        );
        assert_eq!(
            grpc("grpcs://0x7f000001:443/shop.v1.Orders").unwrap(),
            Endpoint::Grpc {
                host: "127.0.0.1".into(),
                port: 443,
                service: "shop.v1.Orders".into(),
                tls: true
            }
        );
        assert!(matches!(grpc("grpc://[::1]:9/"), Ok(Endpoint::Grpc { .. })));
        for bad in [
            "grpc://host",
            "grpc://host:1/a/b",
            "grpc://host:1/x?y=1",
            "grpc://u:p@host:1/",
            "grpc://host:1/a%20b",
            "grpcs://:1/",
        ] {
            assert_eq!(grpc(bad).unwrap_err().field, "healthEndpoint", "{bad}");
        }
        // A service's own endpoint keeps its rules.
        assert!(Endpoint::parse("endpoint", "grpc://host:1").is_err());
        assert_eq!(
            grpc("grpc://h.internal:7/svc").unwrap().host_and_port(),
            ("h.internal", 7)
        );
    }

    #[test]
    fn refuses_everything_else_naming_the_field() {
        for bad in [
            "",
            "not a url",
            "/relative/path",
            "ftp://x.example.com",
            "http://",
            "https:///path",
            "tcp://host",
            "tcp://host:6379/db",
            "mailto:a@b.c",
            "http:x.example.com",
            " http://x",
            "http://x\n",
            &format!("http://x/{}", "a".repeat(2048)),
        ] {
            let err = Endpoint::parse("healthEndpoint", bad).unwrap_err();
            assert_eq!(err.field, "healthEndpoint", "{bad:?}");
        }
    }
}
