//! A Consul check's status, and the one mapping from what the registry knows about an instance to it.
//!
//! Consul clients understand exactly three statuses: `passing`, `warning` and `critical`. Anything
//! else makes the Go client's `HealthChecks.AggregatedStatus()` return `""`, which Traefik drops
//! (`hashicorp/consul`, `api/health.go`). The mapping, in order:
//!
//! 1. a lapsed TTL (no heartbeat within `ttlSeconds`) → `critical`: Consul's TTL rule ("if the TTL
//!    expires, the check goes critical"); it stays listed until the registration is removed;
//! 2. an open circuit → `critical`, whatever the last recorded status;
//! 3. recorded `unhealthy` (a half-open circuit included: it is still isolated) → `critical`;
//!    so is an instance a required dependency blocks (effective status `unhealthy` with a
//!    `blockedBy` chain, which the check's `Output` names);
//! 4. own `degraded` (HTTP 429, 503 with `Retry-After`, a certificate close to expiry) or effective
//!    `degraded` (a soft dependency down, a required one partly down) → `warning`;
//! 5. recorded `healthy` → `passing`;
//! 6. never checked → the configured status, `warning` by default. Traefik routes `warning`;
//!    Dapr, Fabio, consul-template and `?passing` do not. Consul itself starts new checks `critical`;
//!    an operator who wants that sets it.
//!
//! `/v1/health/state/<state>` takes `passing`, `warning`, `critical` or `any` ([`StateFilter`]);
//! anything else is a 400 naming `state`, as in Consul (`agent/health_endpoint.go`, "Invalid check
//! state"). `PUT /v1/agent/check/update/<id>` sends `{"Status": ..., "Output": ...}`
//! ([`CheckUpdate`], Consul's `checkUpdate` in `agent/agent_endpoint.go`): keys in any case, a
//! missing or other status is a 400 naming `Status` ("Invalid check status"), and `Output` is cut
//! to Consul's default check buffer of 4 KiB.

use crate::domain::fields::json_type;
use crate::domain::{Circuit, HealthState, ValidationError};
use serde_json::Value;
use std::fmt;

/// Consul's `CheckBufSize` default: the longest check output kept.
pub const MAX_CHECK_OUTPUT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// Exactly `passing`, `warning` or `critical` (Consul's spellings, lower case); the error names
    /// `field` (a check update's `Status`, a register body's `Check.Status`, a setting).
    pub fn parse(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        match text {
            "passing" => Ok(CheckStatus::Passing),
            "warning" => Ok(CheckStatus::Warning),
            "critical" => Ok(CheckStatus::Critical),
            _ => Err(ValidationError::new(
                field,
                format!("{field} must be \"passing\", \"warning\" or \"critical\""),
            )),
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the registry knows about one instance's health, as the mapping needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthFacts {
    /// The recorded status; `None` when the instance was never checked (or its verdict does not
    /// describe the registration as it is now).
    pub health: Option<HealthState>,
    /// The circuit breaker's position, when the health row records one.
    pub circuit: Option<Circuit>,
    /// Its TTL lapsed: no heartbeat within `ttlSeconds` (judged by the caller against its `now`).
    pub ttl_lapsed: bool,
    /// Its own verdict is `degraded`, or its effective status is (and nothing worse holds).
    pub degraded: bool,
    /// A required dependency makes it unhealthy (`blockedBy` is not empty).
    pub blocked: bool,
}

/// The check status Consul clients see for an instance (rules in the module docs).
pub fn check_status(facts: HealthFacts, never_checked: CheckStatus) -> CheckStatus {
    if facts.ttl_lapsed || facts.circuit == Some(Circuit::Open) || facts.blocked {
        return CheckStatus::Critical;
    }
    match facts.health {
        Some(HealthState::Unhealthy) => CheckStatus::Critical,
        Some(HealthState::Degraded) => CheckStatus::Warning,
        _ if facts.degraded => CheckStatus::Warning,
        Some(HealthState::Healthy) => CheckStatus::Passing,
        None => never_checked,
    }
}

/// The `<state>` of `/v1/health/state/<state>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    Any,
    Only(CheckStatus),
}

