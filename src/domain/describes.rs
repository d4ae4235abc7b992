//! Whether a stored health verdict judges a service as it is registered now, or a former holder of
//! its key: the rule every reader of health rows (discovery, the resolver, the sweep) applies
//! before it trusts a verdict (`HealthRecord::describes` in the store calls it).
//!
//! A verdict with circuit-breaker memory checked before the registration's `registeredAt` was left
//! by a former holder (a sweep that wrote its verdict after a deregistration; a delete that failed
//! half-way) and counts as absent, so a pod that returns under its old name starts as not yet
//! checked instead of inheriting an open circuit. This handler's registrations keep `registeredAt`
//! when they re-register, so their own history stays. Verdicts with the recipe's properties only
//! (no circuit) are trusted as the recipe trusts them: its registrar resets `registeredAt` on every
//! upsert, so the rule would throw away every verdict on such a row. A time either side cannot
//! read keeps the verdict.

use chrono::{DateTime, Utc};

/// `has_circuit`: the health row carries circuit-breaker memory (even one this handler cannot
/// read); `last_checked` and `registered_at` are `None` when absent or unreadable.
pub fn verdict_describes_registration(
    has_circuit: bool,
    last_checked: Option<DateTime<Utc>>,
    registered_at: Option<DateTime<Utc>>,
) -> bool {
    if !has_circuit {
        return true;
    }
    match (last_checked, registered_at) {
        (Some(checked), Some(registered)) => checked >= registered,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(crate::parse_iso(text).unwrap())
    }

    #[test]
    fn a_verdict_checked_before_the_registration_belongs_to_a_former_holder() {
        let registered = at("2026-11-25T05:00:00.000Z");
        let describes = |checked| verdict_describes_registration(true, checked, registered);
        assert!(!describes(at("2026-11-25T04:59:59.999Z")));
        assert!(describes(at("2026-11-25T05:00:00.000Z")));
        assert!(describes(at("2026-11-25T05:05:00.000Z")));
    }

    #[test]
    fn unreadable_times_and_recipe_rows_keep_the_verdict() {
        let early = at("2026-11-25T04:00:00.000Z");
        assert!(verdict_describes_registration(true, None, early));
        assert!(verdict_describes_registration(true, early, None));
        // A recipe row (no circuit): its registrar moves `registeredAt` on every upsert.
        assert!(verdict_describes_registration(
            false,
            early,
            at("2026-11-25T05:00:00.000Z")
        ));
    }
}
