//! The fanned-out sweep under the Functions host: the timer's tick enqueues the shards, and the
//! host's queue trigger (imitated: `QueueHost` polls Azurite's queue and posts each message's
//! envelope exactly as the host builds it) runs them through `POST /ProbeShard`. Also, by hand:
//! the same message delivered twice (once in the host's form, once in the docs' numeric form)
//! counts each failure once, and stale and late shards are dropped with a 2xx.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

fn queue_name() -> String {
    format!("shards-{}", short_id().to_lowercase())
}

/// Custom-handler mode with the fan-out on: the window given directly (under the host the
/// schedule is the host's).
fn hosted(queue: &str, shard_size: usize, window_s: u64) -> HandlerConfig {
    HandlerConfig::new(Mode::CustomHandler)
        .env("SWEEP_QUEUE", queue)
        .env("SWEEP_SHARD_SIZE", &shard_size.to_string())
        .env("SWEEP_WINDOW_SECONDS", &window_s.to_string())
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .env("WEBSITE_INSTANCE_ID", "instance-1")
}

async fn register(h: &Handler, name: &str, url: &str) {
    h.register_ok(&json!({"serviceName": name, "serviceType": "api", "endpoint": url}))
        .await;
}

/// Takes every message the tick put on the queue (as the host would, before invoking).
async fn take_all(queue: &StorageQueueHandle, expected: usize) -> Vec<ReceivedMessage> {
    let mut taken = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while taken.len() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "the tick's shards on the queue"
        );
        taken.extend(queue.receive(32, Duration::from_secs(600)).await.unwrap());
        if taken.len() < expected {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    taken
}

type StorageQueueHandle = service_registry::store::StorageQueue;
use service_registry::store::ReceivedMessage;

async fn deliver(h: &Handler, message: &ReceivedMessage, numeric: bool) -> Resp {
    let envelope = queue_envelope(
        "ProbeShard",
        "shard",
        &QueueDelivery {
            id: &message.id,
            pop_receipt: &message.pop_receipt,
            dequeue_count: message.dequeue_count,
            text: &message.text,
        },
        numeric,
    );
    h.invoke("ProbeShard", &envelope).await
}