impl StateFilter {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text == "any" {
            return Ok(StateFilter::Any);
        }
        CheckStatus::parse("state", text)
            .map(StateFilter::Only)
            .map_err(|_| {
                ValidationError::new(
                    "state",
                    "Invalid check state: state must be \"any\", \"passing\", \"warning\" or \"critical\"",
                )
            })
    }

    pub fn admits(self, status: CheckStatus) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::Only(wanted) => wanted == status,
        }
    }
}

/// The body of `PUT /v1/agent/check/update/<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckUpdate {
    pub status: CheckStatus,
    /// At most [`MAX_CHECK_OUTPUT`] bytes (cut on a character boundary); empty when absent.
    pub output: String,
}

impl CheckUpdate {
    pub fn parse(body: &Value) -> Result<Self, ValidationError> {
        let object = body.as_object().ok_or_else(|| {
            ValidationError::new("body", "the request body must be a JSON object")
        })?;
        let field = |name: &'static str| -> Result<Option<&str>, ValidationError> {
            let mut found = None;
            for (key, value) in object {
                if !key.eq_ignore_ascii_case(name) {
                    continue;
                }
                if found.is_some() {
                    return Err(ValidationError::new(name, format!("{name} is given twice")));
                }
                found = match value {
                    Value::Null => None,
                    Value::String(text) => Some(text.as_str()),
                    other => {
                        return Err(ValidationError::new(
                            name,
                            format!("{name} must be a string, not {}", json_type(other)),
                        ))
                    }
                };
            }
            Ok(found)
        };
        let status =
            CheckStatus::parse("Status", field("Status")?.unwrap_or("")).map_err(|_| {
                ValidationError::new(
                    "Status",
                    "Invalid check status: Status must be \"passing\", \"warning\" or \"critical\"",
                )
            })?;
        let mut output = field("Output")?.unwrap_or("").to_owned();
        if output.len() > MAX_CHECK_OUTPUT {
            let mut cut = MAX_CHECK_OUTPUT;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
        }
        Ok(CheckUpdate { status, output })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_check_update_reads_status_and_output_in_any_case() {
        let update = CheckUpdate::parse(&json!({"Status": "warning", "Output": "slow"})).unwrap();
        assert_eq!(
            update,
            CheckUpdate {
                status: CheckStatus::Warning,
                output: "slow".into()
            }
        );
        let update = CheckUpdate::parse(&json!({"status": "passing"})).unwrap();
        assert_eq!(
            (update.status, update.output.as_str()),
            (CheckStatus::Passing, "")
        );
        let long = CheckUpdate::parse(&json!({"Status": "critical", "Output": "é".repeat(3000)}));
        let output = long.unwrap().output;
        assert!(output.len() <= MAX_CHECK_OUTPUT && output.len() >= MAX_CHECK_OUTPUT - 1);
    }

    #[test]
    fn a_check_update_names_its_errors() {
        for (body, field) in [
            (json!([]), "body"),
            (json!({}), "Status"),
            (json!({"Status": "ok"}), "Status"),
            (json!({"Status": 1}), "Status"),
            (json!({"Status": "passing", "status": "passing"}), "Status"),
            (json!({"Status": "passing", "Output": 5}), "Output"),
        ] {
            assert_eq!(
                CheckUpdate::parse(&body).unwrap_err().field,
                field,
                "{body}"
            );
        }
    }

    const WARN: CheckStatus = CheckStatus::Warning;

    fn facts(
        health: Option<HealthState>,
        circuit: Option<Circuit>,
        ttl_lapsed: bool,
    ) -> HealthFacts {
        HealthFacts {
            health,
            circuit,
            ttl_lapsed,
            ..HealthFacts::default()
        }
    }

