//! Rows written by the recipe's Node.js functions (and other clients) are read correctly.
//!
//! These tests imitate the recipe's Node writer: they write, with the harness's Rust table client,
//! the rows its functions would write, which lets them pin exact values (times, odd Edm types).
//! `recipe.rs` runs the recipe's own `index.js` on Node against the same Azurite.

use crate::harness::*;
use serde_json::{json, Value};

/// Imitates the recipe's ServiceRegistrar: the entity exactly as its `index.js` builds it
/// (@azure/data-tables sends strings unannotated; `partitionKey`/`rowKey` go on the wire as
/// PartitionKey/RowKey), with a fixed time instead of `new Date()`.
fn node_registry_entity(info: &Value) -> Value {
    let now = "2026-11-25T05:00:00.123Z";
    let t = info["serviceType"].as_str().unwrap_or("default");
    json!({
        "PartitionKey": t,
        "RowKey": info["serviceName"],
        "serviceName": info["serviceName"],
        "endpoint": info["endpoint"],
        "healthEndpoint": info.get("healthEndpoint").cloned().unwrap_or(info["endpoint"].clone()),
        "serviceType": t,
        "version": info.get("version").cloned().unwrap_or(json!("1.0.0")),
        "tags": info.get("tags").cloned().unwrap_or(json!([])).to_string(),
        "metadata": info.get("metadata").cloned().unwrap_or(json!({})).to_string(),
        "registeredAt": now,
        "lastHeartbeat": now
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_written_rows_are_discovered() {
    let h = Handler::start().await;
    let t = h.tables();
    t.create_table(&h.registry_table).await;
    t.create_table(&h.health_table).await;

    let recipe = node_registry_entity(&recipe_body());
    t.upsert(&h.registry_table, &recipe).await;
    let other = node_registry_entity(
        &json!({"serviceName": "sql-db", "endpoint": "https://sql.example.com"}),
    );
    t.upsert(&h.registry_table, &other).await;
    // Imitates the recipe's HealthMonitor row: responseTime is a JS number (Int32 on the wire).
    t.upsert(
        &h.health_table,
        &json!({
            "PartitionKey": "api", "RowKey": "test-api", "serviceName": "test-api",
            "status": "healthy", "lastChecked": "2026-11-25T05:05:00.456Z",
            "responseTime": 87, "errorMessage": ""
        }),
    )
    .await;

    let v = h.discover_ok("").await;
    let s = assert_discovery_shape(&v);
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[0],
        json!({
            "serviceName": "test-api",
            "endpoint": "https://test-api.example.com",
            "healthEndpoint": "https://test-api.example.com",
            "serviceType": "api",
            "version": "1.0.0",
            "tags": ["production", "rest-api"],
            "metadata": {"region": "eastus", "port": 443},
            "registeredAt": "2026-11-25T05:00:00.123Z",
            "lastHeartbeat": "2026-11-25T05:00:00.123Z",
            "healthStatus": {"status": "healthy", "lastChecked": "2026-11-25T05:05:00.456Z", "responseTime": 87},
            // Instance fields as a recipe row reads: no instance, the default weight, no TTL.
            "instanceId": null, "weight": 100, "ttlSeconds": null, "expiresAt": null, "expired": false,
            // Declaring no dependencies, its effective status is its own verdict.
            "effectiveStatus": "healthy", "blockedBy": []
        })
    );
    assert_eq!(s[1]["serviceName"], "sql-db");
    assert_eq!(s[1]["serviceType"], "default");
    assert_eq!(s[1]["healthStatus"], Value::Null);

    let v = h.discover_ok("healthyOnly=true").await;
    let s = assert_discovery_shape(&v);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["serviceName"], "test-api");

    // Re-registering a recipe-written service through the handler keeps its registeredAt.
    h.register_ok(&recipe_body()).await;
    let row = t.row(&h.registry_table, "api", "test-api").await.unwrap();
    assert_eq!(row["registeredAt"], "2026-11-25T05:00:00.123Z");
    assert_ne!(row["lastHeartbeat"], "2026-11-25T05:00:00.123Z");
    assert_all_plain_strings(&row);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_rows_with_other_number_and_date_types_still_list() {
    let h = Handler::start().await;
    let t = h.tables();
    t.create_table(&h.registry_table).await;
    t.create_table(&h.health_table).await;
    for n in ["int64", "double", "datetime", "bigint64"] {
        t.upsert(
            &h.registry_table,
            &node_registry_entity(&json!({"serviceName": n, "serviceType": "x", "endpoint": format!("https://{n}.example.com")})),
        )
        .await;
    }
    // A registry row whose dates are Edm.DateTime (written by e.g. a .NET client).
    t.upsert(
        &h.registry_table,
        &json!({
            "PartitionKey": "x", "RowKey": "dated", "serviceName": "dated",
            "endpoint": "https://dated.example.com", "healthEndpoint": "https://dated.example.com",
            "serviceType": "x", "version": "1.0.0", "tags": "[]", "metadata": "{}",
            "registeredAt": "2026-11-25T05:00:00.123Z", "registeredAt@odata.type": "Edm.DateTime",
            "lastHeartbeat": "2026-11-25T05:10:00Z", "lastHeartbeat@odata.type": "Edm.DateTime"
        }),
    )
    .await;
    let base = |n: &str| {
        json!({"PartitionKey": "x", "RowKey": n, "serviceName": n, "status": "healthy",
               "lastChecked": "2026-11-25T05:05:00.000Z", "errorMessage": ""})
    };
    let mut r = base("int64");
    r["responseTime"] = json!("42");
    r["responseTime@odata.type"] = json!("Edm.Int64");
    t.upsert(&h.health_table, &r).await;
    let mut r = base("double");
    r["responseTime"] = json!(12.5);
    r["responseTime@odata.type"] = json!("Edm.Double");
    t.upsert(&h.health_table, &r).await;
    let mut r = base("datetime");
    r["responseTime"] = json!(7);
    r["lastChecked@odata.type"] = json!("Edm.DateTime");
    t.upsert(&h.health_table, &r).await;
    let mut r = base("bigint64");
    r["status"] = json!("unhealthy");
    r["responseTime"] = json!("9007199254740993");
    r["responseTime@odata.type"] = json!("Edm.Int64");
    t.upsert(&h.health_table, &r).await;

    let v = h.discover_ok("serviceType=x").await;
    let s = assert_discovery_shape(&v);
    let names: Vec<&str> = s
        .iter()
        .map(|x| x["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["bigint64", "dated", "datetime", "double", "int64"]
    );
    let by = |n: &str| s.iter().find(|x| x["serviceName"] == n).unwrap().clone();

    let int64 = by("int64");
    assert_eq!(int64["healthStatus"]["status"], "healthy");
    assert_eq!(
        int64["healthStatus"]["responseTime"].as_i64(),
        Some(42),
        "an Edm.Int64 responseTime \"42\" must read as 42: {int64}"
    );
    let double = by("double");
    assert_eq!(double["healthStatus"]["status"], "healthy");
    let d = double["healthStatus"]["responseTime"]
        .as_f64()
        .unwrap_or_else(|| panic!("a Double responseTime must read as a number: {double}"));
    assert!((12.0..=13.0).contains(&d), "{double}");
    let dt = by("datetime");
    assert_eq!(dt["healthStatus"]["responseTime"], 7);
    parse_iso(
        dt["healthStatus"]["lastChecked"]
            .as_str()
            .expect("lastChecked string"),
    );
    let dated = by("dated");
    parse_iso(dated["registeredAt"].as_str().expect("registeredAt string"));
    parse_iso(
        dated["lastHeartbeat"]
            .as_str()
            .expect("lastHeartbeat string"),
    );
    assert_eq!(dated["healthStatus"], Value::Null);
    let big = by("bigint64");
    assert_eq!(big["healthStatus"]["status"], "unhealthy");

    let v = h.discover_ok("serviceType=x&healthyOnly=true").await;
    let names: Vec<String> = assert_discovery_shape(&v)
        .iter()
        .map(|x| x["serviceName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["datetime", "double", "int64"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_tolerates_rows_from_other_clients() {
    let h = Handler::start_with(&[("HEALTH_PROBE_TIMEOUT_MS", "1000")]).await;
    let ok = HttpTarget::status(200);
    let t = h.tables();
    t.create_table(&h.registry_table).await;
    // No healthEndpoint property: the recipe's checker falls back to endpoint.
    let mut no_he = node_registry_entity(
        &json!({"serviceName": "nohe", "serviceType": "x", "endpoint": ok.url}),
    );
    no_he.as_object_mut().unwrap().remove("healthEndpoint");
    t.upsert(&h.registry_table, &no_he).await;
    // A healthEndpoint that is not a URL at all.
    let mut garbage = node_registry_entity(
        &json!({"serviceName": "garbage", "serviceType": "x", "endpoint": "https://g.example.com"}),
    );
    garbage["healthEndpoint"] = json!("not a url");
    t.upsert(&h.registry_table, &garbage).await;

    let r = h.sweep().await;
    assert_eq!(
        r.status, 200,
        "one bad row must not fail the sweep: {}",
        r.text
    );
    let v = r.json();
    let SweepReport {
        probed: p,
        healthy: hh,
        unhealthy: u,
        ..
    } = sweep_report(&logs_of(&v)).expect("summary line");
    assert_eq!((p, hh, u), (2, 1, 1), "{v}");
    let nohe = t
        .row(&h.health_table, "x", "nohe")
        .await
        .expect("row for nohe");
    assert_eq!(nohe["status"], "healthy", "{nohe}");
    assert!(ok.hits() >= 1);
    let g = t
        .row(&h.health_table, "x", "garbage")
        .await
        .expect("row for garbage");
    assert_eq!(g["status"], "unhealthy", "{g}");
    assert!(!g["errorMessage"].as_str().unwrap_or("").is_empty(), "{g}");
}
