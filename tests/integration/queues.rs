//! The store's Storage Queue client against Azurite's queue service: what the sweep's shards and
//! the health-change events rely on (base64 text as the host's queue trigger reads it, visibility,
//! dequeue counts, renewal, at-least-once deletes, a vanished queue recreated, an outage as a
//! retryable `StoreError`).

use crate::harness::{library_store, short_id, Azurite};
use base64::Engine as _;
use service_registry::store::{Store, StoreError};
use std::time::Duration;

fn store_for(connection_string: &str) -> Store {
    library_store(connection_string, &[])
}

fn queue_name() -> String {
    format!("q{}", short_id().to_lowercase())
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn messages_travel_base64_and_come_back_once_per_visibility_window() {
    let azurite = Azurite::shared();
    let store = store_for(&azurite.connection_string());
    let queue = store.queue(&queue_name()).expect("a queue endpoint");
    // Never created: the first put creates it.
    queue
        .put(r#"{"shard":1}"#, MINUTE, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(queue.approximate_length().await.unwrap(), 1);

    let mut taken = queue.receive(32, Duration::from_secs(1)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].text, r#"{"shard":1}"#);
    assert_eq!(taken[0].dequeue_count, 1);
    // Invisible to a second receiver while held.
    assert!(queue.receive(32, MINUTE).await.unwrap().is_empty());

    // Renewed: still invisible after the first window would have ended; the receipt changes.
    let before = taken[0].pop_receipt.clone();
    assert!(queue.renew(&mut taken[0], MINUTE).await.unwrap());
    assert_ne!(taken[0].pop_receipt, before);
    // Past the first window (1 s): a renewal is only visible as an absence, so this waits.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(queue.receive(32, MINUTE).await.unwrap().is_empty());

    // Deleted with the renewed receipt; a second delete finds nothing.
    assert!(queue.delete(&taken[0]).await.unwrap());
    assert!(!queue.delete(&taken[0]).await.unwrap());
    assert_eq!(queue.approximate_length().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unrenewed_message_returns_with_its_dequeue_count_raised() {
    let azurite = Azurite::shared();
    let store = store_for(&azurite.connection_string());
    let queue = store.queue(&queue_name()).unwrap();
    queue.create_if_missing().await.unwrap();
    queue.create_if_missing().await.unwrap();
    queue.put("plain", MINUTE, Duration::ZERO).await.unwrap();

    let first = queue.receive(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(first[0].dequeue_count, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let again = loop {
        let got = queue.receive(1, MINUTE).await.unwrap();
        if let Some(message) = got.into_iter().next() {
            break message;
        }
        assert!(std::time::Instant::now() < deadline, "never visible again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(again.id, first[0].id);
    assert_eq!(again.text, "plain");
    assert_eq!(again.dequeue_count, 2);
    // The first receiver's receipt is stale now: its delete removes nothing.
    assert!(!queue.delete(&first[0]).await.unwrap());
    assert!(queue.delete(&again).await.unwrap());
}

#[tokio::test]
async fn a_delayed_message_stays_hidden_and_text_is_base64_on_the_wire() {
    let azurite = Azurite::shared();
    let store = store_for(&azurite.connection_string());
    let queue = store.queue(&queue_name()).unwrap();
    queue
        .put("later", MINUTE, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(queue.approximate_length().await.unwrap(), 1);
    assert!(queue.receive(32, MINUTE).await.unwrap().is_empty());

    // A message another writer put as base64 of UTF-8 (the host's output binding) reads as text.
    let encoded = base64::engine::general_purpose::STANDARD.encode("{\"from\":\"host\"}");
    assert_eq!(encoded, "eyJmcm9tIjoiaG9zdCJ9");
    queue
        .put("{\"from\":\"host\"}", MINUTE, Duration::ZERO)
        .await
        .unwrap();
    let got = queue.receive(32, MINUTE).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "{\"from\":\"host\"}");
}

#[tokio::test]
async fn a_stopped_queue_service_is_unavailable_and_messages_survive_a_restart() {
    let azurite = Azurite::private();
    let store = store_for(&azurite.connection_string());
    let queue = store.queue(&queue_name()).unwrap();
    queue.put("kept", MINUTE, Duration::ZERO).await.unwrap();

    azurite.stop_queue();
    let err = queue
        .put("lost?", MINUTE, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let err = queue.receive(1, MINUTE).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");

    azurite.restart_queue();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let got = loop {
        match queue.receive(32, MINUTE).await {
            Ok(got) => break got,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("queue service never came back: {e:?}"),
        }
    };
    assert_eq!(
        got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
}

#[test]
fn a_connection_string_without_a_queue_endpoint_has_no_queue() {
    let azurite = Azurite::shared();
    let table_only = crate::harness::connection_string_for_port(azurite.port);
    assert!(store_for(&table_only).queue("anything").is_none());
    assert!(store_for("UseDevelopmentStorage=true")
        .queue("anything")
        .is_some());
}
