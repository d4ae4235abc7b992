//! GET /api/ServiceDiscovery: filters, response shape, healthyOnly, injection, paging,
//! tolerant reading of rows written by other clients.

use crate::harness::*;
use serde_json::{json, Value};

fn ids(services: &[Value]) -> Vec<String> {
    services
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["serviceType"].as_str().unwrap_or("?"),
                s["serviceName"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

async fn seed_four(h: &Handler) {
    for (t, n) in [
        ("db", "alpha"),
        ("api", "beta"),
        ("cache", "gamma"),
        ("api", "alpha"),
    ] {
        h.register_ok(&json!({
            "serviceName": n,
            "serviceType": t,
            "endpoint": format!("https://{n}.{t}.example.com"),
            "version": "3.1.4",
            "tags": [t, n],
            "metadata": {"owner": n, "n": 1}
        }))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_ordering() {
    let h = Handler::start().await;
    seed_four(&h).await;

    let all = h.discover_ok("").await;
    let s = assert_discovery_shape(&all);
    assert_eq!(
        ids(&s),
        vec!["api:alpha", "api:beta", "cache:gamma", "db:alpha"],
        "all services, ordered by (serviceType, serviceName)"
    );
    let first = &s[0];
    assert_eq!(first["serviceName"], "alpha");
    assert_eq!(first["serviceType"], "api");
    assert_eq!(first["endpoint"], "https://alpha.api.example.com");
    assert_eq!(first["healthEndpoint"], "https://alpha.api.example.com");
    assert_eq!(first["version"], "3.1.4");
    assert_eq!(first["tags"], json!(["api", "alpha"]));
    assert_eq!(first["metadata"], json!({"owner": "alpha", "n": 1}));
    assert_eq!(first["healthStatus"], Value::Null);
    assert_iso_utc(first["registeredAt"].as_str().unwrap());
    assert_iso_utc(first["lastHeartbeat"].as_str().unwrap());
    // Values equal what is stored.
    let row = h
        .tables()
        .row(&h.registry_table, "api", "alpha")
        .await
        .unwrap();
    assert_eq!(first["registeredAt"], row["registeredAt"]);
    assert_eq!(first["lastHeartbeat"], row["lastHeartbeat"]);

    let by_type = h.discover_ok("serviceType=api").await;
    assert_eq!(
        ids(&assert_discovery_shape(&by_type)),
        vec!["api:alpha", "api:beta"]
    );

    let by_both = h.discover_ok("serviceType=api&serviceName=beta").await;
    assert_eq!(ids(&assert_discovery_shape(&by_both)), vec!["api:beta"]);

    let by_name = h.discover_ok("serviceName=alpha").await;
    assert_eq!(
        ids(&assert_discovery_shape(&by_name)),
        vec!["api:alpha", "db:alpha"]
    );

    let none = h.discover_ok("serviceType=nothing").await;
    assert_eq!(assert_discovery_shape(&none).len(), 0);
    assert_eq!(none["count"], 0);
    assert_eq!(none["services"], json!([]));

    let no_match = h.discover_ok("serviceType=api&serviceName=gamma").await;
    assert_eq!(assert_discovery_shape(&no_match).len(), 0);

    // Empty value = absent.
    let empty = h.discover_ok("serviceType=&serviceName=").await;
    assert_eq!(assert_discovery_shape(&empty).len(), 4);

    // healthyOnly=false (any case) = everything.
    for q in [
        "healthyOnly=false",
        "healthyOnly=FALSE",
        "healthyOnly=False",
    ] {
        let v = h.discover_ok(q).await;
        assert_eq!(assert_discovery_shape(&v).len(), 4, "{q}");
    }

    // Other params (the function key) are ignored.
    let with_code = h.discover_ok("code=abc123&serviceType=cache").await;
    assert_eq!(
        ids(&assert_discovery_shape(&with_code)),
        vec!["cache:gamma"]
    );
    let with_junk = h.discover_ok("foo=bar&code=").await;
    assert_eq!(assert_discovery_shape(&with_junk).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_only_uses_health_rows() {
    let h = Handler::start().await;
    seed_four(&h).await;
    let tables = h.tables();
    tables.create_table(&h.health_table).await;
    let checked = "2026-11-25T06:00:00.123Z";
    // Imitates the recipe's HealthMonitor writer: its five properties only.
    for (t, n, status, rt) in [
        ("api", "alpha", "healthy", 12),
        ("api", "beta", "unhealthy", 0),
        ("db", "alpha", "healthy", 250),
    ] {
        tables
            .upsert(
                &h.health_table,
                &json!({
                    "PartitionKey": t, "RowKey": n, "serviceName": n,
                    "status": status, "lastChecked": checked, "responseTime": rt,
                    "errorMessage": if status == "healthy" { "" } else { "HTTP 503" }
                }),
            )
            .await;
    }

    let all = h.discover_ok("").await;
    let s = assert_discovery_shape(&all);
    assert_eq!(s.len(), 4);
    let by_id: std::collections::HashMap<String, &Value> =
        ids(&s).into_iter().zip(s.iter()).collect();
    assert_eq!(
        by_id["api:alpha"]["healthStatus"],
        json!({"status": "healthy", "lastChecked": checked, "responseTime": 12})
    );
    // A recipe row's reason is shown too; an empty one (a passing probe) is not.
    assert_eq!(
        by_id["api:beta"]["healthStatus"],
        json!({"status": "unhealthy", "lastChecked": checked, "responseTime": 0, "errorMessage": "HTTP 503"})
    );
    assert_eq!(
        by_id["db:alpha"]["healthStatus"],
        json!({"status": "healthy", "lastChecked": checked, "responseTime": 250})
    );
    assert_eq!(by_id["cache:gamma"]["healthStatus"], Value::Null);

    for q in ["healthyOnly=true", "healthyOnly=TRUE", "healthyOnly=True"] {
        let v = h.discover_ok(q).await;
        assert_eq!(
            ids(&assert_discovery_shape(&v)),
            vec!["api:alpha", "db:alpha"],
            "{q}"
        );
    }
    let v = h.discover_ok("healthyOnly=true&serviceType=api").await;
    assert_eq!(ids(&assert_discovery_shape(&v)), vec!["api:alpha"]);
    let v = h
        .discover_ok("healthyOnly=true&serviceType=api&serviceName=beta")
        .await;
    assert_eq!(assert_discovery_shape(&v).len(), 0);
    let v = h.discover_ok("healthyOnly=true&serviceName=alpha").await;
    assert_eq!(
        ids(&assert_discovery_shape(&v)),
        vec!["api:alpha", "db:alpha"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_queries_are_rejected() {
    let h = Handler::start().await;
    seed_four(&h).await;
    let cases: &[(&str, &str)] = &[
        (
            "serviceType=x%27%20or%20PartitionKey%20ne%20%27",
            "serviceType",
        ),
        ("serviceType=x' or PartitionKey ne '", "serviceType"),
        ("serviceName=x%27%20or%20RowKey%20ne%20%27", "serviceName"),
        ("serviceType=api&serviceName=a%27b", "serviceName"),
        ("serviceType=a%2Fb", "serviceType"),
        ("serviceType=a%23b", "serviceType"),
        ("serviceName=a%3Fb", "serviceName"),
        ("serviceName=a%01b", "serviceName"),
        ("serviceName=-abc", "serviceName"),
        ("serviceType=a%20b", "serviceType"),
        ("healthyOnly=maybe", "healthyOnly"),
        ("healthyOnly=1", "healthyOnly"),
        ("healthyOnly=yes", "healthyOnly"),
    ];
    for (q, field) in cases {
        let r = h.discover(q).await;
        assert_eq!(
            r.status, 400,
            "?{q} must be rejected with 400 (field {field}), got {} {}",
            r.status, r.text
        );
        let v = r.assert_error(400, Some(field));
        assert!(
            v.get("services").is_none(),
            "an error must never list services: {v}"
        );
    }
    let long = format!("serviceName={}", "n".repeat(129));
    h.discover(&long)
        .await
        .assert_error(400, Some("serviceName"));
}

/// Imitates the recipe's Node writer: a registry row as its ServiceRegistrar writes one (every
/// property a string; tags and metadata as JSON text, which lets a test write malformed text).
fn recipe_row(t: &str, n: &str, tags: &str, metadata: &str) -> Value {
    json!({
        "PartitionKey": t, "RowKey": n,
        "serviceName": n,
        "endpoint": format!("https://{n}.example.com"),
        "healthEndpoint": format!("https://{n}.example.com/health"),
        "serviceType": t,
        "version": "1.0.0",
        "tags": tags,
        "metadata": metadata,
        "registeredAt": "2026-11-25T05:00:00.000Z",
        "lastHeartbeat": "2026-11-25T05:30:00.000Z"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_services_all_come_back() {
    // Health rows are written straight to the table between two discoveries: with the read cache on,
    // the second would (by design) see the first's health read for up to its TTL.
    let h = Handler::start_with(&[("DISCOVERY_CACHE_TTL_MS", "0")]).await;
    let tables = h.tables();
    tables.create_table(&h.registry_table).await;
    let types = ["api", "cache", "db", "queue", "web"];
    let mut rows = Vec::with_capacity(5000);
    for t in types {
        for i in 0..1000 {
            rows.push(recipe_row(
                t,
                &format!("svc-{i:04}"),
                "[\"bulk\"]",
                "{\"i\":1}",
            ));
        }
    }
    tables.upsert_batch(&h.registry_table, &rows).await;
    assert_eq!(tables.rows(&h.registry_table).await.len(), 5000, "seeding");

    let started = std::time::Instant::now();
    let v = h.discover_ok("").await;
    let elapsed = started.elapsed();
    let s = assert_discovery_shape(&v);
    assert_eq!(v["count"], 5000);
    assert_eq!(s.len(), 5000);
    let got = ids(&s);
    let mut expected: Vec<String> = types
        .iter()
        .flat_map(|t| (0..1000).map(move |i| format!("{t}:svc-{i:04}")))
        .collect();
    expected.sort();
    assert_eq!(
        got, expected,
        "all 5,000 services in (serviceType, serviceName) order"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "listing 5,000 services took {elapsed:?}"
    );
    assert_eq!(s[0]["tags"], json!(["bulk"]));

    let v = h.discover_ok("serviceType=db").await;
    assert_eq!(v["count"], 1000);

    // healthyOnly over 5,000 services, half of them healthy (one read of the health table,
    // not one round trip per service).
    tables.create_table(&h.health_table).await;
    let health: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"], "serviceName": r["serviceName"],
                "status": if i % 2 == 0 { "healthy" } else { "unhealthy" },
                "lastChecked": "2026-11-25T05:05:00.000Z", "responseTime": 5, "errorMessage": ""
            })
        })
        .collect();
    tables.upsert_batch(&h.health_table, &health).await;
    let started = std::time::Instant::now();
    let v = h.discover_ok("healthyOnly=true").await;
    let elapsed = started.elapsed();
    let s = assert_discovery_shape(&v);
    assert_eq!(v["count"], 2500);
    assert!(s.iter().all(|x| x["healthStatus"]["status"] == "healthy"));
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "healthyOnly over 5,000 services took {elapsed:?}"
    );
    let v = h.discover_ok("").await;
    let s = assert_discovery_shape(&v);
    assert!(s.iter().all(|x| x["healthStatus"].is_object()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tags_and_metadata_still_listed() {
    let h = Handler::start().await;
    let tables = h.tables();
    tables.create_table(&h.registry_table).await;
    tables
        .upsert(
            &h.registry_table,
            &recipe_row("api", "broken", "not json [", "{oops"),
        )
        .await;
    tables
        .upsert(
            &h.registry_table,
            &recipe_row("api", "wrongtypes", "{\"a\":1}", "[1,2]"),
        )
        .await;
    tables
        .upsert(
            &h.registry_table,
            &recipe_row("api", "fine", "[\"x\"]", "{\"k\":\"v\"}"),
        )
        .await;
    let v = h.discover_ok("serviceType=api").await;
    let s = assert_discovery_shape(&v);
    assert_eq!(ids(&s), vec!["api:broken", "api:fine", "api:wrongtypes"]);
    assert_eq!(s[0]["tags"], json!([]));
    assert_eq!(s[0]["metadata"], json!({}));
    assert_eq!(s[0]["endpoint"], "https://broken.example.com");
    assert_eq!(s[0]["healthEndpoint"], "https://broken.example.com/health");
    assert_eq!(s[1]["tags"], json!(["x"]));
    assert_eq!(s[1]["metadata"], json!({"k": "v"}));
    assert_eq!(s[2]["tags"], json!([]));
    assert_eq!(s[2]["metadata"], json!({}));
}
