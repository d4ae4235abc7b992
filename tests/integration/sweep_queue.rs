//! The fanned-out sweep with standalone processes: every process polls the shard queue itself
//! (Azurite's queue service), so several share one sweep, a killed worker's shard comes back and
//! is finished by another without counting a failure twice, and a shard that keeps failing ends
//! in `<queue>-poison`. Judged from the tables, the queue and `GET /api/Sweep`, waiting for
//! conditions, never for durations.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A standalone replica of a fanned-out registry: no scheduled tick in the test's lifetime (the
/// test triggers one with `POST /HealthMonitor`), shards of `shard_size`, one shard at a time.
fn fanout_replica(queue: &str, name: &str, shard_size: usize) -> HandlerConfig {
    HandlerConfig::new(Mode::Standalone)
        .env("SWEEP_QUEUE", queue)
        .env("SWEEP_SHARD_SIZE", &shard_size.to_string())
        .env("SWEEP_WINDOW_SECONDS", "120")
        .env("HEALTH_MONITOR_SCHEDULE", "0 0 0 1 1 *")
        .env("HEALTH_PROBE_CONCURRENCY", &shard_size.to_string())
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .env("SWEEP_QUEUE_MAX_POLL_MS", "200")
        .env("HOSTNAME", name)
}

fn queue_name() -> String {
    format!("shards-{}", short_id().to_lowercase())
}

/// `GET /api/Sweep`'s `lastSweep` once its fan-out says every shard ended.
async fn finished_sweep(h: &Handler, budget: Duration) -> Value {
    poll_until(budget, Duration::from_millis(200), || async {
        let last = h.last_sweep().await;
        (last["fanout"]["finished"] == true).then_some(last)
    })
    .await
    .unwrap_or_else(|| panic!("the sweep did not finish; logs:\n{}", h.logs()))
}

