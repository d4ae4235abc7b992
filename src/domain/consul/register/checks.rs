//! The checks of a Consul registration: what each one asks for, and what the registry can do of it.
//!
//! Consul's rule (`agent/structs/check_type.go`, `CheckType.Validate`): a check is exactly one kind;
//! HTTP and TCP checks need an `Interval` above zero; a TTL check must not have one; a check that is
//! none of them needs a `TTL`. The registry runs HTTP GETs and TCP connects itself and takes TTL
//! heartbeats, so:
//!
//! - `TTL` → the registration's `ttlSeconds` (whole seconds, 5 s to 24 h);
//! - `HTTP` → its health endpoint with `healthCheck.kind` `http`; `Method` may only be `GET`, and
//!   `Header`, `Body`, `TLSSkipVerify`, `TLSServerName`, `DisableRedirects` may only be absent or
//!   empty (the registry's probe is a plain, verifying GET);
//! - `TCP` (`host:port`) → health endpoint `tcp://host:port`, kind `tcp`; `TCPUseTLS` must be false;
//! - `Timeout` → `healthCheck.timeoutMs` (100 ms to 30 s); `Interval` is checked as Consul checks it
//!   and otherwise unused (the sweep's schedule decides when probes run);
//! - `Status` (`passing|warning|critical`), `CheckID`, `Name` are kept for the store;
//!   `DeregisterCriticalServiceAfter` is kept as a duration; `Notes`, `ServiceID`, `OutputMaxSize`,
//!   `SuccessBeforePassing`, `FailuresBeforeWarning`, `FailuresBeforeCritical` are accepted and
//!   unused (the registry's own thresholds apply);
//! - `GRPC` is a 400 naming `Check.GRPC` (not supported yet); script, Docker, UDP, H2PING,
//!   OSService and alias checks are a 400 naming the check; a key Consul does not know either is a
//!   400 (Consul decodes checks with unknown fields disallowed, `lib.UnmarshalJSON`).
//!
//! An empty check object (`"Check": {}`) is no check, as in Consul (`CheckType.Empty`). A catalog
//! check's `Definition` may also spell its durations `IntervalDuration`, `TimeoutDuration` and
//! `DeregisterCriticalServiceAfterDuration` (the Go client's field names, which node-consul's
//! `catalog.register` sends; `silas/node-consul` `lib/utils.js`).

use super::keys::{printable_key, Object};
use super::names::{
    CheckNames, AGENT_KEYS, CATALOG_KEYS, DEFINITION_KEYS, DURATION_ALIASES, UNSUPPORTED_KINDS,
};
use crate::domain::consul::CheckStatus;
use crate::domain::ValidationError;
use std::time::Duration;

/// What kind of check a Consul registration asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsulCheckKind {
    /// The client reports (`/v1/agent/check/pass/<id>` and friends); lapses after the TTL.
    Ttl,
    /// The registry GETs the URL.
    Http,
    /// The registry connects to `host:port`.
    Tcp,
}

impl ConsulCheckKind {
    /// Consul's `Type` of the check (`api.HealthCheck.Type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsulCheckKind::Ttl => "ttl",
            ConsulCheckKind::Http => "http",
            ConsulCheckKind::Tcp => "tcp",
        }
    }
}

/// One check of a registration, with what the store keeps of it besides the native row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulCheck {
    pub kind: ConsulCheckKind,
    /// As given; `None` lets the caller use Consul's default (`service:<ID>`).
    pub check_id: Option<String>,
    pub name: Option<String>,
    /// The status the check starts in, when the body gives one.
    pub initial_status: Option<CheckStatus>,
    /// Remove the registration once this check has been critical for this long.
    pub deregister_critical_after: Option<Duration>,
}

/// A parsed check and the parts of the native registration it supplies.
#[derive(Debug, Clone)]
pub(super) struct ParsedCheck {
    pub check: ConsulCheck,
    pub ttl: Option<Duration>,
    /// The native `healthEndpoint` text (an http(s) URL, or `tcp://host:port`).
    pub target: Option<String>,
    pub timeout: Option<Duration>,
    pub names: &'static CheckNames,
}

const MIN_TTL: Duration = Duration::from_secs(5);
const MAX_TTL: Duration = Duration::from_secs(86_400);
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// An agent check (`api.AgentServiceCheck`); `None` for an empty object.
pub(super) fn parse_agent_check(
    object: Object<'_>,
    names: &'static CheckNames,
) -> Result<Option<ParsedCheck>, ValidationError> {
    if object.map.is_empty() {
        return Ok(None);
    }
    refuse_unknown(object, names, &[DEFINITION_KEYS, AGENT_KEYS])?;
    let mut parsed = parse_definition(object, names, true)?;
    read_identity(object, names, &mut parsed.check)?;
    Ok(Some(parsed))
}

