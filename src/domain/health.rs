//! How a probe's outcome becomes the status stored in HealthStatus.
//!
//! The recipe's rule is kept: an HTTP answer below 400 is healthy, anything else (4xx/5xx, a timeout,
//! a refused connection) is unhealthy, with a short reason in `errorMessage`. Consul's warning rule
//! sits beside it: HTTP 429, and 503 with a `Retry-After` header, say "alive but asking for less
//! load", which is `degraded`, not a failure; so does a certificate close to its expiry. A
//! registration's `expectedStatus` list replaces the below-400 rule (`domain::check`). Thresholds and
//! flap damping build on this verdict later; the probe itself never decides.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    /// A warning: the target answers but asks for less load, or its certificate expires soon.
    /// Not a failure: it counts toward no threshold and opens no circuit.
    Degraded,
    Unhealthy,
}

impl HealthState {
    /// The recipe's stored values.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Unhealthy => "unhealthy",
        }
    }

    /// Whether callers may be sent to it: healthy or degraded (a warning is not a failure).
    pub fn is_usable(self) -> bool {
        self != HealthState::Unhealthy
    }

    /// The rule from before warnings and dependencies (`effective=false`): only a healthy verdict
    /// is usable, so a degraded one counts as unhealthy, as the recipe's Node discovery reads it.
    pub fn healthy_or_not(self) -> HealthState {
        match self {
            HealthState::Degraded => HealthState::Unhealthy,
            other => other,
        }
    }
}

/// Consul's reading of a status that is not a success: 429, and 503 with `Retry-After`, are
/// warnings (with their reason), everything else a failure.
pub fn warning_reason(status: u16, retry_after: bool) -> Option<String> {
    match (status, retry_after) {
        (429, _) => Some("HTTP 429 (rate limited)".to_owned()),
        (503, true) => Some("HTTP 503 with Retry-After (overloaded)".to_owned()),
        _ => None,
    }
}

/// One probe's result, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthVerdict {
    pub state: HealthState,
    /// Milliseconds from the start of the probe to its answer (or failure), as the recipe's Int32.
    pub response_time_ms: i32,
    /// Empty when healthy, as the recipe writes it.
    pub error_message: String,
    /// The target was not probed at all: the SSRF guard refused its address.
    pub refused: bool,
}

impl HealthVerdict {
    /// The default rule: below 400 healthy, 429 and 503 with `Retry-After` degraded, the rest
    /// unhealthy.
    pub fn from_http_status(status: u16, retry_after: bool, elapsed: Duration) -> Self {
        if status < 400 {
            Self::healthy(elapsed)
        } else if let Some(reason) = warning_reason(status, retry_after) {
            Self::degraded(elapsed, reason)
        } else {
            Self::unhealthy(elapsed, format!("HTTP {status}"))
        }
    }

    /// A warning, with its reason.
    pub fn degraded(elapsed: Duration, reason: impl Into<String>) -> Self {
        HealthVerdict {
            state: HealthState::Degraded,
            response_time_ms: millis(elapsed),
            error_message: reason.into(),
            refused: false,
        }
    }

    pub fn healthy(elapsed: Duration) -> Self {
        HealthVerdict {
            state: HealthState::Healthy,
            response_time_ms: millis(elapsed),
            error_message: String::new(),
            refused: false,
        }
    }

    pub fn unhealthy(elapsed: Duration, reason: impl Into<String>) -> Self {
        HealthVerdict {
            state: HealthState::Unhealthy,
            response_time_ms: millis(elapsed),
            error_message: reason.into(),
            refused: false,
        }
    }

    /// Recorded as unhealthy, with the refusal as the reason; counted apart in the sweep summary.
    pub fn refused(elapsed: Duration, reason: impl Into<String>) -> Self {
        HealthVerdict {
            refused: true,
            ..Self::unhealthy(elapsed, reason)
        }
    }
}

/// `tlsExpiryWarningDays`: a valid certificate whose `notAfter` is within `days` of `now` is a
/// warning, with the days left as the reason. (An expired or invalid one already failed the
/// handshake: that stays a failure.)
pub fn certificate_warning(
    not_after: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    days: u16,
) -> Option<String> {
    let left = not_after - now;
    if left > chrono::Duration::days(i64::from(days)) {
        return None;
    }
    Some(match left.num_days() {
        0 => "certificate expires in less than a day".to_owned(),
        1 => "certificate expires in 1 day".to_owned(),
        n => format!("certificate expires in {n} days"),
    })
}

/// Milliseconds as an Int32 (the recipe's type), saturating rather than wrapping.
fn millis(elapsed: Duration) -> i32 {
    i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_400_is_healthy() {
        let ms = Duration::from_millis(12);
        for s in [200, 204, 301, 399] {
            let v = HealthVerdict::from_http_status(s, false, ms);
            assert_eq!(v.state, HealthState::Healthy);
            assert_eq!(v.error_message, "");
            assert_eq!(v.response_time_ms, 12);
        }
        for s in [400, 404, 500, 503] {
            let v = HealthVerdict::from_http_status(s, false, ms);
            assert_eq!(v.state, HealthState::Unhealthy);
            assert_eq!(v.error_message, format!("HTTP {s}"));
        }
    }

    #[test]
    fn rate_limits_and_retry_after_are_warnings_with_a_reason() {
        let ms = Duration::from_millis(3);
        for (status, retry_after) in [(429, false), (429, true), (503, true)] {
            let v = HealthVerdict::from_http_status(status, retry_after, ms);
            assert_eq!(v.state, HealthState::Degraded, "{status} {retry_after}");
            assert!(
                v.error_message.starts_with(&format!("HTTP {status}")),
                "{v:?}"
            );
        }
        for (status, retry_after) in [(503, false), (500, true), (502, true)] {
            let v = HealthVerdict::from_http_status(status, retry_after, ms);
            assert_eq!(v.state, HealthState::Unhealthy, "{status} {retry_after}");
        }
        assert_eq!(HealthState::Degraded.as_str(), "degraded");
        assert!(HealthState::Degraded.is_usable() && !HealthState::Unhealthy.is_usable());
    }

    #[test]
    fn certificates_close_to_expiry_warn_with_the_days_left() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .to_utc();
        let at = |days: i64, hours: i64| {
            now + chrono::Duration::days(days) + chrono::Duration::hours(hours)
        };
        assert_eq!(certificate_warning(at(31, 0), now, 30), None);
        assert_eq!(
            certificate_warning(at(30, 0), now, 30).as_deref(),
            Some("certificate expires in 30 days")
        );
        assert_eq!(
            certificate_warning(at(3, 5), now, 30).as_deref(),
            Some("certificate expires in 3 days")
        );
        assert_eq!(
            certificate_warning(at(1, 1), now, 7).as_deref(),
            Some("certificate expires in 1 day")
        );
        assert_eq!(
            certificate_warning(at(0, 2), now, 1).as_deref(),
            Some("certificate expires in less than a day")
        );
    }

    #[test]
    fn response_time_saturates() {
        let v = HealthVerdict::healthy(Duration::from_secs(u64::MAX / 4));
        assert_eq!(v.response_time_ms, i32::MAX);
        assert_eq!(HealthState::Unhealthy.as_str(), "unhealthy");
    }
}
