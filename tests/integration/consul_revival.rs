//! A heartbeat that ends a TTL lapse is a change Consul's clients see (the check turns back from
//! critical), so it writes a new revision even when this process's snapshot was built before the
//! lapse and still shows the registration alive. Without it, an instance that counted the lapse
//! would see the index fall back to the row's old revision.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_after_a_lapse_writes_a_revision_though_the_snapshot_predates_it() {
    let h = Handler::start_consul_anonymous().await;
    let key = json!({"serviceName": "rev", "serviceType": "api", "instanceId": "a"});
    let mut body = key.clone();
    body["endpoint"] = json!("http://127.0.0.1:9/");
    body["ttlSeconds"] = json!(5);
    h.register_ok(&body).await;
    // A Consul read builds this process's snapshot while the registration is alive.
    let r = h.request(Method::GET, "/v1/health/service/rev", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = h
        .tables()
        .row(&h.registry_table, "api", "rev:a")
        .await
        .unwrap();
    let before: u64 = row["revision"].as_str().unwrap().parse().unwrap();
    let heartbeat = row["lastHeartbeat"].as_str().unwrap().to_owned();

    // No read in between: the snapshot still shows it alive when the heartbeat comes.
    wait_until_past_stored(&heartbeat, chrono::Duration::seconds(5)).await;
    let r = h.heartbeat(&key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = h
        .tables()
        .row(&h.registry_table, "api", "rev:a")
        .await
        .unwrap();
    let after: u64 = row["revision"].as_str().unwrap().parse().unwrap();
    assert!(
        after > before,
        "revival wrote no revision: {after} <= {before}"
    );

    // A heartbeat while alive writes none.
    let r = h.heartbeat(&key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = h
        .tables()
        .row(&h.registry_table, "api", "rev:a")
        .await
        .unwrap();
    assert_eq!(
        row["revision"].as_str().unwrap().parse::<u64>().unwrap(),
        after
    );
}
