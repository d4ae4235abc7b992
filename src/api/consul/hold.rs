//! Blocking reads: a request with `?index=N` is held while its scope's index is still N or less,
//! as Consul's are, until the index moves or the hold ends; then it is answered with whatever the
//! index is (an answer with the same index is legal: "no guarantee of a change").
//!
//! The hold is `min(wait or 5 min, CONSUL_MAX_HOLD_SECONDS) + rand(0, hold/16)`: Consul's jitter,
//! under Prometheus's 135 s client timeout at the default cap, and well under the Functions front
//! end's 230 s at any allowed one.
//!
//! A held request costs no storage read of its own: it waits on the snapshot's change signal and
//! re-checks the snapshot every 1 to 2 s (drawn per request, so thousands of watchers spread out),
//! which is a look at the shared snapshot, or at most three read-cache lookups. It holds an `Arc` of
//! the snapshot and a `watch` receiver, nothing per watcher beside its own future.
//!
//! Storage that is slow or down never stretches a hold: each re-check is cut at the hold's end,
//! and a re-check that fails keeps the snapshot the watcher has (the catalog remembers the failure
//! until its next re-check, so watchers do not queue up behind fetches of their own).

use super::snapshot::{Catalog, ConsulCatalog};
use crate::domain::consul::ConsulQuery;
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// The hold for this query: its wait (or Consul's default) under `cap`, plus jitter.
pub fn hold_for(query: &ConsulQuery, cap: Duration) -> Duration {
    let hold = query.wait_or_default().min(cap);
    let jitter = hold.mul_f64(fastrand::f64() / 16.0);
    hold + jitter
}

/// The snapshot to answer with: at once without `index`, or once `scope` of it exceeds the index
/// (or the hold ends).
pub async fn wait_for_change(
    catalog: &ConsulCatalog,
    query: &ConsulQuery,
    cap: Duration,
    scope: impl Fn(&Catalog) -> u64,
) -> Result<Arc<Catalog>, StoreError> {
    let mut signal = catalog.subscribe();
    let snapshot = catalog.current().await?;
    let Some(seen) = query.index else {
        return Ok(snapshot);
    };
    if scope(&snapshot) > seen {
        return Ok(snapshot);
    }
    let deadline = tokio::time::Instant::now() + hold_for(query, cap);
    let mut snapshot = snapshot;
    loop {
        let recheck = Duration::from_millis(1000 + fastrand::u64(0..1000));
        tokio::select! {
            Ok(()) = signal.changed() => {}
            _ = tokio::time::sleep(recheck) => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(snapshot),
            () = catalog.stopped() => return Ok(snapshot),
        }
        // Bounded by the hold: storage that is slow or down must not keep a watcher past it. A
        // failed rebuild leaves the last snapshot in place and the hold goes on.
        match tokio::time::timeout_at(deadline, catalog.current()).await {
            Ok(Ok(current)) => snapshot = current,
            Ok(Err(_)) => {}
            Err(_) => return Ok(snapshot),
        }
        if scope(&snapshot) > seen {
            return Ok(snapshot);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_is_the_wait_under_the_cap_plus_at_most_a_sixteenth() {
        let query = |wait: Option<u64>| ConsulQuery {
            wait: wait.map(Duration::from_secs),
            ..ConsulQuery::default()
        };
        let cap = Duration::from_secs(100);
        for _ in 0..200 {
            let short = hold_for(&query(Some(16)), cap);
            assert!(
                short >= Duration::from_secs(16) && short <= Duration::from_secs(17),
                "{short:?}"
            );
            let default = hold_for(&query(None), cap);
            assert!(default >= cap && default <= cap + cap / 16, "{default:?}");
            let long = hold_for(&query(Some(525)), cap);
            assert!(long <= cap + cap / 16, "{long:?}");
        }
    }
}
