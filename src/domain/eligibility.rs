//! Which instances a caller may be given: the resolver's eligibility rule and discovery's fail-open
//! rule, beside the weighted choice (`balance`) that picks among the eligible.
//!
//! Both are rules about instances, not about HTTP or rows, so they take a plain `Standing` (what the
//! rules need to know about one instance) through a closure; the handlers map a joined row to it and
//! keep whatever item type they need for the answer.
//!
//! - **Eligible** (resolver): not expired, weight above 0, and healthy or degraded (a warning, such
//!   as a rate-limited answer, is not a failure: Consul's `warning`). When no instance has been
//!   found healthy or degraded yet, the ones never checked are eligible instead (a service registered a minute
//!   ago must be reachable before its first sweep); one recorded unhealthy never is.
//! - **Healthy only** (discovery's `healthyOnly`): the healthy and degraded instances; with
//!   `failOpen`, when none of those selected is either, all of them (Cloud Map's `HEALTHY_OR_ELSE_ALL`: better a possibly
//!   broken instance than none), and the answer says it failed open.

use super::HealthState;

/// What the selection rules need to know about one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The registered weight (0 takes the instance out of rotation without deregistering it).
    pub weight: u32,
    /// What the last sweep recorded; `None` when the instance was never checked.
    pub health: Option<HealthState>,
    /// Its registration lapsed (no heartbeat within its TTL).
    pub expired: bool,
}

/// The instances a resolve may choose from, in their given order (see the module docs for the rule).
pub fn eligible<T>(instances: Vec<T>, standing: impl Fn(&T) -> Standing) -> Vec<T> {
    let usable: Vec<(T, Option<HealthState>)> = instances
        .into_iter()
        .filter_map(|instance| {
            let Standing {
                weight,
                health,
                expired,
            } = standing(&instance);
            (!expired && weight > 0).then_some((instance, health))
        })
        .collect();
    let admitted = |health: &Option<HealthState>| health.is_some_and(HealthState::is_usable);
    let any_admitted = usable.iter().any(|(_, health)| admitted(health));
    // Before the first sweep has found anyone healthy, "never checked" stands in for "healthy".
    usable
        .into_iter()
        .filter(|(_, health)| {
            if any_admitted {
                admitted(health)
            } else {
                health.is_none()
            }
        })
        .map(|(instance, _)| instance)
        .collect()
}

/// `healthyOnly`: the healthy instances, or with `fail_open` all of them when none is healthy. The
/// flag says whether it failed open (what discovery reports as `failedOpen`).
pub fn healthy_only<T>(
    instances: Vec<T>,
    fail_open: bool,
    health: impl Fn(&T) -> Option<HealthState>,
) -> (Vec<T>, bool) {
    let is_healthy = |instance: &T| health(instance).is_some_and(HealthState::is_usable);
    if fail_open && !instances.iter().any(is_healthy) {
        return (instances, true);
    }
    let healthy = instances.into_iter().filter(is_healthy).collect();
    (healthy, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: Option<HealthState> = Some(HealthState::Healthy);
    const DEGRADED: Option<HealthState> = Some(HealthState::Degraded);
    const UNHEALTHY: Option<HealthState> = Some(HealthState::Unhealthy);
    const NEVER: Option<HealthState> = None;

    fn live(weight: u32, health: Option<HealthState>) -> Standing {
        Standing {
            weight,
            health,
            expired: false,
        }
    }

    /// The indices of the eligible among `standings`.
    fn eligible_of(standings: &[Standing]) -> Vec<usize> {
        eligible((0..standings.len()).collect(), |&i| standings[i])
    }

    fn healthy_only_of(health: &[Option<HealthState>], fail_open: bool) -> (Vec<usize>, bool) {
        healthy_only((0..health.len()).collect(), fail_open, |&i| health[i])
    }

    #[test]
    fn healthy_instances_are_eligible_and_never_checked_ones_wait() {
        assert_eq!(
            eligible_of(&[live(1, HEALTHY), live(1, NEVER), live(5, HEALTHY)]),
            [0, 2]
        );
    }

    #[test]
    fn with_none_healthy_the_never_checked_stand_in_but_never_the_unhealthy() {
        assert_eq!(
            eligible_of(&[live(1, UNHEALTHY), live(1, NEVER), live(2, NEVER)]),
            [1, 2]
        );
        assert_eq!(
            eligible_of(&[live(1, UNHEALTHY), live(1, UNHEALTHY)]),
            [] as [usize; 0]
        );
        assert_eq!(eligible_of(&[]), [] as [usize; 0]);
    }

    #[test]
    fn weight_zero_and_expired_instances_are_never_eligible() {
        let expired_healthy = Standing {
            expired: true,
            ..live(1, HEALTHY)
        };
        // Neither counts as "someone healthy", so the never-checked one stands in.
        assert_eq!(
            eligible_of(&[live(0, HEALTHY), expired_healthy, live(1, NEVER)]),
            [2]
        );
        assert_eq!(
            eligible_of(&[
                live(0, NEVER),
                Standing {
                    expired: true,
                    ..live(1, NEVER)
                }
            ]),
            [] as [usize; 0]
        );
    }

    #[test]
    fn healthy_only_keeps_the_healthy_whatever_fail_open_says() {
        let health = [HEALTHY, UNHEALTHY, NEVER, HEALTHY];
        assert_eq!(healthy_only_of(&health, false), (vec![0, 3], false));
        assert_eq!(healthy_only_of(&health, true), (vec![0, 3], false));
    }

    #[test]
    fn degraded_instances_are_admitted_like_healthy_ones() {
        assert_eq!(
            eligible_of(&[live(1, DEGRADED), live(1, NEVER), live(1, UNHEALTHY)]),
            [0]
        );
        assert_eq!(
            healthy_only_of(&[DEGRADED, UNHEALTHY, HEALTHY], true),
            (vec![0, 2], false)
        );
    }

    #[test]
    fn fail_open_returns_everything_only_when_nothing_is_healthy() {
        let health = [UNHEALTHY, NEVER];
        assert_eq!(healthy_only_of(&health, true), (vec![0, 1], true));
        assert_eq!(healthy_only_of(&health, false), (vec![], false));
        // Nothing selected at all: nothing is healthy, so with failOpen the answer says it failed open.
        assert_eq!(healthy_only_of(&[], true), (vec![], true));
        assert_eq!(healthy_only_of(&[], false), (vec![], false));
    }
}
