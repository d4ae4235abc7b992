//! Thresholds, flap damping and the circuit breaker: how a service's recorded health moves from
//! sweep to sweep. Pure: it takes the previous record and this sweep's probe outcome, and returns the
//! next record (or says the service is not due for a probe).
//!
//! ```text
//!                 F consecutive failures                    backoff elapsed
//!   ┌────────┐ ─────────────────────────────► ┌────────┐ ───────────────────► probe
//!   │ closed │                                │  open  │ ◄─── trial fails ─── (half-open trial)
//!   │healthy │ ◄──── S consecutive successes  │unhealthy│       (backoff doubles)
//!   └────────┘ ◄──┐                           └────────┘
//!        ▲        │                               │ trial succeeds
//!        │        │  S-th success                 ▼
//!        │        └──────────────────────── ┌───────────┐
//!        │                                  │ half-open │ ── a failure ──► open
//!        └──── (first ever probe passes)    │ unhealthy │
//!                                           └───────────┘
//! ```
//!
//! - A never-checked service takes its first probe's result at once (healthy or unhealthy), so a new
//!   service is not hidden for F sweeps; from then on, thresholds damp flapping: healthy → unhealthy
//!   only after `failures_to_open` consecutive failures, unhealthy → healthy only after
//!   `successes_to_close` consecutive successes.
//! - While open, the service is isolated (status `unhealthy`, so `healthyOnly` hides it) and probed only
//!   when its backoff has elapsed: `base_backoff`, doubling with every failed trial up to `max_backoff`.
//! - Half-open: a trial passed; the service is probed every sweep and stays isolated until it has
//!   `successes_to_close` consecutive successes; one failure opens the circuit again.
//! - A warning (`degraded`: HTTP 429, 503 with `Retry-After`, a certificate expiring soon) is not a
//!   failure: it counts as a passed probe for the thresholds and the circuit, and a closed circuit
//!   records it as `degraded` at once (and `healthy` again at the next clean probe). An open or
//!   half-open circuit stays `unhealthy` until it closes, and closes as what its last probe said.

use super::HealthState;
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half-open",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "closed" => Some(Circuit::Closed),
            "open" => Some(Circuit::Open),
            "half-open" => Some(Circuit::HalfOpen),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitPolicy {
    pub failures_to_open: u32,
    pub successes_to_close: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for CircuitPolicy {
    /// Kubernetes' 3 failures; Consul users' usual 2 successes; one sweep interval of backoff at first.
    fn default() -> Self {
        CircuitPolicy {
            failures_to_open: 3,
            successes_to_close: 2,
            base_backoff: Duration::minutes(5),
            max_backoff: Duration::hours(1),
        }
    }
}

/// What the health table remembers about a service between sweeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitState {
    pub status: HealthState,
    pub circuit: Circuit,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// When `status` last changed.
    pub last_transition: DateTime<Utc>,
    /// Failed half-open trials since the circuit opened: the backoff's exponent.
    pub open_trials: u32,
    /// While open: the earliest time of the next trial.
    pub next_probe_at: Option<DateTime<Utc>>,
}

impl CircuitState {
    /// A row with only the recipe's properties: trust its status, start the counters from there.
    pub fn from_recipe_status(status: HealthState, last_checked: DateTime<Utc>) -> Self {
        CircuitState {
            status,
            circuit: match status {
                HealthState::Healthy | HealthState::Degraded => Circuit::Closed,
                HealthState::Unhealthy => Circuit::Open,
            },
            consecutive_failures: u32::from(status == HealthState::Unhealthy),
            consecutive_successes: u32::from(status != HealthState::Unhealthy),
            last_transition: last_checked,
            open_trials: 0,
            next_probe_at: None,
        }
    }
}

impl CircuitPolicy {
    /// Whether a service in `previous` state should be probed in a sweep at `now`.
    pub fn is_due(&self, previous: Option<&CircuitState>, now: DateTime<Utc>) -> bool {
        match previous {
            Some(state) if state.circuit == Circuit::Open => {
                state.next_probe_at.is_none_or(|at| at <= now)
            }
            _ => true,
        }
    }

    fn backoff(&self, open_trials: u32) -> Duration {
        let factor = 1i32.checked_shl(open_trials.min(20)).unwrap_or(i32::MAX);
        (self.base_backoff * factor).min(self.max_backoff)
    }