/// A catalog check (`structs.HealthCheck`): the definition sits under `Definition`, and the check
/// must name the registered service (`service_id`): the registry keeps no node-level checks.
pub(super) fn parse_catalog_check(
    object: Object<'_>,
    names: &'static CheckNames,
    service_id: &str,
) -> Result<ParsedCheck, ValidationError> {
    refuse_unknown(object, names, &[CATALOG_KEYS])?;
    match object.string("ServiceID", names.service_id)? {
        Some(id) if id == service_id => {}
        _ => {
            return Err(ValidationError::new(
                names.service_id,
                format!(
                "{} must be the registered service's ID: this registry keeps no node-level checks",
                names.service_id
            ),
            ))
        }
    }
    let definition = match object.get("Definition", names.definition)? {
        Some(value) => Object::of(value, names.definition)?,
        None => {
            return Err(ValidationError::new(
                names.definition,
                format!(
                    "{} needs HTTP or TCP: this registry runs every check itself",
                    names.definition
                ),
            ))
        }
    };
    refuse_unknown(definition, names, &[DEFINITION_KEYS, DURATION_ALIASES])?;
    let mut parsed = parse_definition(definition, names, false)?;
    if parsed.check.kind == ConsulCheckKind::Ttl {
        return Err(ValidationError::new(
            names.ttl,
            format!("{}: a catalog check cannot be a TTL check", names.ttl),
        ));
    }
    read_identity(object, names, &mut parsed.check)?;
    Ok(parsed)
}

fn read_identity(
    object: Object<'_>,
    names: &'static CheckNames,
    check: &mut ConsulCheck,
) -> Result<(), ValidationError> {
    check.check_id = object.string("CheckID", names.parent)?.map(str::to_owned);
    check.name = object.string("Name", names.parent)?.map(str::to_owned);
    check.initial_status = object
        .string("Status", names.status)?
        .map(|text| CheckStatus::parse(names.status, text))
        .transpose()?;
    object.string("Notes", names.parent)?;
    Ok(())
}

fn refuse_unknown(
    object: Object<'_>,
    names: &CheckNames,
    known: &[&[&str]],
) -> Result<(), ValidationError> {
    if object.get("GRPC", names.grpc)?.is_some() {
        return Err(ValidationError::new(
            names.grpc,
            format!(
                "{} checks are not supported yet; use HTTP, TCP or TTL",
                names.grpc
            ),
        ));
    }
    let all: Vec<&str> = known.iter().flat_map(|keys| keys.iter().copied()).collect();
    if let Some(key) = object.unknown_keys(&all).next() {
        let why = if UNSUPPORTED_KINDS
            .iter()
            .any(|kind| super::keys::fold(kind) == super::keys::fold(key))
        {
            "is a kind of check this registry cannot run; use HTTP, TCP or TTL"
        } else {
            "is not a field of a Consul check"
        };
        return Err(ValidationError::new(
            names.parent,
            format!("{}: {} {why}", names.parent, printable_key(key)),
        ));
    }
    Ok(())
}

