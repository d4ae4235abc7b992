//! When an instance's registration lapses: `lastHeartbeat + ttlSeconds`. Rows without a TTL (every
//! recipe-style row) never expire, and a row whose heartbeat cannot be read is treated as fresh rather
//! than hidden: expiry is a promise the registrant made, not a guess we make about old rows.

use chrono::{DateTime, Utc};

/// `last_heartbeat` is `None` when the row has none or holds one that cannot be read. `None` also
/// when the sum overflows: a TTL another client wrote as a huge number never expires (and must not
/// panic the handler).
pub fn expires_at(
    ttl_seconds: Option<i64>,
    last_heartbeat: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let ttl = chrono::Duration::try_seconds(ttl_seconds.filter(|ttl| *ttl > 0)?)?;
    last_heartbeat?.checked_add_signed(ttl)
}

pub fn is_expired(
    ttl_seconds: Option<i64>,
    last_heartbeat: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    expires_at(ttl_seconds, last_heartbeat).is_some_and(|expires| expires <= now)
}

/// Consul's `DeregisterCriticalServiceAfter`: a registration whose check has been critical since
/// `critical_since` is removed once that lasted longer than `after`.
pub fn critical_too_long(
    critical_since: Option<DateTime<Utc>>,
    after: Option<std::time::Duration>,
    now: DateTime<Utc>,
) -> bool {
    let (Some(since), Some(after)) = (critical_since, after) else {
        return false;
    };
    chrono::Duration::from_std(after)
        .ok()
        .and_then(|after| since.checked_add_signed(after))
        .is_some_and(|limit| limit < now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_too_long_counts_from_when_it_turned_critical() {
        let t = |s: &str| crate::parse_iso(s).unwrap();
        let since = Some(t("2026-11-25T12:00:00.000Z"));
        let minute = Some(std::time::Duration::from_secs(60));
        assert!(!critical_too_long(
            since,
            minute,
            t("2026-11-25T12:01:00.000Z")
        ));
        assert!(critical_too_long(
            since,
            minute,
            t("2026-11-25T12:01:00.001Z")
        ));
        assert!(!critical_too_long(
            None,
            minute,
            t("2027-01-01T00:00:00.000Z")
        ));
        assert!(!critical_too_long(
            since,
            None,
            t("2027-01-01T00:00:00.000Z")
        ));
    }

    #[test]
    fn only_rows_with_a_ttl_and_a_readable_heartbeat_expire() {
        let now = crate::parse_iso("2026-11-25T12:00:00.000Z").unwrap();
        let beat = crate::parse_iso("2026-11-25T11:59:00.000Z");
        assert!(is_expired(Some(30), beat, now));
        assert!(!is_expired(Some(60 * 60), beat, now));
        assert!(!is_expired(None, beat, now));
        assert!(!is_expired(Some(30), crate::parse_iso("yesterday"), now));
        assert!(!is_expired(Some(30), None, now));
        assert_eq!(
            expires_at(Some(60), beat).map(crate::iso).as_deref(),
            Some("2026-11-25T12:00:00.000Z")
        );
        // Exactly at the deadline counts as expired: a TTL is how long a heartbeat stays good.
        assert!(is_expired(Some(60), beat, now));
        // Absurd TTLs from other clients never expire and never panic.
        assert!(!is_expired(Some(i64::MAX), beat, now));
        assert!(!is_expired(Some(100_000_000_000_000), beat, now));
    }
}