async fn register(h: &Handler, name: &str, url: &str) {
    h.register_ok(&json!({"serviceName": name, "serviceType": "api", "endpoint": url}))
        .await;
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["RowKey"] == name)
        .unwrap_or_else(|| panic!("no health row for {name} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_drain_one_queue_and_the_summary_says_who_did_what() {
    let queue = queue_name();
    let a_cfg = fanout_replica(&queue, "replica-a", 3);
    let a = Handler::spawn(a_cfg.clone()).await;
    let mut others = Vec::new();
    for name in ["replica-b", "replica-c"] {
        others.push(Handler::spawn(a_cfg.clone().env("HOSTNAME", name)).await);
    }
    // Twelve that answer after 400 ms (so no process can take every shard before the others
    // poll), six on a closed port.
    let slow = HoldingTarget::start(Duration::from_millis(400));
    let closed = closed_port();
    for i in 0..12 {
        register(&a, &format!("up-{i:02}"), &slow.url).await;
    }
    for i in 0..6 {
        register(
            &a,
            &format!("down-{i:02}"),
            &format!("http://127.0.0.1:{}/", closed.port),
        )
        .await;
    }

    let tick = a.sweep().await;
    assert_eq!(tick.status, 200, "{}", tick.text);
    let logs = logs_of(&tick.json());
    assert!(
        logs[0].starts_with("HealthMonitor fan-out: sweep ")
            && logs[0].contains("18 services in 6 shards"),
        "{logs:?}"
    );
    let last = finished_sweep(&a, Duration::from_secs(60)).await;
    let fanout = &last["fanout"];
    assert_eq!(
        (
            fanout["shards"].as_u64(),
            fanout["shardsDone"].as_u64(),
            fanout["shardsDropped"].as_u64()
        ),
        (Some(6), Some(6), Some(0)),
        "{last}"
    );
    assert_eq!(fanout["finishedInWindow"], true, "{last}");
    assert_eq!(
        (
            last["counters"]["probed"].as_u64(),
            last["counters"]["healthy"].as_u64(),
            last["counters"]["unhealthy"].as_u64()
        ),
        (Some(18), Some(12), Some(6)),
        "{last}"
    );
    let shares = fanout["byProcess"].as_array().unwrap();
    let shards: u64 = shares.iter().map(|p| p["shards"].as_u64().unwrap()).sum();
    let probed: u64 = shares.iter().map(|p| p["probed"].as_u64().unwrap()).sum();
    assert_eq!((shards, probed), (6, 18), "{last}");
    assert!(shares.len() >= 2, "one process took every shard: {last}");

    // Every verdict stamped with the sweep, every failure counted once.
    let rows = a.tables().rows(&a.health_table).await;
    assert_eq!(rows.len(), 18, "{rows:?}");
    for r in &rows {
        assert_eq!(r["sweepId"], fanout["sweepId"], "{r}");
    }
    for i in 0..6 {
        let r = row(&rows, &format!("down-{i:02}"));
        assert_eq!(
            (r["status"].as_str(), r["consecutiveFailures"].as_i64()),
            (Some("unhealthy"), Some(1)),
            "{r}"
        );
    }
    // Every message deleted on success.
    queue_drains(&queue).await;
    drop(others);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_shard_reappears_and_another_finishes_it_counting_once() {
    let queue = queue_name();
    let cfg = fanout_replica(&queue, "worker-a", 3)
        .env("SWEEP_QUEUE_VISIBILITY_SECONDS", "3")
        .env("HEALTH_PROBE_TIMEOUT_MS", "3000");
    let mut a = Handler::spawn(cfg.clone()).await;
    let silent = SilentTarget::start();
    let closed = closed_port();
    register(&a, "quiet-1", &silent.url).await;
    register(&a, "quiet-2", &silent.url).await;
    register(&a, "down", &format!("http://127.0.0.1:{}/", closed.port)).await;
    let tick = a.sweep().await;
    assert_eq!(tick.status, 200, "{}", tick.text);
    // A is probing the silent target (its shard is running): kill it there.
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async { (silent.connections().await >= 2).then_some(()) },
    )
    .await
    .expect("worker a never started its shard");
    a.kill();
    assert!(
        a.tables().rows(&a.health_table).await.is_empty(),
        "a wrote before it died"
    );

    let b = Handler::spawn(cfg.clone().env("HOSTNAME", "worker-b")).await;
    let last = finished_sweep(&b, Duration::from_secs(60)).await;
    let shares = last["fanout"]["byProcess"].as_array().unwrap().clone();
    assert_eq!(
        shares,
        vec![json!({"process": "worker-b", "shards": 1, "probed": 3})],
        "{last}"
    );
    let rows = b.tables().rows(&b.health_table).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for r in &rows {
        assert_eq!(r["consecutiveFailures"].as_i64(), Some(1), "{r}");
        assert_eq!(r["checkedBy"], "worker-b", "{r}");
    }
    queue_drains(&queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_keeps_failing_ends_in_the_poison_queue() {
    let queue = queue_name();
    let h = Handler::spawn(
        fanout_replica(&queue, "poisoned", 3).env("SWEEP_QUEUE_MAX_DEQUEUE_COUNT", "2"),
    )
    .await;
    let connection = Azurite::shared().connection_string();
    let shards = storage_queue(&connection, &queue);
    let poison = storage_queue(&connection, &format!("{queue}-poison"));
    shards
        .put(
            r#"{"not":"a shard"}"#,
            Duration::from_secs(300),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let moved = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let taken = poison.receive(32, Duration::from_secs(60)).await.ok()?;
            (!taken.is_empty()).then_some(taken)
        },
    )
    .await
    .unwrap_or_else(|| panic!("nothing reached the poison queue; logs:\n{}", h.logs()));
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].text, r#"{"not":"a shard"}"#);
    assert_eq!(shards.approximate_length().await.unwrap(), 0);
    let logs = h.logs();
    assert!(logs.contains("shard moved to the poison queue"), "{logs}");
    assert!(logs.contains("unreadable shard message"), "{logs}");
    // A message that is no shard says nothing about storage: the process does not back off.
    assert!(
        !logs.contains("no new shard is taken during the pause"),
        "{logs}"
    );
}

/// The sweep's summary is written by the shard that ends it, before its message is deleted (the
/// delete follows the shard's success), so the queue empties just after: wait for that, bounded.
async fn queue_drains(queue: &str) {
    let shards = storage_queue(&Azurite::shared().connection_string(), queue);
    poll_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async { (shards.approximate_length().await.unwrap() == 0).then_some(()) },
    )
    .await
    .expect("every shard's message deleted after its success");
}