/// The kind and its settings. `agent`: Consul's agent rules (HTTP and TCP need an Interval).
fn parse_definition(
    object: Object<'_>,
    names: &'static CheckNames,
    agent: bool,
) -> Result<ParsedCheck, ValidationError> {
    let ttl = object.duration("TTL", names.ttl)?;
    let http = object.string("HTTP", names.http)?;
    let tcp = object.string("TCP", names.tcp)?;
    // A catalog definition may spell its durations as the Go client's `HealthCheckDefinition`
    // fields (`IntervalDuration`, ...), which node-consul sends.
    let duration = |key: &str, field: &'static str| -> Result<_, ValidationError> {
        let given = object.duration(key, field)?;
        if agent {
            return Ok(given);
        }
        match (given, object.duration(&format!("{key}Duration"), field)?) {
            (Some(_), Some(_)) => Err(ValidationError::new(
                field,
                format!("{field} is given twice, in two spellings"),
            )),
            (given, alias) => Ok(given.or(alias)),
        }
    };
    let interval = duration("Interval", names.interval)?;
    let timeout = duration("Timeout", names.timeout)?;
    let deregister = duration("DeregisterCriticalServiceAfter", names.deregister)?;
    for (key, field) in [
        ("OutputMaxSize", names.parent),
        ("SuccessBeforePassing", names.parent),
        ("FailuresBeforeWarning", names.parent),
        ("FailuresBeforeCritical", names.parent),
    ] {
        object.integer(key, field)?;
    }
    let kinds = [ttl.is_some(), http.is_some(), tcp.is_some()];
    if kinds.iter().filter(|given| **given).count() > 1 {
        return Err(ValidationError::new(
            names.parent,
            format!(
                "{}: a check is exactly one of TTL, HTTP or TCP",
                names.parent
            ),
        ));
    }
    let (kind, target) = match (ttl, http, tcp) {
        (Some(_), _, _) => (ConsulCheckKind::Ttl, None),
        (_, Some(url), _) => {
            refuse_http_options(object, names)?;
            (ConsulCheckKind::Http, Some(url.to_owned()))
        }
        (_, _, Some(address)) => {
            if object.flag("TCPUseTLS", names.tcp)? {
                return Err(ValidationError::new(
                    names.tcp,
                    format!(
                        "{}: TCPUseTLS is not supported; the probe is a plain connect",
                        names.tcp
                    ),
                ));
            }
            (ConsulCheckKind::Tcp, Some(tcp_target(address, names.tcp)?))
        }
        _ => {
            return Err(ValidationError::new(
                names.ttl,
                format!(
                    "{}: a check needs TTL, HTTP or TCP (TTL must be > 0 for TTL checks)",
                    names.ttl
                ),
            ))
        }
    };
    if kind == ConsulCheckKind::Ttl {
        if interval.is_some() {
            return Err(ValidationError::new(
                names.interval,
                format!(
                    "{}: Interval and TTL cannot both be specified",
                    names.interval
                ),
            ));
        }
        let ttl = ttl.unwrap_or_default();
        if ttl < MIN_TTL || ttl > MAX_TTL || ttl.subsec_nanos() != 0 {
            return Err(ValidationError::new(
                names.ttl,
                format!("{} must be whole seconds from 5s to 24h", names.ttl),
            ));
        }
    } else {
        if agent && interval.is_none() {
            return Err(ValidationError::new(
                names.interval,
                format!(
                    "{}: Interval must be > 0 for HTTP and TCP checks",
                    names.interval
                ),
            ));
        }
        if let Some(timeout) = timeout {
            if timeout < MIN_TIMEOUT || timeout > MAX_TIMEOUT {
                return Err(ValidationError::new(
                    names.timeout,
                    format!("{} must be from 100ms to 30s", names.timeout),
                ));
            }
        }
    }
    Ok(ParsedCheck {
        check: ConsulCheck {
            kind,
            check_id: None,
            name: None,
            initial_status: None,
            deregister_critical_after: deregister,
        },
        ttl,
        target,
        timeout: timeout.filter(|_| kind != ConsulCheckKind::Ttl),
        names,
    })
}

/// The registry's probe is a plain GET that verifies certificates and sends no headers or body.
fn refuse_http_options(object: Object<'_>, names: &CheckNames) -> Result<(), ValidationError> {
    let unsupported = |what: &str| {
        ValidationError::new(
            names.http,
            format!(
                "{}: {what} is not supported; the probe is a plain GET",
                names.http
            ),
        )
    };
    if let Some(method) = object.string("Method", names.http)? {
        if !method.eq_ignore_ascii_case("GET") {
            return Err(unsupported("a Method other than GET"));
        }
    }
    for key in ["Header", "Body"] {
        let given = match object.get(key, names.http)? {
            None => false,
            Some(serde_json::Value::String(text)) => !text.is_empty(),
            Some(serde_json::Value::Object(map)) => !map.is_empty(),
            Some(_) => true,
        };
        if given {
            return Err(unsupported(key));
        }
    }
    if object.string("TLSServerName", names.http)?.is_some() {
        return Err(unsupported("TLSServerName"));
    }
    for key in ["TLSSkipVerify", "DisableRedirects"] {
        if object.flag(key, names.http)? {
            return Err(unsupported(key));
        }
    }
    Ok(())
}

/// `host:port` (`[v6]:port` for IPv6) as the native `tcp://host:port` endpoint text.
fn tcp_target(address: &str, field: &'static str) -> Result<String, ValidationError> {
    let invalid = || ValidationError::new(field, format!("{field} must be host:port"));
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) || port.parse::<u16>().is_err() {
        return Err(invalid());
    }
    Ok(format!("tcp://{host}:{port}"))
}