    /// The state after one probe at `now` that passed (`success`) or failed.
    pub fn next(
        &self,
        previous: Option<&CircuitState>,
        success: bool,
        now: DateTime<Utc>,
    ) -> CircuitState {
        let Some(previous) = previous else {
            // First ever probe: take its result at once.
            let status = if success {
                HealthState::Healthy
            } else {
                HealthState::Unhealthy
            };
            let mut first = CircuitState::from_recipe_status(status, now);
            if !success {
                first.next_probe_at = Some(now + self.backoff(0));
            }
            return first;
        };
        let mut state = previous.clone();
        if success {
            state.consecutive_successes = state.consecutive_successes.saturating_add(1);
            state.consecutive_failures = 0;
        } else {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            state.consecutive_successes = 0;
        }
        match (previous.circuit, success) {
            (Circuit::Closed, true) => {}
            (Circuit::Closed, false) => {
                if state.consecutive_failures >= self.failures_to_open {
                    state = self.open(state, 0, now);
                }
            }
            (Circuit::Open | Circuit::HalfOpen, true) => {
                if state.consecutive_successes >= self.successes_to_close {
                    state.circuit = Circuit::Closed;
                    state.status = HealthState::Healthy;
                    state.last_transition = now;
                    state.open_trials = 0;
                    state.next_probe_at = None;
                } else {
                    state.circuit = Circuit::HalfOpen;
                    state.next_probe_at = None;
                }
            }
            (Circuit::Open | Circuit::HalfOpen, false) => {
                let trials = previous.open_trials.saturating_add(1);
                state = self.open(state, trials, now);
            }
        }
        state
    }

    /// The state after one probe at `now` whose verdict was `outcome`: `next`, with a warning
    /// counted as a pass and a closed circuit recording `degraded` or `healthy` as the probe said.
    pub fn record(
        &self,
        previous: Option<&CircuitState>,
        outcome: HealthState,
        now: DateTime<Utc>,
    ) -> CircuitState {
        let mut state = self.next(previous, outcome.is_usable(), now);
        if state.circuit == Circuit::Closed && outcome.is_usable() && state.status != outcome {
            state.status = outcome;
            state.last_transition = now;
        }
        state
    }

