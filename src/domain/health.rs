//! How a probe's outcome becomes the status stored in HealthStatus.
//!
//! The recipe's rule is kept: an HTTP answer below 400 is healthy, anything else (4xx/5xx, a timeout,
//! a refused connection) is unhealthy, with a short reason in `errorMessage`. Thresholds and flap
//! damping build on this verdict later; the probe itself never decides.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Unhealthy,
}

impl HealthState {
    /// The recipe's stored values.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
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
    pub fn from_http_status(status: u16, elapsed: Duration) -> Self {
        if status < 400 {
            Self::healthy(elapsed)
        } else {
            Self::unhealthy(elapsed, format!("HTTP {status}"))
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
            let v = HealthVerdict::from_http_status(s, ms);
            assert_eq!(v.state, HealthState::Healthy);
            assert_eq!(v.error_message, "");
            assert_eq!(v.response_time_ms, 12);
        }
        for s in [400, 404, 500, 503] {
            let v = HealthVerdict::from_http_status(s, ms);
            assert_eq!(v.state, HealthState::Unhealthy);
            assert_eq!(v.error_message, format!("HTTP {s}"));
        }
    }

    #[test]
    fn response_time_saturates() {
        let v = HealthVerdict::healthy(Duration::from_secs(u64::MAX / 4));
        assert_eq!(v.response_time_ms, i32::MAX);
        assert_eq!(HealthState::Unhealthy.as_str(), "unhealthy");
    }
}