fn first_log(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    check_envelope_shape(&r.json());
    logs_of(&r.json()).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_queue_trigger_runs_every_shard_through_probe_shard() {
    let queue = queue_name();
    let h = Handler::spawn(hosted(&queue, 2, 120)).await;
    let up = HttpTarget::status(200);
    let closed = closed_port();
    for i in 0..4 {
        register(&h, &format!("up-{i}"), &up.url).await;
    }
    for i in 0..2 {
        register(
            &h,
            &format!("down-{i}"),
            &format!("http://127.0.0.1:{}/", closed.port),
        )
        .await;
    }
    // The trigger as function.json declares it, the options as host.json sets them.
    let triggers = queue_triggers(manifest_dir());
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    let trigger = &triggers[0];
    assert_eq!(
        (trigger.function.as_str(), trigger.name.as_str()),
        ("ProbeShard", "shard")
    );
    let resolved = trigger.queue(&[("SWEEP_QUEUE", &queue)]);
    let options = QueueOptions::from_host_json(manifest_dir());
    let listener = QueueHost::start(
        &h,
        &Azurite::shared().connection_string(),
        trigger,
        &resolved,
        options,
    );

    let tick = h.sweep().await;
    assert_eq!(tick.status, 200, "{}", tick.text);
    assert!(
        logs_of(&tick.json())[0].contains("6 services in 3 shards"),
        "{}",
        tick.text
    );
    let last = poll_until(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let last = h.last_sweep().await;
            (last["fanout"]["finished"] == true).then_some(last)
        },
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "not finished; invoked {:?}; logs:\n{}",
            listener.invoked(),
            h.logs()
        )
    });
    assert_eq!(last["fanout"]["shardsDone"], 3, "{last}");
    assert_eq!(last["counters"]["probed"], 6, "{last}");
    assert_eq!(last["counters"]["healthy"], 4, "{last}");
    assert_eq!(
        last["fanout"]["byProcess"],
        json!([{"process": "instance-1", "shards": 3, "probed": 6}])
    );
    let invoked = listener.invoked();
    assert_eq!(invoked.len(), 3, "{invoked:?}");
    for call in &invoked {
        assert_eq!((call.status, call.dequeue_count), (200, 1), "{call:?}");
        let line = call.body["Logs"][0].as_str().unwrap();
        assert!(
            line.starts_with("ProbeShard shard ") && line.contains("probed 2"),
            "{line}"
        );
        assert!(line.ends_with("(delivery 1)"), "{line}");
    }
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { (listener.queue.approximate_length().await.unwrap() == 0).then_some(()) },
    )
    .await
    .expect("every message deleted after its 2xx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_shard_delivered_twice_counts_each_failure_once() {
    let queue = queue_name();
    let h = Handler::spawn(hosted(&queue, 250, 120)).await;
    let up = HttpTarget::status(200);
    let closed = closed_port();
    register(&h, "up", &up.url).await;
    register(&h, "down-1", &format!("http://127.0.0.1:{}/", closed.port)).await;
    register(&h, "down-2", &format!("http://127.0.0.1:{}/", closed.port)).await;
    assert_eq!(h.sweep().await.status, 200);
    let shards = storage_queue(&Azurite::shared().connection_string(), &queue);
    let taken = take_all(&shards, 1).await;
    assert_eq!(taken.len(), 1);

    // The host's form: double-encoded Data, string metadata with the message's fields copied in.
    let first = first_log(&deliver(&h, &taken[0], false).await);
    assert!(
        first.contains("probed 3, healthy 1, unhealthy 2, already counted 0"),
        "{first}"
    );
    let rows_once = h.tables().rows(&h.health_table).await;
    // The docs' form (numeric DequeueCount), as a redelivery after a lost delete.
    let again = first_log(&deliver(&h, &taken[0], true).await);
    assert!(
        again.contains("probed 3, healthy 1, unhealthy 2, already counted 3"),
        "{again}"
    );
    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows, rows_once, "the second delivery wrote nothing");
    for name in ["down-1", "down-2"] {
        let r = rows.iter().find(|r| r["RowKey"] == name).unwrap();
        assert_eq!(r["consecutiveFailures"].as_i64(), Some(1), "{r}");
    }
    assert_eq!(up.hits(), 1, "probed once");
    let last = h.last_sweep().await;
    assert_eq!(last["fanout"]["finished"], true, "{last}");
    assert_eq!(last["counters"]["probed"], 3, "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_late_shards_are_dropped_with_a_2xx_and_probe_nothing() {
    let queue = queue_name();
    let h = Handler::spawn(hosted(&queue, 250, 3)).await;
    let up = HttpTarget::status(200);
    register(&h, "up", &up.url).await;
    let shards = storage_queue(&Azurite::shared().connection_string(), &queue);
    assert_eq!(h.sweep().await.status, 200);
    let first = take_all(&shards, 1).await.remove(0);
    let second_tick = h.sweep().await;
    assert_eq!(second_tick.status, 200, "{}", second_tick.text);
    // The first sweep, summarised by the second tick: nothing of it ended.
    let last = h.last_sweep().await;
    assert_eq!(
        (
            last["fanout"]["finished"].as_bool(),
            last["fanout"]["shardsDone"].as_u64()
        ),
        (Some(false), Some(0)),
        "{last}"
    );
    let second = take_all(&shards, 1).await.remove(0);

    let stale = first_log(&deliver(&h, &first, false).await);
    assert!(
        stale.ends_with("dropped: a newer sweep has started (delivery 1)"),
        "{stale}"
    );
    // Past the second sweep's 3-second window.
    let deadline = ShardWindow::of(&second.text);
    wait_until_past(deadline).await;
    let late = first_log(&deliver(&h, &second, false).await);
    assert!(
        late.contains("dropped: the sweep's window is over"),
        "{late}"
    );
    assert_eq!(up.hits(), 0);
    assert!(h.tables().rows(&h.health_table).await.is_empty());
    let last = h.last_sweep().await;
    let second_id: Value = serde_json::from_str::<Value>(&second.text).unwrap()["sweep"].clone();
    assert_eq!(last["fanout"]["sweepId"], second_id, "{last}");
    assert_eq!(
        (
            last["fanout"]["finished"].as_bool(),
            last["fanout"]["shardsDropped"].as_u64(),
            last["fanout"]["finishedInWindow"].as_bool()
        ),
        (Some(true), Some(1), Some(false)),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_envelope_or_message_is_a_non_2xx_so_the_host_retries_then_poisons() {
    let h = Handler::spawn(hosted(&queue_name(), 250, 120)).await;
    let r = h
        .invoke("ProbeShard", &json!({"Data": {}, "Metadata": {}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(logs_of(&r.json())[0].contains("Data.shard"), "{}", r.text);
    let not_a_shard = QueueDelivery {
        id: "1",
        pop_receipt: "p",
        dequeue_count: 1,
        text: r#"{"v":9}"#,
    };
    let r = h
        .invoke(
            "ProbeShard",
            &queue_envelope("ProbeShard", "shard", &not_a_shard, false),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        logs_of(&r.json())[0].starts_with("ProbeShard: not a shard"),
        "{}",
        r.text
    );
}

/// A shard message's deadline.
struct ShardWindow;

impl ShardWindow {
    fn of(text: &str) -> chrono::DateTime<chrono::Utc> {
        let message: Value = serde_json::from_str(text).unwrap();
        parse_iso(message["deadline"].as_str().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_is_a_503_so_the_host_delivers_the_shard_again() {
    let azurite = Azurite::private();
    let queue = queue_name();
    let cfg = HandlerConfig::with_storage(Mode::CustomHandler, &azurite.connection_string())
        .env("SWEEP_QUEUE", &queue)
        .env("SWEEP_WINDOW_SECONDS", "120")
        .env("STORAGE_TIMEOUT_MS", "2000");
    let h = Handler::spawn(cfg).await;
    let up = HttpTarget::status(200);
    register(&h, "up", &up.url).await;
    assert_eq!(h.sweep().await.status, 200);
    let shards = storage_queue(&azurite.connection_string(), &queue);
    let message = take_all(&shards, 1).await.remove(0);
    // The tables go away; the queue stays.
    azurite.stop();
    let r = deliver(&h, &message, false).await;
    assert_eq!(r.status, 503, "{}", r.text);
    check_envelope_shape(&r.json());
    let line = logs_of(&r.json()).remove(0);
    assert!(
        line.starts_with("ProbeShard failed (delivery 1): storage unavailable"),
        "{line}"
    );
    assert_eq!(
        up.hits(),
        0,
        "nothing probed without the current sweep's row"
    );
    // Storage back: the same message (delivered again) runs.
    azurite.restart();
    let again = first_log(&deliver(&h, &message, false).await);
    assert!(again.contains("probed 1, healthy 1"), "{again}");
}