    fn open(&self, mut state: CircuitState, open_trials: u32, now: DateTime<Utc>) -> CircuitState {
        if state.status != HealthState::Unhealthy {
            state.last_transition = now;
        }
        state.status = HealthState::Unhealthy;
        state.circuit = Circuit::Open;
        state.open_trials = open_trials;
        state.next_probe_at = Some(now + self.backoff(open_trials));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn policy() -> CircuitPolicy {
        CircuitPolicy::default()
    }

    #[test]
    fn first_probe_decides_at_once() {
        let up = policy().next(None, true, t(0));
        assert_eq!(
            (up.status, up.circuit, up.consecutive_successes),
            (HealthState::Healthy, Circuit::Closed, 1)
        );
        let down = policy().next(None, false, t(0));
        assert_eq!(
            (down.status, down.circuit),
            (HealthState::Unhealthy, Circuit::Open)
        );
        assert_eq!(down.next_probe_at, Some(t(5)));
    }

    #[test]
    fn closed_stays_healthy_until_the_failure_threshold() {
        let p = policy();
        let mut s = p.next(None, true, t(0));
        s = p.next(Some(&s), false, t(5));
        assert_eq!(
            (s.status, s.circuit, s.consecutive_failures),
            (HealthState::Healthy, Circuit::Closed, 1)
        );
        s = p.next(Some(&s), false, t(10));
        assert_eq!(
            s.status,
            HealthState::Healthy,
            "two failures do not flip it"
        );
        s = p.next(Some(&s), false, t(15));
        assert_eq!(
            (s.status, s.circuit),
            (HealthState::Unhealthy, Circuit::Open)
        );
        assert_eq!(s.last_transition, t(15));
        assert_eq!(s.next_probe_at, Some(t(20)));
    }

    #[test]
    fn a_success_in_between_resets_the_failure_count() {
        let p = policy();
        let mut s = p.next(None, true, t(0));
        for (i, ok) in [false, false, true, false, false].into_iter().enumerate() {
            s = p.next(Some(&s), ok, t(5 * (i as i64 + 1)));
        }
        assert_eq!(
            s.status,
            HealthState::Healthy,
            "flapping never reached 3 in a row"
        );
        assert_eq!(s.consecutive_failures, 2);
    }

    #[test]
    fn open_is_not_due_until_its_backoff_elapses() {
        let p = policy();
        let open = p.next(None, false, t(0));
        assert!(!p.is_due(Some(&open), t(4)));
        assert!(p.is_due(Some(&open), t(5)));
        assert!(p.is_due(None, t(0)));
        let closed = p.next(None, true, t(0));
        assert!(p.is_due(Some(&closed), t(0)));
    }

    #[test]
    fn failed_trials_double_the_backoff_up_to_the_cap() {
        let p = policy();
        let mut s = p.next(None, false, t(0));
        let mut expected = [10, 20, 40, 60, 60].into_iter();
        let mut now = t(5);
        for _ in 0..5 {
            s = p.next(Some(&s), false, now);
            assert_eq!(s.circuit, Circuit::Open);
            let wait = (s.next_probe_at.unwrap() - now).num_minutes();
            assert_eq!(wait, expected.next().unwrap());
            now = s.next_probe_at.unwrap();
        }
    }

    #[test]
    fn half_open_closes_after_the_success_threshold() {
        let p = policy();
        let open = p.next(None, false, t(0));
        let half = p.next(Some(&open), true, t(5));
        assert_eq!(
            (half.status, half.circuit),
            (HealthState::Unhealthy, Circuit::HalfOpen)
        );
        assert!(
            p.is_due(Some(&half), t(5)),
            "half-open is probed every sweep"
        );
        let closed = p.next(Some(&half), true, t(10));
        assert_eq!(
            (closed.status, closed.circuit),
            (HealthState::Healthy, Circuit::Closed)
        );
        assert_eq!(closed.last_transition, t(10));
        assert_eq!((closed.open_trials, closed.next_probe_at), (0, None));
    }

    #[test]
    fn half_open_reopens_on_a_failure_with_a_longer_backoff() {
        let p = policy();
        let open = p.next(None, false, t(0));
        let half = p.next(Some(&open), true, t(5));
        let reopened = p.next(Some(&half), false, t(10));
        assert_eq!(
            (reopened.status, reopened.circuit),
            (HealthState::Unhealthy, Circuit::Open)
        );
        assert_eq!(reopened.open_trials, 1);
        assert_eq!(reopened.next_probe_at, Some(t(20)));
        assert_eq!(
            reopened.last_transition,
            t(0),
            "still unhealthy: no transition"
        );
    }

    #[test]
    fn recipe_rows_map_to_a_state() {
        let s = CircuitState::from_recipe_status(HealthState::Unhealthy, t(0));
        assert_eq!(s.circuit, Circuit::Open);
        assert!(
            policy().is_due(Some(&s), t(0)),
            "no recorded backoff: due now"
        );
        assert_eq!(Circuit::parse("half-open"), Some(Circuit::HalfOpen));
        assert_eq!(Circuit::parse("x"), None);
    }

    #[test]
    fn a_warning_is_recorded_at_once_and_is_never_a_failure() {
        let p = policy();
        let (ok, warn, fail) = (
            HealthState::Healthy,
            HealthState::Degraded,
            HealthState::Unhealthy,
        );
        let first = p.record(None, warn, t(0));
        assert_eq!((first.status, first.circuit), (warn, Circuit::Closed));
        let mut s = p.record(Some(&first), ok, t(5));
        assert_eq!((s.status, s.last_transition), (ok, t(5)));
        // Warnings between failures reset the failure run: three in a row are needed to open.
        for (i, outcome) in [fail, fail, warn, fail, fail].into_iter().enumerate() {
            s = p.record(Some(&s), outcome, t(10 + 5 * i as i64));
            assert_eq!(s.circuit, Circuit::Closed, "step {i}");
        }
        assert_eq!((s.status, s.consecutive_failures), (warn, 2));
        for _ in 0..20 {
            s = p.record(Some(&s), warn, t(60));
        }
        assert_eq!(
            (s.status, s.circuit, s.open_trials),
            (warn, Circuit::Closed, 0)
        );
        // An open circuit closes on warnings as on passes, into degraded.
        let open = p.record(None, fail, t(0));
        let half = p.record(Some(&open), warn, t(5));
        assert_eq!((half.status, half.circuit), (fail, Circuit::HalfOpen));
        let closed = p.record(Some(&half), warn, t(10));
        assert_eq!((closed.status, closed.circuit), (warn, Circuit::Closed));
        assert_eq!(
            CircuitState::from_recipe_status(warn, t(0)).circuit,
            Circuit::Closed
        );
    }

    #[test]
    fn thresholds_of_one_behave_like_the_recipe() {
        let p = CircuitPolicy {
            failures_to_open: 1,
            successes_to_close: 1,
            ..policy()
        };
        let s = p.next(None, true, t(0));
        let s = p.next(Some(&s), false, t(5));
        assert_eq!(s.status, HealthState::Unhealthy);
        let s = p.next(Some(&s), true, t(10));
        assert_eq!(s.status, HealthState::Healthy);
    }
}
