//! Declared dependencies and effective status, end to end: registrations with `dependsOn` against
//! real local targets, real sweeps, and what discovery, the resolver, the sweep's summary and the
//! tables say. The rules themselves are unit-tested in `domain::dependencies`.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Fast verdicts: one failure makes an instance unhealthy, one success after a short backoff
/// healthy again.
async fn quick_handler() -> Handler {
    Handler::start_with(&[
        ("HEALTH_PROBE_TIMEOUT_MS", "1000"),
        ("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
        ("HEALTH_SUCCESSES_TO_HEALTHY", "1"),
        ("HEALTH_CIRCUIT_BACKOFF_MS", "100"),
    ])
    .await
}

fn body(service_type: &str, name: &str, target: &HttpTarget, depends_on: Value) -> Value {
    let mut body =
        json!({"serviceType": service_type, "serviceName": name, "endpoint": target.url});
    if !depends_on.is_null() {
        body["dependsOn"] = depends_on;
    }
    body
}

/// Discovery's item for `type:name` (the service-level row).
fn item<'a>(items: &'a [Value], key: &str) -> &'a Value {
    let (service_type, name) = key.split_once(':').unwrap();
    items
        .iter()
        .find(|s| s["serviceType"] == service_type && s["serviceName"] == name)
        .unwrap_or_else(|| panic!("no {key} in {items:?}"))
}