    #[test]
    fn degraded_is_warning_and_a_blocked_instance_critical() {
        let healthy = facts(Some(HealthState::Healthy), None, false);
        let degraded = HealthFacts {
            degraded: true,
            ..healthy
        };
        assert_eq!(check_status(degraded, WARN), CheckStatus::Warning);
        // A stored `degraded` the status type does not read yet: no verdict, but degraded.
        let own = HealthFacts {
            health: None,
            ..degraded
        };
        assert_eq!(
            check_status(own, CheckStatus::Critical),
            CheckStatus::Warning
        );
        let blocked = HealthFacts {
            blocked: true,
            ..healthy
        };
        assert_eq!(check_status(blocked, WARN), CheckStatus::Critical);
        let unhealthy = HealthFacts {
            health: Some(HealthState::Unhealthy),
            ..degraded
        };
        assert_eq!(check_status(unhealthy, WARN), CheckStatus::Critical);
    }

    #[test]
    fn healthy_is_passing() {
        let healthy = Some(HealthState::Healthy);
        assert_eq!(
            check_status(facts(healthy, None, false), WARN),
            CheckStatus::Passing
        );
        assert_eq!(
            check_status(facts(healthy, Some(Circuit::Closed), false), WARN),
            CheckStatus::Passing
        );
    }

    #[test]
    fn degraded_is_warning_unless_lapsed() {
        let degraded = Some(HealthState::Degraded);
        let passing = CheckStatus::Passing;
        assert_eq!(
            check_status(facts(degraded, Some(Circuit::Closed), false), passing),
            CheckStatus::Warning
        );
        assert_eq!(
            check_status(facts(degraded, None, true), passing),
            CheckStatus::Critical
        );
    }

    #[test]
    fn unhealthy_open_half_open_and_lapsed_are_critical() {
        let (healthy, unhealthy) = (Some(HealthState::Healthy), Some(HealthState::Unhealthy));
        for (case, f) in [
            ("unhealthy", facts(unhealthy, None, false)),
            (
                "unhealthy, closed",
                facts(unhealthy, Some(Circuit::Closed), false),
            ),
            (
                "half-open",
                facts(unhealthy, Some(Circuit::HalfOpen), false),
            ),
            ("open", facts(unhealthy, Some(Circuit::Open), false)),
            (
                "open whatever the status",
                facts(healthy, Some(Circuit::Open), false),
            ),
            ("lapsed while healthy", facts(healthy, None, true)),
            ("lapsed, never checked", facts(None, None, true)),
        ] {
            assert_eq!(check_status(f, WARN), CheckStatus::Critical, "{case}");
        }
    }

    #[test]
    fn never_checked_is_the_configured_status() {
        for configured in [
            CheckStatus::Warning,
            CheckStatus::Critical,
            CheckStatus::Passing,
        ] {
            assert_eq!(check_status(HealthFacts::default(), configured), configured);
        }
    }

    #[test]
    fn statuses_parse_only_in_consuls_spelling_and_name_the_field() {
        for status in [
            CheckStatus::Passing,
            CheckStatus::Warning,
            CheckStatus::Critical,
        ] {
            assert_eq!(CheckStatus::parse("Status", status.as_str()), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        for bad in ["Passing", "ok", "unknown", "maintenance", "any", ""] {
            assert_eq!(
                CheckStatus::parse("Status", bad).unwrap_err().field,
                "Status",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_state_path_takes_any_or_a_status() {
        assert_eq!(StateFilter::parse("any"), Ok(StateFilter::Any));
        assert_eq!(
            StateFilter::parse("warning"),
            Ok(StateFilter::Only(CheckStatus::Warning))
        );
        for bad in ["Any", "unknown", "maintenance", "", "passing "] {
            assert_eq!(
                StateFilter::parse(bad).unwrap_err().field,
                "state",
                "{bad:?}"
            );
        }
        assert!(StateFilter::Any.admits(CheckStatus::Critical));
        assert!(StateFilter::Only(CheckStatus::Passing).admits(CheckStatus::Passing));
        assert!(!StateFilter::Only(CheckStatus::Passing).admits(CheckStatus::Warning));
    }
}
