//! Per-registration health-check settings: which kind of check, how long to wait, which path, and
//! what an HTTP answer must look like (`expectedStatus`, `expectBody`: `domain::http_expect`).
//!
//! A registration may say `"healthCheck": {"kind": "tcp"}` for a service whose health endpoint is an
//! HTTP URL but whose health is better judged by a connect, or give a path (`/healthz`) and a
//! timeout of its own. Everything is validated on registration against the health endpoint it will
//! apply to, so the sweep never meets a combination it cannot run; rows written by other clients are
//! read tolerantly (an unreadable setting is ignored, not fatal).

use super::fields::present;
use super::http_expect::{parse_expect_body, ExpectedStatus};
use super::{has_control_char, Endpoint, ValidationError};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub const MIN_CHECK_TIMEOUT_MS: u64 = 100;
pub const MAX_CHECK_TIMEOUT_MS: u64 = 30_000;
pub const MAX_CHECK_PATH_LEN: usize = 1024;
pub const MAX_TLS_EXPIRY_WARNING_DAYS: u64 = 365;
/// The longest any probe may wait.
pub const MAX_CHECK_TIMEOUT: Duration = Duration::from_millis(MAX_CHECK_TIMEOUT_MS);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// GET, healthy iff the status is below 400.
    Http,
    /// A TCP connect to the endpoint's host and port.
    Tcp,
    /// `grpc.health.v1.Health/Check` over HTTP/2 (TLS for `grpcs://`): SERVING is healthy.
    Grpc,
}

impl CheckKind {
    fn as_str(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Grpc => "grpc",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "http" => Some(CheckKind::Http),
            "tcp" => Some(CheckKind::Tcp),
            "grpc" => Some(CheckKind::Grpc),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthCheck {
    /// `None`: follow the endpoint's scheme (`tcp://` is a connect, `http(s)://` a GET,
    /// `grpc(s)://` a gRPC health check).
    pub kind: Option<CheckKind>,
    /// `None`: the monitor's default (`HEALTH_PROBE_TIMEOUT_MS`).
    pub timeout: Option<Duration>,
    /// Replaces the path and query of an HTTP health endpoint.
    pub path: Option<String>,
    /// HTTP only: the statuses that pass, instead of "below 400".
    pub expected_status: Option<ExpectedStatus>,
    /// HTTP only: a substring the first 64 KiB of the body must hold.
    pub expect_body: Option<String>,
    /// `https://` and `grpcs://` only: a certificate expiring within this many days is a warning.
    pub tls_expiry_warning_days: Option<u16>,
}

impl HealthCheck {
    /// Parses the `healthCheck` field of a registration, judged against the endpoint it applies to.
    pub fn parse(value: &Value, health_endpoint: &Endpoint) -> Result<Self, ValidationError> {
        let object = value.as_object().ok_or_else(|| {
            ValidationError::new(
                "healthCheck",
                "healthCheck must be an object such as {\"kind\": \"http\", \"timeoutMs\": 2000, \"path\": \"/health\"}",
            )
        })?;
        let kind = match present(object, "kind") {
            None => None,
            Some(value) => Some(value.as_str().and_then(CheckKind::parse).ok_or_else(|| {
                ValidationError::new(
                    "healthCheck.kind",
                    "healthCheck.kind must be \"http\", \"tcp\" or \"grpc\"",
                )
            })?),
        };
        let timeout = match present(object, "timeoutMs") {
            None => None,
            Some(value) => match value.as_u64() {
                Some(ms) if (MIN_CHECK_TIMEOUT_MS..=MAX_CHECK_TIMEOUT_MS).contains(&ms) => {
                    Some(Duration::from_millis(ms))
                }
                _ => {
                    return Err(ValidationError::new(
                        "healthCheck.timeoutMs",
                        format!(
                            "healthCheck.timeoutMs must be a whole number from {MIN_CHECK_TIMEOUT_MS} to {MAX_CHECK_TIMEOUT_MS}"
                        ),
                    ))
                }
            },
        };
        let path = match present(object, "path") {
            None => None,
            Some(Value::String(path)) => Some(parse_path(path)?),
            Some(_) => {
                return Err(ValidationError::new(
                    "healthCheck.path",
                    "healthCheck.path must be a string starting with '/'",
                ))
            }
        };
        let expected_status = present(object, "expectedStatus")
            .map(ExpectedStatus::parse)
            .transpose()?;
        let expect_body = present(object, "expectBody")
            .map(parse_expect_body)
            .transpose()?;
        let scheme_kind = match health_endpoint {
            Endpoint::Http(_) => CheckKind::Http,
            Endpoint::Tcp { .. } => CheckKind::Tcp,
            Endpoint::Grpc { .. } => CheckKind::Grpc,
        };
        // A connect works on any endpoint; a GET and a gRPC check only on their own schemes.
        if let Some(kind) = kind.filter(|k| *k != CheckKind::Tcp && *k != scheme_kind) {
            let needs = match kind {
                CheckKind::Http => "an http(s) health endpoint",
                _ => "a grpc(s) health endpoint",
            };
            return Err(ValidationError::new(
                "healthCheck.kind",
                format!("healthCheck.kind \"{}\" needs {needs}", kind.as_str()),
            ));
        }
        let effective_kind = kind.unwrap_or(scheme_kind);
        let tls_expiry_warning_days = match present(object, "tlsExpiryWarningDays") {
            None => None,
            Some(value) => match value.as_u64() {
                Some(days @ 1..=MAX_TLS_EXPIRY_WARNING_DAYS) => Some(days as u16),
                _ => {
                    return Err(ValidationError::new(
                        "healthCheck.tlsExpiryWarningDays",
                        format!("healthCheck.tlsExpiryWarningDays must be a whole number from 1 to {MAX_TLS_EXPIRY_WARNING_DAYS}"),
                    ))
                }
            },
        };
        let over_tls = match health_endpoint {
            Endpoint::Http(url) => url.scheme() == "https",
            Endpoint::Grpc { tls, .. } => *tls,
            Endpoint::Tcp { .. } => false,
        };
        if tls_expiry_warning_days.is_some() && (effective_kind == CheckKind::Tcp || !over_tls) {
            return Err(ValidationError::new(
                "healthCheck.tlsExpiryWarningDays",
                "healthCheck.tlsExpiryWarningDays applies only to https:// and grpcs:// checks",
            ));
        }
        let http_only = [
            ("healthCheck.path", path.is_some()),
            ("healthCheck.expectedStatus", expected_status.is_some()),
            ("healthCheck.expectBody", expect_body.is_some()),
        ];
        if effective_kind != CheckKind::Http {
            if let Some((field, _)) = http_only.iter().find(|(_, given)| *given) {
                return Err(ValidationError::new(
                    field,
                    format!("{field} applies only to http checks"),
                ));
            }
        }
        Ok(HealthCheck {
            kind,
            timeout,
            path,
            expected_status,
            expect_body,
            tls_expiry_warning_days,
        })
    }

    /// Reads the stored JSON text; anything unreadable counts as no settings.
    pub fn from_stored(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        let object = value.as_object()?;
        Some(HealthCheck {
            kind: object
                .get("kind")
                .and_then(Value::as_str)
                .and_then(CheckKind::parse),
            timeout: object
                .get("timeoutMs")
                .and_then(Value::as_u64)
                .map(|ms| ms.clamp(MIN_CHECK_TIMEOUT_MS, MAX_CHECK_TIMEOUT_MS))
                .map(Duration::from_millis),
            path: object
                .get("path")
                .and_then(Value::as_str)
                .and_then(|p| parse_path(p).ok()),
            expected_status: object
                .get("expectedStatus")
                .and_then(ExpectedStatus::from_stored),
            expect_body: object
                .get("expectBody")
                .and_then(|b| parse_expect_body(b).ok()),
            tls_expiry_warning_days: object
                .get("tlsExpiryWarningDays")
                .and_then(Value::as_u64)
                .filter(|d| (1..=MAX_TLS_EXPIRY_WARNING_DAYS).contains(d))
                .map(|d| d as u16),
        })
    }

    /// The form stored in the row and shown by discovery.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        if let Some(kind) = self.kind {
            object.insert("kind".into(), json!(kind.as_str()));
        }
        if let Some(timeout) = self.timeout {
            object.insert("timeoutMs".into(), json!(timeout.as_millis() as u64));
        }
        if let Some(path) = &self.path {
            object.insert("path".into(), json!(path));
        }
        if let Some(expected) = &self.expected_status {
            object.insert("expectedStatus".into(), expected.to_json());
        }
        if let Some(body) = &self.expect_body {
            object.insert("expectBody".into(), json!(body));
        }
        if let Some(days) = self.tls_expiry_warning_days {
            object.insert("tlsExpiryWarningDays".into(), json!(days));
        }
        Value::Object(object)
    }

