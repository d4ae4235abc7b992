//! Health-change events against Azurite's queue service: one CloudEvents message per transition
//! (a target flipped healthy -> unhealthy -> healthy, a registration, a deregistration, an expiry),
//! none on an unchanged sweep, none lost while the queue is down (delivered by the next sweep with
//! the same ids) or when a sweep fails half-way (what it wrote is announced), and the recent
//! transitions `GET /api/Sweep` shows.

use crate::harness::*;
use serde_json::{json, Value};
use service_registry::store::StorageQueue;
use std::time::Duration;

fn queue_name() -> String {
    format!("events-{}", short_id().to_lowercase())
}

/// Takes every visible message off the queue (deleting each), decoded and parsed, in the order
/// received.
async fn drain(queue: &StorageQueue) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let batch = queue.receive(32, Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            return events;
        }
        for message in batch {
            events.push(serde_json::from_str(&message.text).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {}", message.text);
            }));
            assert!(queue.delete(&message).await.unwrap());
        }
    }
}

/// Takes the queue's messages, asserting there is exactly one, and returns it.
async fn drain_one(queue: &StorageQueue) -> Value {
    let mut events = drain(queue).await;
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

/// A handler publishing to `queue`, with thresholds of one probe so each sweep can flip a status.
fn events_config(connection_string: &str, queue: &str) -> HandlerConfig {
    HandlerConfig::with_storage(Mode::CustomHandler, connection_string)
        .env("HEALTH_EVENTS_QUEUE", queue)
        .env("HEALTH_FAILURES_TO_UNHEALTHY", "1")
        .env("HEALTH_SUCCESSES_TO_HEALTHY", "1")
        .env("HEALTH_CIRCUIT_BACKOFF_MS", "1")
        .env("STORAGE_TIMEOUT_MS", "2000")
        .env("HEALTH_EVENTS_PUBLISH_TIMEOUT_MS", "4000")
}

/// Asserts every attribute of one event and returns it.
fn assert_event(event: &Value, kind: &str, from: &str, to: &str, reason: &str) {
    assert_eq!(event["specversion"], "1.0", "{event}");
    assert_eq!(event["type"], kind, "{event}");
    assert_eq!(event["source"], "/service-registry", "{event}");
    assert_eq!(event["subject"], "api:orders/pod-1", "{event}");
    assert_eq!(event["datacontenttype"], "application/json", "{event}");
    let id = event["id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{event}"
    );
    assert_iso_utc(event["time"].as_str().unwrap());
    assert_eq!(
        event["data"],
        json!({
            "serviceType": "api",
            "serviceName": "orders",
            "instanceId": "pod-1",
            "from": from,
            "to": to,
            "effectiveFrom": from,
            "effectiveTo": to,
            "reason": reason,
        }),
        "{event}"
    );
}

fn pod(url: &str) -> Value {
    json!({"serviceName": "orders", "serviceType": "api", "instanceId": "pod-1", "endpoint": url})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_transition_and_none_on_an_unchanged_sweep() {
    let azurite = Azurite::shared();
    let name = queue_name();
    let queue = storage_queue(&azurite.connection_string(), &name);
    let h = Handler::spawn(events_config(&azurite.connection_string(), &name)).await;
    let target = HttpTarget::status(200);
    h.register_ok(&pod(&target.url)).await;

    // The first verdict: the registry learns how the new registration is.
    let first = h.sweep_report().await;
    assert_eq!(
        (first.transitions, first.events_published),
        (1, 1),
        "{first:?}"
    );
    let event = drain_one(&queue).await;
    assert_event(
        &event,
        "registry.instance.registered",
        "absent",
        "healthy",
        "check passed",
    );
    assert_eq!(event["circuit"], "closed");

    // Nothing changed: no event, no outbox, no write of the recent list.
    let same = h.sweep_report().await;
    assert_eq!(
        (same.transitions, same.events_published, same.events_pending),
        (0, 0, 0)
    );
    assert!(drain(&queue).await.is_empty());

    target.set_status(503);
    let down = h.sweep_report().await;
    assert_eq!(
        (down.transitions, down.events_published, down.unhealthy),
        (1, 1, 1),
        "{down:?}"
    );
    let event = drain_one(&queue).await;
    assert_event(
        &event,
        "registry.health.changed",
        "healthy",
        "unhealthy",
        "HTTP 503",
    );
    assert_eq!(event["circuit"], "open");
    let down_id = event["id"].clone();

    target.set_status(200);
    let up = h.sweep_report().await;
    assert_eq!((up.transitions, up.healthy), (1, 1), "{up:?}");
    let event = drain_one(&queue).await;
    assert_event(
        &event,
        "registry.health.changed",
        "unhealthy",
        "healthy",
        "check passed",
    );
    assert_eq!(event["circuit"], "closed");
    assert_ne!(event["id"], down_id);

    // A deregistration: its event waits in the outbox for the next sweep.
    let r = h
        .deregister("serviceType=api&serviceName=orders&instanceId=pod-1")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = h.sweep_report().await;
    assert_eq!(
        (
            after.transitions,
            after.events_published,
            after.events_pending
        ),
        (0, 1, 0)
    );
    let event = drain_one(&queue).await;
    assert_event(
        &event,
        "registry.instance.deregistered",
        "unknown",
        "absent",
        "deregistered",
    );
    assert!(event.get("circuit").is_none(), "{}", event);
    assert!(drain(&queue).await.is_empty());

    // The recent list, newest first, as the dashboard reads it.
    let status = h.sweep_status().await;
    let recent = status["recentTransitions"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = recent
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap(),
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("registry.instance.deregistered", "unknown", "absent"),
            ("registry.health.changed", "unhealthy", "healthy"),
            ("registry.health.changed", "healthy", "unhealthy"),
            ("registry.instance.registered", "absent", "healthy"),
        ],
        "{status}"
    );
    assert_eq!(recent[2]["id"], down_id);
    assert_eq!(recent[2]["reason"], "HTTP 503");
    assert_eq!(recent[2]["subject"], "api:orders/pod-1");
    // The row is the one the handler keeps; nothing is left in the outbox.
    let rows = h.tables().all_rows(&h.state_table).await;
    assert!(
        rows.iter().all(|r| r["PartitionKey"] != "~outbox"),
        "{rows:?}"
    );
    let log = h
        .wait_for_log("health transition", Duration::from_secs(5))
        .await;
    assert!(log.contains("registry.health.changed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_the_outbox_while_the_queue_is_down_and_keep_their_ids() {
    let azurite = Azurite::private();
    let name = queue_name();
    let queue = storage_queue(&azurite.connection_string(), &name);
    let h = Handler::spawn(events_config(&azurite.connection_string(), &name)).await;
    let target = HttpTarget::status(200);
    h.register_ok(&pod(&target.url)).await;
    assert_eq!(h.sweep_report().await.events_published, 1);
    assert_eq!(drain(&queue).await.len(), 1);

    azurite.stop_queue();
    target.set_status(503);
    let down = h.sweep_report().await;
    // The verdict is written whatever the queue does; the event waits, counted.
    assert_eq!((down.unhealthy, down.transitions), (1, 1), "{down:?}");
    assert_eq!(
        (down.events_published, down.events_pending),
        (0, 1),
        "{down:?}"
    );
    assert!(down.events_publish_failures >= 1, "{down:?}");
    let rows = azurite.tables().rows(&h.health_table).await;
    assert_eq!(rows[0]["status"], "unhealthy", "{rows:?}");
    let outbox: Vec<Value> = azurite
        .tables()
        .all_rows(&h.state_table)
        .await
        .into_iter()
        .filter(|r| r["PartitionKey"] == "~outbox")
        .collect();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let kept_id = outbox[0]["RowKey"].clone();

    azurite.restart_queue();
    // Nothing changes in this sweep: it delivers what waited.
    let next = h.sweep_report().await;
    assert_eq!(
        (next.transitions, next.events_published, next.events_pending),
        (0, 1, 0),
        "{next:?}"
    );
    let event = drain_one(&queue).await;
    assert_event(
        &event,
        "registry.health.changed",
        "healthy",
        "unhealthy",
        "HTTP 503",
    );
    assert_eq!(event["id"], kept_id);
    let recent = h.sweep_status().await["recentTransitions"].clone();
    assert_eq!(recent[0]["id"], kept_id, "{recent}");
    assert_eq!(recent.as_array().unwrap().len(), 2, "listed once: {recent}");
    let rows = azurite.tables().all_rows(&h.state_table).await;
    assert!(
        rows.iter().all(|r| r["PartitionKey"] != "~outbox"),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_removal_is_an_event() {
    let azurite = Azurite::shared();
    let name = queue_name();
    let queue = storage_queue(&azurite.connection_string(), &name);
    let cfg = events_config(&azurite.connection_string(), &name)
        .env("DEREGISTER_EXPIRED_AFTER_SECONDS", "0");
    let h = Handler::spawn(cfg).await;
    let target = HttpTarget::status(200);
    let mut body = pod(&target.url);
    body["ttlSeconds"] = json!(5);
    h.register_ok(&body).await;
    assert_eq!(h.sweep_report().await.transitions, 1);
    drain(&queue).await;
    let rows = h.tables().rows(&h.registry_table).await;
    let heartbeat = rows[0]["lastHeartbeat"].as_str().unwrap();
    wait_until_past_stored(heartbeat, chrono::Duration::milliseconds(5_100)).await;
    let report = h.sweep_report().await;
    assert_eq!(
        (report.deleted_expired, report.transitions),
        (1, 1),
        "{report:?}"
    );
    let event = drain_one(&queue).await;
    assert_event(
        &event,
        "registry.instance.expired",
        "healthy",
        "absent",
        "TTL lapsed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_that_fails_half_way_still_announces_what_it_wrote() {
    let azurite = Azurite::shared();
    let name = queue_name();
    let queue = storage_queue(&azurite.connection_string(), &name);
    // Tables through a proxy that can refuse one partition's writes; the queue straight.
    let proxy = CountingProxy::start(azurite.port).await;
    let connection = format!(
        "{}QueueEndpoint={};",
        connection_string_for_port(proxy.port),
        azurite.queue_endpoint()
    );
    let h = Handler::spawn(events_config(&connection, &name)).await;
    let (written, refused) = (HttpTarget::status(200), HttpTarget::status(200));
    h.register_ok(&pod(&written.url)).await;
    h.register_ok(
        &json!({"serviceName": "ledger", "serviceType": "refusedtype",
                          "instanceId": "pod-1", "endpoint": refused.url}),
    )
    .await;

    // The refused partition's verdicts cannot be written: the sweep fails, but api's verdict was
    // written, and its transition is announced now (the next sweep reads it as the prior state).
    proxy.fail_writes_to(Some("refusedtype"));
    let r = h.sweep().await;
    assert_eq!(r.status, 500, "{}", r.text);
    let event = drain_one(&queue).await;
    assert_event(
        &event,
        "registry.instance.registered",
        "absent",
        "healthy",
        "check passed",
    );
    let health = h.tables().rows(&h.health_table).await;
    let keys: Vec<(&str, &str)> = health
        .iter()
        .map(|r| {
            (
                r["PartitionKey"].as_str().unwrap(),
                r["serviceName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, [("api", "orders")], "{health:?}");

    // Storage back: the refused one's first verdict is its own event, and api's is not repeated.
    proxy.fail_writes_to(None);
    let report = h.sweep_report().await;
    assert_eq!(report.transitions, 1, "{report:?}");
    let event = drain_one(&queue).await;
    assert_eq!(event["subject"], "refusedtype:ledger/pod-1", "{}", event);
    assert_eq!(event["type"], "registry.instance.registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_grid_topic_receives_the_batch_with_its_key_and_media_type() {
    use crate::harness::event_grid::EventGridTopic;
    let topic = EventGridTopic::start("dG9waWMta2V5").await;
    let h = Handler::start_with(&[
        ("HEALTH_EVENTS_TOPIC_ENDPOINT", &topic.endpoint),
        ("HEALTH_EVENTS_TOPIC_KEY", "dG9waWMta2V5"),
    ])
    .await;
    let one = HttpTarget::status(200);
    let two = HttpTarget::status(503);
    h.register_ok(&pod(&one.url)).await;
    let mut other = pod(&two.url);
    other["instanceId"] = json!("pod-2");
    h.register_ok(&other).await;
    let report = h.sweep_report().await;
    assert_eq!(
        (report.transitions, report.events_published),
        (2, 2),
        "{report:?}"
    );
    let batches = topic.accepted();
    assert_eq!(batches.len(), 1, "one batch for the sweep: {batches:?}");
    let mut subjects: Vec<&str> = batches[0]
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["api:orders/pod-1", "api:orders/pod-2"]);
    let first = batches[0]
        .iter()
        .find(|e| e["subject"] == "api:orders/pod-1")
        .unwrap();
    assert_event(
        first,
        "registry.instance.registered",
        "absent",
        "healthy",
        "check passed",
    );
    let (headers, query) = &topic.requests()[0];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("aeg-sas-key"), Some("dG9waWMta2V5"));
    assert_eq!(
        header("content-type"),
        Some("application/cloudevents-batch+json; charset=utf-8")
    );
    assert_eq!(header("authorization"), None);
    assert_eq!(query, "api-version=2018-01-01");
    assert!(
        !h.logs().contains("dG9waWMta2V5"),
        "the key is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_refuses_the_key_keeps_the_events_pending_and_counts_the_failures() {
    use crate::harness::event_grid::EventGridTopic;
    let topic = EventGridTopic::start("right").await;
    let h = Handler::start_with(&[
        ("HEALTH_EVENTS_TOPIC_ENDPOINT", &topic.endpoint),
        ("HEALTH_EVENTS_TOPIC_KEY", "wrong"),
    ])
    .await;
    let target = HttpTarget::status(200);
    h.register_ok(&pod(&target.url)).await;
    let report = h.sweep_report().await;
    assert_eq!(
        (report.events_published, report.events_pending),
        (0, 1),
        "{report:?}"
    );
    assert_eq!(
        report.events_publish_failures, 3,
        "three attempts: {report:?}"
    );
    assert_eq!(
        report.healthy, 1,
        "the verdict is written either way: {report:?}"
    );
    assert!(topic.accepted().is_empty());
    assert_eq!(h.last_sweep().await["counters"]["events_pending"], 1);
}

/// A dependency's failure reaches its dependent's events: the dependent's own check still passes,
/// so its event carries the same own status on both sides, the effective statuses around it and
/// the blocking chain; the dependency's own event carries its dependents' view too. Recovery
/// announces itself the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_failing_and_recovering_is_an_event_for_its_dependent() {
    let azurite = Azurite::shared();
    let name = queue_name();
    let queue = storage_queue(&azurite.connection_string(), &name);
    let h = Handler::spawn(events_config(&azurite.connection_string(), &name)).await;
    let db = HttpTarget::status(200);
    let api = HttpTarget::status(200);
    let db_type = format!("db{}", short_id().to_lowercase());
    let db_key = format!("{db_type}:orders-sql");
    h.register_ok(
        &json!({"serviceName": "orders-sql", "serviceType": db_type, "endpoint": db.url}),
    )
    .await;
    h.register_ok(
        &json!({"serviceName": "orders", "serviceType": "api", "instanceId": "pod-1",
        "endpoint": api.url, "dependsOn": [db_key]}),
    )
    .await;
    let first = h.sweep_report().await;
    assert!(first.transitions >= 2, "{first:?}");
    drain(&queue).await;

    db.set_status(503);
    h.sweep_report().await;
    let events = drain(&queue).await;
    let of = |subject: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["subject"] == subject).collect()
    };
    let db_events = of(&db_key);
    assert_eq!(db_events.len(), 1, "{events:?}");
    assert_eq!(db_events[0]["data"]["from"], "healthy");
    assert_eq!(db_events[0]["data"]["to"], "unhealthy");
    assert_eq!(db_events[0]["data"]["effectiveTo"], "unhealthy");
    let api_events = of("api:orders/pod-1");
    assert_eq!(api_events.len(), 1, "{events:?}");
    assert_eq!(api_events[0]["type"], "registry.health.changed");
    assert_eq!(
        api_events[0]["data"],
        json!({"serviceType": "api", "serviceName": "orders", "instanceId": "pod-1",
               "from": "healthy", "to": "healthy",
               "effectiveFrom": "healthy", "effectiveTo": "unhealthy",
               "reason": format!("blocked by {db_key}")})
    );

    // Unchanged: nothing more.
    let same = h.sweep_report().await;
    assert_eq!(same.transitions, 0, "{same:?}");
    assert!(drain(&queue).await.is_empty());

    db.set_status(200);
    h.sweep_report().await;
    let events = drain(&queue).await;
    let api_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["subject"] == "api:orders/pod-1")
        .collect();
    assert_eq!(api_events.len(), 1, "{events:?}");
    assert_eq!(api_events[0]["data"]["effectiveFrom"], "unhealthy");
    assert_eq!(api_events[0]["data"]["effectiveTo"], "healthy");
    assert_eq!(api_events[0]["data"]["reason"], "dependencies recovered");
}
