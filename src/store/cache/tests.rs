//! The read cache on its own: hits, misses, expiry, refresh ahead, single flight and its bounds.

use super::*;
use std::sync::atomic::AtomicUsize;

impl Cacheable for u32 {
    fn weight(&self) -> usize {
        *self as usize
    }
}

/// A fetch that counts its calls (when it is made, before it runs) and takes 20 ms.
fn counting(
    calls: &Arc<AtomicUsize>,
    value: u32,
) -> impl Future<Output = Result<u32, ()>> + Send + 'static {
    calls.fetch_add(1, Ordering::SeqCst);
    async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(value)
    }
}

#[tokio::test]
async fn serves_within_ttl_and_forgets_on_write() {
    let generation = Generation::default();
    let cache = Arc::new(ReadCache::new(Duration::from_secs(60), generation.clone()));
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        *cache
            .get_or_fetch("q", None, |_| counting(&calls, 1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        *cache
            .get_or_fetch("q", None, |_| counting(&calls, 2))
            .await
            .unwrap(),
        1
    );
    generation.bump();
    assert_eq!(
        *cache
            .get_or_fetch("q", None, |_| counting(&calls, 3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_read_that_raced_a_write_is_not_cached() {
    let generation = Generation::default();
    let cache = Arc::new(ReadCache::new(Duration::from_secs(60), generation.clone()));
    let writer = generation.clone();
    let raced = cache.get_or_fetch("q", None, |_| async move {
        writer.bump(); // a write lands while the read is in flight
        Ok::<_, ()>(1)
    });
    assert_eq!(*raced.await.unwrap(), 1);
    assert_eq!(
        *cache
            .get_or_fetch("q", None, |_| async { Ok::<_, ()>(2) })
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn concurrent_misses_fetch_once() {
    let cache = Arc::new(ReadCache::new(
        Duration::from_secs(60),
        Generation::default(),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let all = futures::future::join_all(
        (0..16).map(|_| cache.get_or_fetch("q", None, |_| counting(&calls, 7))),
    );
    assert!(all.await.into_iter().all(|v| *v.unwrap() == 7));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expired_disabled_and_failed_reads_are_not_served() {
    let cache = Arc::new(ReadCache::new(
        Duration::from_millis(30),
        Generation::default(),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    cache
        .get_or_fetch("q", None, |_| counting(&calls, 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    cache
        .get_or_fetch("q", None, |_| counting(&calls, 1))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(cache
        .get_or_fetch("e", None, |_| async { Err::<u32, _>(()) })
        .await
        .is_err());
    assert_eq!(
        *cache
            .get_or_fetch("e", None, |_| async { Ok::<_, ()>(5) })
            .await
            .unwrap(),
        5
    );

    let off = Arc::new(ReadCache::<u32, ()>::new(
        Duration::ZERO,
        Generation::default(),
    ));
    off.get_or_fetch("q", None, |_| counting(&calls, 1))
        .await
        .unwrap();
    off.get_or_fetch("q", None, |_| counting(&calls, 1))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn with_the_cache_off_concurrent_callers_still_share_one_fetch() {
    let off = Arc::new(ReadCache::<u32, ()>::new(
        Duration::ZERO,
        Generation::default(),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let all = futures::future::join_all((0..8).map(|_| {
        off.get_or_fetch("q", None, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, ()>(7)
            }
        })
    }))
    .await;
    assert!(all.iter().all(|r| **r.as_ref().unwrap() == 7));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Nothing was kept: the next call fetches again.
    off.get_or_fetch("q", None, |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, ()>(8) }
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failure_reaches_every_waiter_of_that_fetch_at_once() {
    let cache = Arc::new(ReadCache::<u32, String>::new(
        Duration::from_secs(60),
        Generation::default(),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let all = futures::future::join_all((0..12).map(|_| {
        cache.get_or_fetch("q", None, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<u32, _>("no answer".to_owned())
            }
        })
    }))
    .await;
    assert!(all.iter().all(|r| r.as_ref().unwrap_err() == "no answer"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for all twelve");
    assert!(started.elapsed() < Duration::from_millis(1100));
    // Not cached: the next caller tries again.
    let next = cache.get_or_fetch("q", None, |_| async { Ok::<_, String>(3) });
    assert_eq!(*next.await.unwrap(), 3);
}

#[tokio::test]
async fn a_waiter_takes_over_from_a_cancelled_leader() {
    let cache = Arc::new(ReadCache::<u32, ()>::new(
        Duration::from_secs(60),
        Generation::default(),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    // The leader's request goes away after 50 ms; the waiter joined its fetch at 5 ms.
    let leader = async {
        tokio::select! {
            _ = cache.get_or_fetch("q", None, |_| std::future::pending::<Result<u32, ()>>()) => {
                unreachable!("the leader's fetch never finishes")
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let waiter = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.get_or_fetch("q", None, |_| counting(&calls, 9)).await
    };
    let ((), waited) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(leader, waiter)
    })
    .await
    .expect("the waiter must not wait for ever");
    assert_eq!(*waited.unwrap(), 9);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_waiter_does_not_join_a_fetch_older_than_its_generation() {
    let generation = Generation::default();
    let cache = Arc::new(ReadCache::<u32, ()>::new(
        Duration::from_secs(60),
        generation.clone(),
    ));
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let old = cache.get_or_fetch("q", None, |_| async {
        let _ = released.await;
        Ok(1)
    });
    let after_write = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        generation.bump(); // a write completes, then its writer reads
        let read = cache.get_or_fetch("q", None, |_| async { Ok(2) }).await;
        let _ = release.send(());
        read
    };
    let (old, new) = tokio::join!(old, after_write);
    assert_eq!((*old.unwrap(), *new.unwrap()), (1, 2));
}

#[tokio::test]
async fn keys_are_digests_and_values_are_bounded_by_bytes() {
    let cache = Arc::new(ReadCache::<u32, ()>::new(
        Duration::from_secs(60),
        Generation::default(),
    ));
    let long = "k".repeat(65_536);
    cache
        .get_or_fetch(&long, None, |_| async { Ok(10) })
        .await
        .unwrap();
    assert_eq!(
        *cache
            .get_or_fetch(&long, None, |_| async { Ok(11) })
            .await
            .unwrap(),
        10
    );
    // Too heavy to keep: served, not stored.
    let heavy = (MAX_BYTES + 1) as u32;
    cache
        .get_or_fetch("h", None, |_| async move { Ok(heavy) })
        .await
        .unwrap();
    assert_eq!(
        *cache
            .get_or_fetch("h", None, |_| async { Ok(1) })
            .await
            .unwrap(),
        1
    );
    // Filling past the budget evicts rather than grows.
    let half = (MAX_BYTES / 2) as u32;
    for key in ["a", "b", "c", "d"] {
        cache
            .get_or_fetch(key, None, |_| async move { Ok(half) })
            .await
            .unwrap();
        assert!(lock(&cache.entries).bytes <= MAX_BYTES);
    }
    assert!(lock(&cache.entries).map.len() <= 3);
}

/// A value that says its data was read `age` before it was made (as a rendered page does).
struct Aged {
    n: u32,
    read_at: Option<Instant>,
}

impl Cacheable for Aged {
    fn weight(&self) -> usize {
        1
    }

    fn read_at(&self) -> Option<Instant> {
        self.read_at
    }
}

fn aged(value: u32, age: Duration) -> Aged {
    Aged {
        n: value,
        read_at: Some(Instant::now() - age),
    }
}

/// Polls `cache` for `key` until it serves `wanted` (a background refresh landing), or fails after
/// a deadline a loaded machine cannot miss.
async fn until_served(cache: &Arc<ReadCache<Aged, ()>>, key: &str, wanted: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = cache
            .get_or_fetch(key, None, |_| async {
                panic!("no miss while an entry is fresh")
            })
            .await
            .unwrap();
        if read.n == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "the refresh never landed");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_hot_entry_is_refreshed_in_the_background_and_no_caller_waits_for_it() {
    let ttl = Duration::from_secs(600);
    let cache = Arc::new(ReadCache::<Aged, ()>::new(ttl, Generation::default()));
    // Its data was read 80 % of the TTL ago: servable, and due for a refresh.
    let first = cache
        .get_or_fetch("q", None, |_| async move { Ok(aged(1, ttl.mul_f64(0.8))) })
        .await
        .unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let refreshes = Arc::new(AtomicUsize::new(0));
    let replaced = Arc::new(Mutex::new(None));
    let (count, seen) = (refreshes.clone(), replaced.clone());
    // Served at once, although the refresh it starts cannot finish until released.
    let served = tokio::time::timeout(
        Duration::from_secs(20),
        cache.get_or_fetch("q", None, move |replaces| {
            count.fetch_add(1, Ordering::SeqCst);
            *lock(&seen) = replaces;
            async move {
                let _ = released.await;
                Ok(aged(2, Duration::ZERO))
            }
        }),
    )
    .await
    .expect("a caller of a fresh entry never waits for its refresh")
    .unwrap();
    assert_eq!(served.n, 1);
    assert_eq!(
        *lock(&replaced),
        Some(first.read_at),
        "the refresh knows what it replaces"
    );
    // While it runs, hits are served the current value and start no second refresh.
    let again = cache
        .get_or_fetch("q", None, |_| {
            refreshes.fetch_add(1, Ordering::SeqCst);
            async { Ok(aged(3, Duration::ZERO)) }
        })
        .await
        .unwrap();
    assert_eq!(again.n, 1);
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    release.send(()).unwrap();
    until_served(&cache, "q", 2).await;
    // A young entry is not refreshed.
    let young = cache
        .get_or_fetch("q", None, |_| async {
            panic!("no refresh of a young entry")
        })
        .await
        .unwrap();
    assert_eq!(young.n, 2);
}

#[tokio::test]
async fn a_value_lapses_with_the_reads_it_was_made_from_and_read_after_skips_older_ones() {
    let ttl = Duration::from_secs(600);
    let cache = Arc::new(ReadCache::<Aged, ()>::new(ttl, Generation::default()));
    // Made now from data read longer than a TTL ago: served to its own callers, never kept.
    let stale = cache
        .get_or_fetch("q", None, |_| async move { Ok(aged(1, ttl + ttl)) })
        .await
        .unwrap();
    assert_eq!(stale.n, 1);
    let fresh = cache
        .get_or_fetch("q", None, |_| async { Ok(aged(2, Duration::ZERO)) })
        .await
        .unwrap();
    assert_eq!(fresh.n, 2, "the lapsed value was not served again");
    // A caller that wants reads newer than this one's does not get it.
    let newer = cache
        .get_or_fetch("q", Some(fresh.read_at), |_| async {
            Ok(aged(3, Duration::ZERO))
        })
        .await
        .unwrap();
    assert_eq!(newer.n, 3);
    assert!(newer.read_at > fresh.read_at);
}

#[tokio::test]
async fn a_refresh_that_raced_a_write_is_dropped() {
    let generation = Generation::default();
    let ttl = Duration::from_secs(600);
    let cache = Arc::new(ReadCache::<Aged, ()>::new(ttl, generation.clone()));
    cache
        .get_or_fetch("q", None, |_| async move { Ok(aged(1, ttl.mul_f64(0.8))) })
        .await
        .unwrap();
    let (landed, refresh_landed) = tokio::sync::oneshot::channel::<()>();
    let writer = generation.clone();
    cache
        .get_or_fetch("q", None, move |_| async move {
            writer.bump(); // a write of this process lands while the refresh reads
            let _ = landed.send(());
            Ok(aged(2, Duration::ZERO))
        })
        .await
        .unwrap();
    refresh_landed.await.unwrap();
    let after = cache
        .get_or_fetch("q", None, |_| async { Ok(aged(3, Duration::ZERO)) })
        .await
        .unwrap();
    assert_eq!(
        after.n, 3,
        "neither the old value nor the raced refresh is served"
    );
}