/// (own status, effectiveStatus, blockedBy) of `key` in a whole-registry discovery.
async fn standing(h: &Handler, key: &str) -> (Value, Value, Value) {
    let v = h.discover_ok("").await;
    let items = assert_discovery_shape(&v);
    let s = item(&items, key);
    (
        s["healthStatus"]["status"].clone(),
        s["effectiveStatus"].clone(),
        s["blockedBy"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_cascades_through_three_levels_and_back() {
    let h = quick_handler().await;
    let (db, api, web) = (
        HttpTarget::status(200),
        HttpTarget::status(200),
        HttpTarget::status(200),
    );
    h.register_ok(&body("db", "x", &db, Value::Null)).await;
    h.register_ok(&body("api", "y", &api, json!(["db:x"])))
        .await;
    h.register_ok(&body("web", "z", &web, json!([{"service": "api:y"}])))
        .await;
    let rows = h.tables().rows(&h.registry_table).await;
    let stored = |pk: &str| {
        rows.iter()
            .find(|r| r["PartitionKey"] == pk)
            .unwrap()
            .get("dependsOn")
            .cloned()
    };
    assert_eq!(stored("db"), None, "nothing declared, nothing stored");
    assert_eq!(
        stored("api"),
        Some(json!(r#"[{"service":"db:x","required":true}]"#))
    );
    assert_eq!(
        stored("web"),
        Some(json!(r#"[{"service":"api:y","required":true}]"#))
    );

    let report = h.sweep_report().await;
    assert_eq!((report.healthy, report.effective_healthy), (3, 3));
    for key in ["db:x", "api:y", "web:z"] {
        assert_eq!(
            standing(&h, key).await,
            (json!("healthy"), json!("healthy"), json!([])),
            "{key}"
        );
    }

    db.set_status(503);
    let report = h.sweep_report().await;
    assert_eq!(
        (report.healthy, report.unhealthy, report.effective_unhealthy),
        (2, 1, 3),
        "{report:?}"
    );
    assert_eq!(
        standing(&h, "db:x").await,
        (json!("unhealthy"), json!("unhealthy"), json!([]))
    );
    assert_eq!(
        standing(&h, "api:y").await,
        (json!("healthy"), json!("unhealthy"), json!(["db:x"]))
    );
    assert_eq!(
        standing(&h, "web:z").await,
        (
            json!("healthy"),
            json!("unhealthy"),
            json!(["api:y", "db:x"])
        )
    );
    // A discovery of web alone judges it against the whole registry all the same.
    let v = h.discover_ok("serviceType=web&serviceName=z").await;
    let items = assert_discovery_shape(&v);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["blockedBy"], json!(["api:y", "db:x"]));
    assert_eq!(
        items[0]["dependsOn"],
        json!([{"service": "api:y", "required": true}])
    );
    assert_eq!(
        items[0]["dependencies"],
        json!([{"service": "api:y", "required": true, "status": "unhealthy"}])
    );
    // What the sweep recorded, in the state table and through the API.
    let row = h
        .tables()
        .row(&h.state_table, "~sweep", "last")
        .await
        .expect("the last sweep's row");
    assert_eq!(int64_prop(&row, "effective_unhealthy"), 3, "{row}");
    assert_eq!(int64_prop(&row, "effective_healthy"), 0, "{row}");
    let r = h.call(reqwest::Method::GET, "/api/Sweep", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let counters = &r.json()["lastSweep"]["counters"];
    assert_eq!(
        (
            counters["effective_healthy"].clone(),
            counters["effective_degraded"].clone(),
            counters["effective_unhealthy"].clone(),
            counters["effective_unknown"].clone()
        ),
        (json!(0), json!(0), json!(3), json!(0)),
        "{counters}"
    );

    db.set_status(200);
    let recovered = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(150),
        || async {
            let _ = h.sweep_report().await;
            let web = standing(&h, "web:z").await;
            (web == (json!("healthy"), json!("healthy"), json!([]))).then_some(())
        },
    )
    .await;
    assert!(
        recovered.is_some(),
        "web never recovered: {:?}",
        standing(&h, "web:z").await
    );
    assert_eq!(
        standing(&h, "api:y").await,
        (json!("healthy"), json!("healthy"), json!([]))
    );
    assert!(db.hits() >= 3 && api.hits() >= 3 && web.hits() >= 3);
}

/// `Int64` property as the Tables API returns it: a string with its type annotation.
fn int64_prop(row: &Value, key: &str) -> i64 {
    match &row[key] {
        Value::String(text) => text.parse().unwrap_or_else(|_| panic!("{key}: {row}")),
        other => other.as_i64().unwrap_or_else(|| panic!("{key}: {row}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_only_and_the_resolver_judge_the_effective_status_unless_told_not_to() {
    let h = quick_handler().await;
    let (db, api) = (HttpTarget::status(503), HttpTarget::status(200));
    h.register_ok(&body("db", "x", &db, Value::Null)).await;
    h.register_ok(&body("api", "y", &api, json!(["db:x"])))
        .await;
    h.sweep_report().await;

    let names = |v: &Value| -> Vec<String> {
        assert_discovery_shape(v)
            .iter()
            .map(|s| {
                format!(
                    "{}:{}",
                    s["serviceType"].as_str().unwrap(),
                    s["serviceName"].as_str().unwrap()
                )
            })
            .collect()
    };
    let v = h.discover_ok("healthyOnly=true").await;
    assert_eq!(names(&v), Vec::<String>::new(), "{v}");
    let v = h.discover_ok("healthyOnly=true&effective=false").await;
    assert_eq!(names(&v), ["api:y"], "the own verdict only: {v}");
    let v = h
        .discover_ok("healthyOnly=true&failOpen=true&serviceType=api")
        .await;
    assert_eq!(
        (names(&v), v["failedOpen"].clone()),
        (vec!["api:y".to_owned()], json!(true))
    );

    let r = h.resolve("serviceName=y").await;
    let e = r.assert_error(404, Some("serviceName"));
    assert_eq!(e["instances"][0]["effectiveStatus"], "unhealthy", "{e}");
    assert_eq!(e["instances"][0]["blockedBy"], json!(["db:x"]), "{e}");
    let r = h.resolve("serviceName=y&effective=false").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["instance"]["effectiveStatus"], "unhealthy");
    h.resolve("serviceName=y&effective=maybe")
        .await
        .assert_error(400, Some("effective"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_dependency_or_a_partly_down_required_one_degrades_and_degraded_is_admitted() {
    let h = quick_handler().await;
    let (cache, db_up, db_down, api, jobs) = (
        HttpTarget::status(503),
        HttpTarget::status(200),
        HttpTarget::status(503),
        HttpTarget::status(200),
        HttpTarget::status(200),
    );
    h.register_ok(&body("cache", "r", &cache, Value::Null))
        .await;
    for (instance, target) in [("a", &db_up), ("b", &db_down)] {
        let mut b = body("db", "x", target, Value::Null);
        b["instanceId"] = json!(instance);
        h.register_ok(&b).await;
    }
    h.register_ok(&body(
        "api",
        "y",
        &api,
        json!([{"service": "cache:r", "required": false}, "cache:unregistered"]),
    ))
    .await;
    h.register_ok(&body("jobs", "j", &jobs, json!(["db:x"])))
        .await;
    let report = h.sweep_report().await;
    assert_eq!(
        (
            report.effective_degraded,
            report.effective_unhealthy,
            report.effective_healthy
        ),
        (2, 2, 1),
        "{report:?}"
    );

    let v = h.discover_ok("serviceType=api").await;
    let items = assert_discovery_shape(&v);
    assert_eq!(items[0]["effectiveStatus"], "degraded");
    assert_eq!(items[0]["blockedBy"], json!(["cache:r"]));
    assert_eq!(
        items[0]["dependencies"],
        json!([
            {"service": "cache:r", "required": false, "status": "unhealthy"},
            {"service": "cache:unregistered", "required": true, "status": "unknown", "note": "not registered"}
        ])
    );
    let v = h.discover_ok("serviceType=jobs").await;
    let items = assert_discovery_shape(&v);
    assert_eq!(
        (
            items[0]["effectiveStatus"].clone(),
            items[0]["blockedBy"].clone()
        ),
        (json!("degraded"), json!(["db:x"]))
    );
    assert_eq!(
        items[0]["dependencies"][0]["note"],
        "some instances unhealthy"
    );
    // Degraded is still served: listed by healthyOnly, chosen by the resolver.
    let v = h.discover_ok("healthyOnly=true&serviceType=jobs").await;
    assert_eq!(assert_discovery_shape(&v).len(), 1, "{v}");
    let r = h.resolve("serviceName=y").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["instance"]["effectiveStatus"], "degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_is_reported_and_both_services_still_answer() {
    let h = quick_handler().await;
    let (a, b) = (HttpTarget::status(200), HttpTarget::status(200));
    h.register_ok(&body("svc", "a", &a, json!(["svc:b"]))).await;
    h.register_ok(&body("svc", "b", &b, json!(["svc:a"]))).await;
    h.sweep_report().await;
    let v = h.discover_ok("serviceType=svc").await;
    let items = assert_discovery_shape(&v);
    assert_eq!(
        item(&items, "svc:a")["dependencies"],
        json!([{"service": "svc:b", "required": true, "status": "healthy",
                "cycle": ["svc:a", "svc:b", "svc:a"]}])
    );
    assert_eq!(
        item(&items, "svc:b")["dependencies"][0]["cycle"],
        json!(["svc:b", "svc:a", "svc:b"])
    );
    for s in &items {
        assert_eq!(
            (s["effectiveStatus"].clone(), s["blockedBy"].clone()),
            (json!("healthy"), json!([]))
        );
    }
    for name in ["a", "b"] {
        let r = h.resolve(&format!("serviceName={name}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // A member going down does not take the other with it across the cycle.
    a.set_status(503);
    h.sweep_report().await;
    assert_eq!(
        standing(&h, "svc:b").await,
        (json!("healthy"), json!("healthy"), json!([]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_without_dependencies_answers_as_before() {
    let h = quick_handler().await;
    let target = HttpTarget::status(200);
    let mut recipe = recipe_body();
    recipe["endpoint"] = json!(target.url);
    let r = h.register(&recipe).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"message": "Service registered successfully", "serviceId": "api:test-api"})
        )
    );
    let row = h
        .tables()
        .row(&h.registry_table, "api", "test-api")
        .await
        .unwrap();
    let mut props: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with("odata.") && !k.ends_with("@odata.type") && *k != "Timestamp")
        .collect();
    props.sort();
    assert_eq!(
        props,
        [
            "PartitionKey",
            "RowKey",
            "createRevision",
            "endpoint",
            "healthEndpoint",
            "lastHeartbeat",
            "metadata",
            "registeredAt",
            "revision",
            "serviceName",
            "serviceType",
            "tags",
            "version"
        ],
        "the row as before: {row}"
    );
    h.sweep_report().await;
    let v = h.discover_ok("serviceName=test-api").await;
    let items = assert_discovery_shape(&v);
    let s = &items[0];
    for key in ["dependsOn", "dependencies"] {
        assert!(s.get(key).is_none(), "{key} only when declared: {s}");
    }
    // The answer as before, with the two new fields: the own verdict, nothing to blame.
    let mut before = s.clone();
    let added = before.as_object_mut().unwrap();
    assert_eq!(added.remove("effectiveStatus"), Some(json!("healthy")));
    assert_eq!(added.remove("blockedBy"), Some(json!([])));
    let expected = json!({
        "serviceName": "test-api", "endpoint": target.url, "healthEndpoint": target.url,
        "serviceType": "api", "version": "1.0.0", "tags": recipe["tags"], "metadata": recipe["metadata"],
        "registeredAt": s["registeredAt"], "lastHeartbeat": s["lastHeartbeat"],
        "healthStatus": s["healthStatus"], "instanceId": null, "weight": 100, "ttlSeconds": null,
        "expiresAt": null, "expired": false
    });
    assert_eq!(before, expected);
    assert_eq!(s["healthStatus"]["status"], "healthy");
    let v = h.discover_ok("healthyOnly=true").await;
    assert_eq!(assert_discovery_shape(&v).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_dependency_is_a_400_naming_it_and_nothing_is_written() {
    let h = Handler::start().await;
    let target = local_endpoint("bad-deps");
    let cases = [
        (json!("db:x"), "dependsOn"),
        (json!(["db:x", "no-colon"]), "dependsOn[1]"),
        (
            json!(["db:x", {"service": "db:y", "required": "yes"}]),
            "dependsOn[1]",
        ),
        (json!(["db:x", "db:y", "api:self"]), "dependsOn[2]"),
        (json!(["db:x", "db:x"]), "dependsOn[1]"),
        (json!(["db:x'or"]), "dependsOn[0]"),
        (
            json!((0..33).map(|i| format!("db:x{i}")).collect::<Vec<_>>()),
            "dependsOn",
        ),
    ];
    for (depends_on, field) in cases {
        let r = h
            .register(
                &json!({"serviceType": "api", "serviceName": "self", "endpoint": target,
                              "dependsOn": depends_on}),
            )
            .await;
        let e = r.assert_error(400, Some(field));
        assert!(e["error"].as_str().unwrap().starts_with(field), "{e}");
    }
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_list_another_client_stored_badly_is_ignored() {
    let h = quick_handler().await;
    let target = HttpTarget::status(200);
    h.register_ok(&body("api", "y", &target, json!(["db:x"])))
        .await;
    let tables = h.tables();
    let mut row = tables.row(&h.registry_table, "api", "y").await.unwrap();
    row["dependsOn"] = json!("[\"not a key\"");
    tables.upsert(&h.registry_table, &row).await;
    let mut other = row.clone();
    other["RowKey"] = json!("z");
    other["serviceName"] = json!("z");
    other["dependsOn"] = json!(r#"[{"service":"db:gone"}]"#);
    tables.upsert(&h.registry_table, &other).await;
    h.sweep_report().await;
    let v = h.discover_ok("serviceType=api").await;
    let items = assert_discovery_shape(&v);
    let y = item(&items, "api:y");
    assert_eq!(
        (y["effectiveStatus"].clone(), y.get("dependsOn")),
        (json!("healthy"), None)
    );
    let z = item(&items, "api:z");
    assert_eq!(
        z["dependencies"],
        json!([{"service": "db:gone", "required": true, "status": "unknown", "note": "not registered"}])
    );
    assert_eq!(z["effectiveStatus"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_shows_a_blocked_instance_critical_with_its_chain_and_a_degraded_one_warning() {
    let h = Handler::spawn(
        HandlerConfig::consul_anonymous()
            .env("HEALTH_PROBE_TIMEOUT_MS", "1000")
            .env("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
    )
    .await;
    let (db, cache, api, jobs) = (
        HttpTarget::status(503),
        HttpTarget::status(503),
        HttpTarget::status(200),
        HttpTarget::status(200),
    );
    h.register_ok(&body("db", "x", &db, Value::Null)).await;
    h.register_ok(&body("cache", "r", &cache, Value::Null))
        .await;
    h.register_ok(&body("api", "orders", &api, json!(["db:x"])))
        .await;
    h.register_ok(&body(
        "jobs",
        "billing",
        &jobs,
        json!([{"service": "cache:r", "required": false}]),
    ))
    .await;
    h.sweep_report().await;
    let check = |name: &'static str| {
        let h = &h;
        async move {
            let r = h
                .request(
                    reqwest::Method::GET,
                    &format!("/v1/health/service/{name}"),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json()[0]["Checks"][0].clone()
        }
    };
    let settled = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let (orders, billing) = (check("orders").await, check("billing").await);
            (orders["Status"] == "critical" && billing["Status"] == "warning")
                .then_some((orders, billing))
        },
    )
    .await;
    let (orders, billing) = settled.expect("the Consul view never showed the dependencies");
    assert_eq!(orders["Output"], "blocked by db:x", "{orders}");
    assert_eq!(billing["Output"], "blocked by cache:r", "{billing}");
    // `?passing` leaves out the blocked one.
    let r = h
        .request(
            reqwest::Method::GET,
            "/v1/health/service/orders?passing",
            None,
        )
        .await;
    assert_eq!(r.json(), json!([]), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_degraded_verdict_is_degraded_and_degrades_its_dependents() {
    let h = Handler::start().await;
    let (db, api) = (local_endpoint("db"), local_endpoint("api"));
    h.register_ok(&json!({"serviceType": "db", "serviceName": "x", "endpoint": db}))
        .await;
    h.register_ok(
        &json!({"serviceType": "api", "serviceName": "y", "endpoint": api,
                          "dependsOn": ["db:x"]}),
    )
    .await;
    // Verdicts as a monitor that knows warning checks writes them (no sweep here).
    let tables = h.tables();
    for (pk, status) in [("db", "degraded"), ("api", "healthy")] {
        let rk = if pk == "db" { "x" } else { "y" };
        tables
            .upsert(
                &h.health_table,
                &json!({"PartitionKey": pk, "RowKey": rk, "serviceName": rk, "status": status,
                        "lastChecked": "2026-12-07T10:00:00.000Z", "responseTime": 3, "errorMessage": ""}),
            )
            .await;
    }
    let v = h.discover_ok("").await;
    let items = assert_discovery_shape(&v);
    let (x, y) = (item(&items, "db:x"), item(&items, "api:y"));
    assert_eq!(
        (
            x["healthStatus"]["status"].clone(),
            x["effectiveStatus"].clone()
        ),
        (json!("degraded"), json!("degraded"))
    );
    assert_eq!(
        (y["effectiveStatus"].clone(), y["blockedBy"].clone()),
        (json!("degraded"), json!(["db:x"]))
    );
    // Degraded is admitted; the old rule (own verdict `healthy` only) is not.
    let v = h.discover_ok("healthyOnly=true&serviceType=db").await;
    assert_eq!(assert_discovery_shape(&v).len(), 1, "{v}");
    let v = h
        .discover_ok("healthyOnly=true&serviceType=db&effective=false")
        .await;
    assert_eq!(assert_discovery_shape(&v).len(), 0, "{v}");
}
