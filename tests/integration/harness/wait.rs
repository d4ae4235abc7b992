//! Waiting without guessing: for a condition, or for the wall clock to pass a time the handler
//! stored.
//!
//! A fixed sleep is a guess at how long the machine takes; on a loaded 2-core CI runner the guess
//! is sometimes wrong, and the test flakes. These helpers wait for the thing itself. Where time
//! really must pass (a circuit's backoff, a timestamp that must move), the test waits until the
//! clock is past the time stored in a row, which the handler wrote itself, not for a duration.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a wait for the clock may be asked to take: a test waiting longer than this is waiting
/// for a time that was not meant (a wrong row, a unit mistake) and should say so rather than hang.
const LONGEST_CLOCK_WAIT: Duration = Duration::from_secs(120);

/// Poll `f` every `every` until it returns Some or `timeout` passes.
pub async fn poll_until<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Returns once `Utc::now()` is strictly after `t`, so anything the handler does from now on reads
/// a clock past it (the handler and the test share the machine's clock).
pub async fn wait_until_past(t: DateTime<Utc>) {
    let started = Instant::now();
    loop {
        let now = Utc::now();
        if now > t {
            return;
        }
        assert!(
            started.elapsed() < LONGEST_CLOCK_WAIT,
            "waited {LONGEST_CLOCK_WAIT:?} for the clock to pass {t}"
        );
        let left = (t - now).to_std().unwrap_or_default();
        // Sleep most of the way, then re-read the clock: timers may wake early or late.
        tokio::time::sleep(left.min(Duration::from_millis(50)) + Duration::from_millis(1)).await;
    }
}

/// Waits until the clock is past the ISO-8601 time `stored` (a property of a row) by `by`.
pub async fn wait_until_past_stored(stored: &str, by: chrono::Duration) {
    wait_until_past(super::parse_iso(stored) + by).await;
}

/// `t` cut to whole milliseconds, as the handler stores times (`2026-11-25T05:00:00.123Z`), so a
/// time the test read from its own clock compares fairly with a stored one.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("a time in range")
}
