//! Storage round trips per API request, counted by a proxy in front of Azurite: where storage is
//! the bottleneck, these counts are the registration and heartbeat rates.

use crate::harness::*;
use serde_json::json;

/// A handler whose storage traffic all goes through a counting proxy, started once its
/// background table creation is done (so what follows is request-path traffic only).
async fn counted_handler() -> (Handler, CountingProxy) {
    counted_handler_with(&[]).await
}

async fn counted_handler_with(env: &[(&str, &str)]) -> (Handler, CountingProxy) {
    let proxy = CountingProxy::start(Azurite::shared().port).await;
    (Handler::behind(&proxy, env).await, proxy)
}

fn body(name: &str, version: &str) -> serde_json::Value {
    json!({"serviceName": name, "serviceType": "api", "endpoint": "http://127.0.0.1:9/",
           "version": version})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_registration_is_one_insert_and_a_re_registration_a_read_and_a_replace() {
    let (h, proxy) = counted_handler().await;
    let registry = &h.registry_table;
    let point = format!("/{registry}(PartitionKey='api',RowKey='orders')");

    let before = proxy.requests().len();
    h.register_ok(&body("orders", "1.0.0")).await;
    assert_eq!(proxy.since(before), vec![format!("POST /{registry}")]);
    let first = h.tables().row(registry, "api", "orders").await.unwrap();

    let before = proxy.requests().len();
    h.register_ok(&body("orders", "1.1.0")).await;
    assert_eq!(
        proxy.since(before),
        vec![format!("GET {point}"), format!("PUT {point}")]
    );
    let second = h.tables().row(registry, "api", "orders").await.unwrap();
    assert_eq!(second["version"], "1.1.0");
    assert_eq!(second["registeredAt"], first["registeredAt"]);

    // One small write: a merge of `lastHeartbeat`.
    let before = proxy.requests().len();
    let r = h
        .heartbeat(&json!({"serviceName": "orders", "serviceType": "api"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(proxy.since(before), vec![format!("MERGE {point}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_this_process_has_not_seen_costs_one_refused_insert_more() {
    let (h, proxy) = counted_handler().await;
    let registry = &h.registry_table;
    let point = format!("/{registry}(PartitionKey='api',RowKey='billing')");
    // Written by someone else (another replica, the recipe): this process does not know it.
    h.tables()
        .upsert(
            registry,
            &json!({"PartitionKey": "api", "RowKey": "billing", "serviceName": "billing",
                    "endpoint": "http://127.0.0.1:9/", "serviceType": "api",
                    "registeredAt": "2026-11-25T05:00:00.000Z",
                    "lastHeartbeat": "2026-11-25T05:00:00.000Z"}),
        )
        .await;
    let before = proxy.requests().len();
    h.register_ok(&body("billing", "2.0.0")).await;
    assert_eq!(
        proxy.since(before),
        vec![
            format!("POST /{registry}"),
            format!("GET {point}"),
            format!("PUT {point}")
        ]
    );
    let row = h.tables().row(registry, "api", "billing").await.unwrap();
    assert_eq!(row["registeredAt"], "2026-11-25T05:00:00.000Z");
    assert_eq!(row["version"], "2.0.0");

    // Deleted behind its back: the hint costs one read, then the insert.
    h.tables().delete(registry, "api", "billing").await;
    let before = proxy.requests().len();
    h.register_ok(&body("billing", "2.0.1")).await;
    assert_eq!(
        proxy.since(before),
        vec![format!("GET {point}"), format!("POST /{registry}")]
    );
    let row = h.tables().row(registry, "api", "billing").await.unwrap();
    assert_ne!(row["registeredAt"], "2026-11-25T05:00:00.000Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_ask_for_minimal_metadata_and_read_the_same_rows() {
    let (h, proxy) = counted_handler().await;
    h.register_ok(&body("orders", "1.0.0")).await;
    let sweep = h.sweep().await;
    assert_eq!(sweep.status, 200, "{}", sweep.text);
    let before = proxy.requests().len();
    let v = h.discover_ok("serviceType=api").await;
    let item = &v["services"][0];
    assert_eq!(item["serviceName"], "orders");
    assert_eq!(item["weight"], 100);
    assert!(item["healthStatus"]["responseTime"].is_i64(), "{v}");
    let queries: Vec<(String, String)> = proxy.with_accept()[before..]
        .iter()
        .filter(|(request, _)| request.starts_with("GET") && request.ends_with("()"))
        .cloned()
        .collect();
    assert_eq!(queries.len(), 2, "one query per table: {queries:?}");
    for (request, accept) in &queries {
        assert_eq!(
            accept, "application/json;odata=minimalmetadata",
            "{request}"
        );
    }
}

/// The sweep lease and the last sweep's row live in the state table, so the health rows of 1,000
/// services are one page (Table Storage pages at 1,000 entities): one GET per table per read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_services_health_is_one_page_per_read() {
    let (h, proxy) = counted_handler_with(&[("DISCOVERY_CACHE_TTL_MS", "0")]).await;
    let target = HttpTarget::status(200);
    let rows: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            json!({"PartitionKey": "api", "RowKey": format!("svc-{i:04}"),
                   "serviceName": format!("svc-{i:04}"), "endpoint": target.url,
                   "healthEndpoint": target.url, "serviceType": "api", "version": "1.0.0",
                   "tags": "[]", "metadata": "{}", "registeredAt": "2026-11-25T05:00:00.000Z",
                   "lastHeartbeat": "2026-11-25T05:30:00.000Z"})
        })
        .collect();
    let tables = h.tables();
    tables.upsert_batch(&h.registry_table, &rows).await;
    for round in ["first", "second"] {
        let sweep = h.sweep().await;
        assert_eq!(sweep.status, 200, "{round}: {}", sweep.text);
    }
    assert_eq!(target.hits(), 2000);
    assert_eq!(tables.all_rows(&h.health_table).await.len(), 1000);
    assert_eq!(
        tables.all_rows(&h.state_table).await.len(),
        2,
        "the summary and the recent transitions"
    );

    let reads = |since: usize, table: &str| {
        proxy
            .since(since)
            .into_iter()
            .filter(|r| *r == format!("GET /{table}()"))
            .count()
    };
    let before = proxy.requests().len();
    let v = h.discover_ok("").await;
    assert_eq!(v["count"], 1000);
    assert!(v["services"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["healthStatus"]["status"] == "healthy"));
    assert_eq!(
        (
            reads(before, &h.registry_table),
            reads(before, &h.health_table)
        ),
        (1, 1),
        "one page of each table: {:?}",
        proxy.since(before)
    );
    // The sweep reads them the same way.
    let before = proxy.requests().len();
    assert_eq!(h.sweep().await.status, 200);
    assert_eq!(
        reads(before, &h.health_table),
        1,
        "{:?}",
        proxy.since(before)
    );
}
