use super::*;
use std::sync::atomic::AtomicUsize;

impl Weigh for u32 {
    fn weight(&self) -> usize {
        *self as usize
    }
}

async fn counting(calls: &AtomicUsize, value: u32) -> Result<u32, ()> {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(value)
}

#[tokio::test]
async fn serves_within_ttl_and_forgets_on_write() {
    let generation = Generation::default();
    let cache = ReadCache::new(Duration::from_secs(60), generation.clone());
    let calls = AtomicUsize::new(0);
    assert_eq!(
        *cache
            .get_or_fetch("q", || counting(&calls, 1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        *cache
            .get_or_fetch("q", || counting(&calls, 2))
            .await
            .unwrap(),
        1
    );
    generation.bump();
    assert_eq!(
        *cache
            .get_or_fetch("q", || counting(&calls, 3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_read_that_raced_a_write_is_not_cached() {
    let generation = Generation::default();
    let cache = ReadCache::new(Duration::from_secs(60), generation.clone());
    let raced = cache.get_or_fetch("q", || async {
        generation.bump(); // a write lands while the read is in flight
        Ok::<_, ()>(1)
    });
    assert_eq!(*raced.await.unwrap(), 1);
    assert_eq!(
        *cache
            .get_or_fetch("q", || async { Ok::<_, ()>(2) })
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn concurrent_misses_fetch_once() {
    let cache = ReadCache::new(Duration::from_secs(60), Generation::default());
    let calls = AtomicUsize::new(0);
    let all =
        futures::future::join_all((0..16).map(|_| cache.get_or_fetch("q", || counting(&calls, 7))));
    assert!(all.await.into_iter().all(|v| *v.unwrap() == 7));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expired_disabled_and_failed_reads_are_not_served() {
    let cache = ReadCache::new(Duration::from_millis(30), Generation::default());
    let calls = AtomicUsize::new(0);
    cache
        .get_or_fetch("q", || counting(&calls, 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    cache
        .get_or_fetch("q", || counting(&calls, 1))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(cache
        .get_or_fetch("e", || async { Err::<u32, _>(()) })
        .await
        .is_err());
    assert_eq!(
        *cache
            .get_or_fetch("e", || async { Ok::<_, ()>(5) })
            .await
            .unwrap(),
        5
    );

    let off = ReadCache::<u32, ()>::new(Duration::ZERO, Generation::default());
    off.get_or_fetch("q", || counting(&calls, 1)).await.unwrap();
    off.get_or_fetch("q", || counting(&calls, 1)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn with_the_cache_off_concurrent_callers_still_share_one_fetch() {
    let off = ReadCache::<u32, ()>::new(Duration::ZERO, Generation::default());
    let calls = AtomicUsize::new(0);
    let all = futures::future::join_all((0..8).map(|_| {
        off.get_or_fetch("q", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, ()>(7)
        })
    }))
    .await;
    assert!(all.iter().all(|r| *r.as_ref().unwrap().as_ref() == 7));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Nothing was kept: the next call fetches again.
    off.get_or_fetch("q", || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, ()>(8)
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failure_reaches_every_waiter_of_that_fetch_at_once() {
    let cache = ReadCache::<u32, String>::new(Duration::from_secs(60), Generation::default());
    let calls = AtomicUsize::new(0);
    let started = Instant::now();
    let all = futures::future::join_all((0..12).map(|_| {
        cache.get_or_fetch("q", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err::<u32, _>("no answer".to_owned())
        })
    }))
    .await;
    assert!(all.iter().all(|r| r.as_ref().unwrap_err() == "no answer"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for all twelve");
    assert!(started.elapsed() < Duration::from_millis(1100));
    // Not cached: the next caller tries again.
    let next = cache.get_or_fetch("q", || async { Ok::<_, String>(3) });
    assert_eq!(*next.await.unwrap(), 3);
}

#[tokio::test]
async fn a_waiter_takes_over_from_a_cancelled_leader() {
    let cache = ReadCache::<u32, ()>::new(Duration::from_secs(60), Generation::default());
    let calls = AtomicUsize::new(0);
    // The leader's request goes away after 50 ms; the waiter joined its fetch at 5 ms.
    let leader = async {
        tokio::select! {
            _ = cache.get_or_fetch("q", std::future::pending::<Result<u32, ()>>) => {
                unreachable!("the leader's fetch never finishes")
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    let waiter = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.get_or_fetch("q", || counting(&calls, 9)).await
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
    let cache = ReadCache::<u32, ()>::new(Duration::from_secs(60), generation.clone());
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let old = cache.get_or_fetch("q", || async {
        let _ = released.await;
        Ok(1)
    });
    let after_write = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        generation.bump(); // a write completes, then its writer reads
        let read = cache.get_or_fetch("q", || async { Ok(2) }).await;
        let _ = release.send(());
        read
    };
    let (old, new) = tokio::join!(old, after_write);
    assert_eq!((*old.unwrap(), *new.unwrap()), (1, 2));
}

#[tokio::test]
async fn keys_are_digests_and_values_are_bounded_by_bytes() {
    let cache = ReadCache::<u32, ()>::new(Duration::from_secs(60), Generation::default());
    let long = "k".repeat(65_536);
    cache
        .get_or_fetch(&long, || async { Ok(10) })
        .await
        .unwrap();
    assert_eq!(
        *cache
            .get_or_fetch(&long, || async { Ok(11) })
            .await
            .unwrap(),
        10
    );
    // Too heavy to keep: served, not stored.
    let heavy = (MAX_BYTES + 1) as u32;
    cache
        .get_or_fetch("h", || async { Ok(heavy) })
        .await
        .unwrap();
    assert_eq!(
        *cache.get_or_fetch("h", || async { Ok(1) }).await.unwrap(),
        1
    );
    // Filling past the budget evicts rather than grows.
    let half = (MAX_BYTES / 2) as u32;
    for key in ["a", "b", "c", "d"] {
        cache
            .get_or_fetch(key, || async { Ok(half) })
            .await
            .unwrap();
        assert!(lock(&cache.entries).bytes <= MAX_BYTES);
    }
    assert!(lock(&cache.entries).map.len() <= 3);
}