    /// The health endpoint with this check's kind and path applied (through `probe_target`).
    fn target(&self, endpoint: Endpoint) -> Endpoint {
        match (self.kind, endpoint) {
            (Some(CheckKind::Tcp), endpoint @ (Endpoint::Http(_) | Endpoint::Grpc { .. })) => {
                let (host, port) = endpoint.host_and_port();
                Endpoint::Tcp {
                    host: host.to_owned(),
                    port,
                }
            }
            (_, Endpoint::Http(mut url)) => {
                if let Some(path) = &self.path {
                    let (path, query) = match path.split_once('?') {
                        Some((path, query)) => (path, Some(query)),
                        None => (path.as_str(), None),
                    };
                    url.set_path(path);
                    url.set_query(query);
                }
                Endpoint::Http(url)
            }
            (_, other) => other,
        }
    }
}

/// What the health monitor contacts for a health endpoint and its check settings, if any: the one
/// computation of it, so the address the SSRF guard judges at registration is the one the sweep
/// probes.
pub fn probe_target(health_endpoint: Endpoint, check: Option<&HealthCheck>) -> Endpoint {
    match check {
        Some(check) => check.target(health_endpoint),
        None => health_endpoint,
    }
}

fn parse_path(path: &str) -> Result<String, ValidationError> {
    let valid = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= MAX_CHECK_PATH_LEN
        && !has_control_char(path)
        && !path.contains(['#', ' ', '\\']);
    if valid {
        Ok(path.to_owned())
    } else {
        Err(ValidationError::new(
            "healthCheck.path",
            format!(
                "healthCheck.path must start with a single '/', be at most {MAX_CHECK_PATH_LEN} characters and hold no spaces, '#', '\\' or control characters"
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
