//! The recent-transitions row against Azurite: a write lands only on the version its writer read,
//! so shards of one fanned-out sweep that finish side by side merge their entries instead of the
//! last one overwriting the others'.

use crate::harness::{library_store, short_id, Azurite};
use serde_json::{json, Value};
use service_registry::store::Store;

fn store_for(connection_string: &str) -> Store {
    let state_table = format!("st{}", short_id().to_lowercase());
    library_store(connection_string, &[("STATE_TABLE", &state_table)])
}

fn ids(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_write_on_a_version_another_writer_replaced_is_refused_and_nothing_is_lost() {
    let azurite = Azurite::shared();
    let store = store_for(&azurite.connection_string());

    // Two shards read the list before either writes: no row yet.
    let first = store.recent_transitions_row().await.unwrap();
    let second = store.recent_transitions_row().await.unwrap();
    assert!(first.entries.is_empty());
    assert!(store
        .record_recent_transitions(&first, &[json!({"id": "a"})], 100)
        .await
        .unwrap());
    // The second creates the row too: refused, the first's entry stays.
    assert!(!store
        .record_recent_transitions(&second, &[json!({"id": "b"})], 100)
        .await
        .unwrap());
    assert_eq!(ids(&store.recent_transitions().await.unwrap()), ["a"]);

    // Read again, both read the same version; the first write wins, the second is refused.
    let first = store.recent_transitions_row().await.unwrap();
    let second = store.recent_transitions_row().await.unwrap();
    assert!(store
        .record_recent_transitions(&first, &[json!({"id": "c"}), json!({"id": "a"})], 100)
        .await
        .unwrap());
    assert!(!store
        .record_recent_transitions(&second, &[json!({"id": "b"}), json!({"id": "a"})], 100)
        .await
        .unwrap());

    // The refused writer reads again and writes its entry in front of what it finds.
    let again = store.recent_transitions_row().await.unwrap();
    assert_eq!(ids(&again.entries), ["c", "a"]);
    let mut merged = vec![json!({"id": "b"})];
    merged.extend(again.entries.iter().cloned());
    assert!(store
        .record_recent_transitions(&again, &merged, 100)
        .await
        .unwrap());
    assert_eq!(
        ids(&store.recent_transitions().await.unwrap()),
        ["b", "c", "a"]
    );
}
