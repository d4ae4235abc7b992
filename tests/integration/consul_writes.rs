//! The Consul writes (`PUT /v1/...`): a registration through Consul's API is an ordinary row (both
//! APIs see it), TTL check updates are heartbeats that record a status, deregistration by ID, the
//! catalog forms, and the refusals (no `Name`, an SSRF-refused check address) with nothing written.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn get(h: &Handler, path: &str) -> Resp {
    h.request(Method::GET, path, None).await
}

async fn put(h: &Handler, path: &str, body: Option<Value>) -> Resp {
    h.request(Method::PUT, path, body.map(|b| b.to_string()))
        .await
}

fn index_of(r: &Resp) -> u64 {
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("x-consul-index").unwrap().parse().unwrap()
}

async fn health(h: &Handler, name: &str) -> (Value, u64) {
    let r = get(h, &format!("/v1/health/service/{name}")).await;
    let index = index_of(&r);
    (r.json(), index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consul_registration_is_an_ordinary_row_and_its_ttl_check_takes_updates() {
    let h = Handler::start_consul_anonymous().await;
    // python-consul's lowercase keys.
    let r = put(
        &h,
        "/v1/agent/service/register",
        Some(json!({
            "name": "fabio", "id": "fabio-host-9998", "address": "127.0.0.1", "port": 9998,
            "tags": ["lb"], "meta": {"serviceType": "edge", "zone": "a"},
            "check": {"ttl": "15s", "CheckID": "fabio-host-9998-ttl", "DeregisterCriticalServiceAfter": "1m"}
        })),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""), "{}", r.text);

    let row = h
        .tables()
        .row(&h.registry_table, "edge", "fabio:fabio-host-9998")
        .await
        .expect("an ordinary registry row");
    assert_eq!(row["endpoint"], "http://127.0.0.1:9998");
    assert_eq!(row["deregisterCriticalAfter"], 60);
    assert_eq!(
        serde_json::from_str::<Value>(row["consulChecks"].as_str().unwrap()).unwrap(),
        json!([{"CheckID": "fabio-host-9998-ttl", "Name": "Service 'fabio' check", "Type": "ttl"}])
    );
    // The native API sees it.
    let v = h.discover_ok("serviceName=fabio").await;
    assert_eq!(v["services"][0]["instanceId"], "fabio-host-9998");
    assert_eq!(v["services"][0]["metadata"], json!({"zone": "a"}));

    let (v, registered) = health(&h, "fabio").await;
    assert_eq!(v[0]["Service"]["ID"], "fabio-host-9998");
    assert_eq!(v[0]["Service"]["Port"], 9998);
    assert_eq!(v[0]["Service"]["Meta"]["zone"], "a");
    assert_eq!(v[0]["Checks"][0]["CheckID"], "fabio-host-9998-ttl");
    assert_eq!(v[0]["Checks"][0]["Type"], "ttl");
    assert_eq!(v[0]["Checks"][0]["Status"], "warning", "not passed yet");
    let (v, _) = {
        let r = get(&h, "/v1/agent/services").await;
        let i = index_of(&r);
        (r.json(), i)
    };
    assert_eq!(v["fabio-host-9998"]["Service"], "fabio");

    // A pass: the status the client gave, and a new index (a status change).
    let r = put(&h, "/v1/agent/check/pass/fabio-host-9998-ttl?note=ok", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (v, passed) = health(&h, "fabio").await;
    assert_eq!(v[0]["Checks"][0]["Status"], "passing");
    assert!(passed > registered, "{passed} > {registered}");
    // Another pass is only a heartbeat: the index stays.
    let before = h
        .tables()
        .row(&h.registry_table, "edge", "fabio:fabio-host-9998")
        .await
        .unwrap();
    let r = put(
        &h,
        "/v1/agent/check/update/fabio-host-9998-ttl",
        Some(json!({"Status": "passing", "Output": ""})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = h
        .tables()
        .row(&h.registry_table, "edge", "fabio:fabio-host-9998")
        .await
        .unwrap();
    assert_ne!(
        before["lastHeartbeat"], after["lastHeartbeat"],
        "a pass is a heartbeat"
    );
    assert_eq!(before["revision"], after["revision"]);
    assert_eq!(health(&h, "fabio").await.1, passed);
    // warn and fail record their status.
    put(&h, "/v1/agent/check/warn/fabio-host-9998-ttl", None).await;
    assert_eq!(
        health(&h, "fabio").await.0[0]["Checks"][0]["Status"],
        "warning"
    );
    put(&h, "/v1/agent/check/fail/fabio-host-9998-ttl", None).await;
    let (v, failed) = health(&h, "fabio").await;
    assert_eq!(v[0]["Checks"][0]["Status"], "critical");
    assert!(failed > passed);
    let r = put(
        &h,
        "/v1/agent/check/update/fabio-host-9998-ttl",
        Some(json!({"Status": "up"})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("Status"), "{}", r.text);
    let r = put(&h, "/v1/agent/check/pass/nobody", None).await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Deregistration by ID: the row goes and the index moves on.
    let r = put(&h, "/v1/agent/service/deregister/fabio-host-9998", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(h
        .tables()
        .row(&h.registry_table, "edge", "fabio:fabio-host-9998")
        .await
        .is_none());
    let (v, gone) = health(&h, "fabio").await;
    assert_eq!(v, json!([]));
    assert!(
        gone > failed,
        "a removal never lowers the index: {gone} > {failed}"
    );
    // Unknown IDs: nothing to do, as Consul documents.
    let r = put(&h, "/v1/agent/service/deregister/fabio-host-9998", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_write_nothing() {
    let h = Handler::start_consul_anonymous().await;
    let r = put(
        &h,
        "/v1/agent/service/register",
        Some(json!({"Address": "127.0.0.1", "Port": 80})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.text.contains("Name"), "{}", r.text);
    // The SSRF guard judges an HTTP check's literal address up front.
    let r = put(
        &h,
        "/v1/agent/service/register",
        Some(json!({
            "Name": "meta", "Address": "127.0.0.1", "Port": 80,
            "Check": {"HTTP": "http://169.254.169.254/latest", "Interval": "10s"}
        })),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    let r = get(&h, "/v1/agent/service/register").await;
    assert_eq!(r.status, 405, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_forms_register_and_deregister() {
    let h = Handler::start_consul_anonymous().await;
    let r = put(
        &h,
        "/v1/catalog/register",
        Some(json!({
            "Node": "ext-db", "Address": "127.0.0.1",
            "Service": {"Service": "db", "ID": "db-1", "Port": 5432, "Tags": ["primary"]}
        })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&h, "/v1/catalog/service/db").await;
    index_of(&r);
    let v = r.json();
    assert_eq!(v[0]["ServiceID"], "db-1");
    assert_eq!(v[0]["ServiceAddress"], "127.0.0.1");
    assert_eq!(v[0]["Node"], "127.0.0.1");
    let r = put(
        &h,
        "/v1/catalog/deregister",
        Some(json!({"Node": "ext-db", "ServiceID": "db-1"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (v, _) = health(&h, "db").await;
    assert_eq!(v, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_longer_than_deregister_critical_service_after_is_removed_by_the_sweep() {
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "0"),
        ("REGISTRY_ALLOW_ANONYMOUS", "true"),
    ])
    .await;
    for (name, after) in [("short", Some("1s")), ("kept", None)] {
        let mut check = json!({"TTL": "10s"});
        if let Some(after) = after {
            check["DeregisterCriticalServiceAfter"] = json!(after);
        }
        let r = put(
            &h,
            "/v1/agent/service/register",
            Some(json!({"Name": name, "Address": "127.0.0.1", "Port": 80, "Check": check})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        // Lapsed a minute ago: critical since then.
        let at = chrono::Utc::now() - chrono::Duration::seconds(70);
        h.set_last_heartbeat("consul", name, at).await;
    }
    assert_eq!(
        health(&h, "short").await.0[0]["Checks"][0]["Status"],
        "critical"
    );
    let report = h.sweep_report().await;
    assert_eq!(report.deleted_expired, 1, "{report:?}");
    assert!(h
        .tables()
        .row(&h.registry_table, "consul", "short")
        .await
        .is_none());
    assert_eq!(health(&h, "short").await.0, json!([]));
    // Without it, a lapsed registration stays listed as critical until the native expiry.
    let (v, _) = health(&h, "kept").await;
    assert_eq!(v[0]["Checks"][0]["Status"], "critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_one_service_each() {
    let h = Handler::start_consul_anonymous().await;
    // Two native rows of different types share the instance id: a call naming it cannot choose.
    for service_type in ["a", "b"] {
        h.register_ok(&json!({
            "serviceName": "dup", "serviceType": service_type, "instanceId": "same",
            "endpoint": "http://127.0.0.1:80"
        }))
        .await;
    }
    let r = get(&h, "/v1/agent/service/same").await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("ID"), "{}", r.text);
    let r = put(&h, "/v1/agent/service/deregister/same", None).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(h.tables().rows(&h.registry_table).await.len(), 2);

    // The same Consul ID registered again under another type replaces its row.
    let body = |service_type: &str| {
        json!({"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 80,
               "Meta": {"serviceType": service_type}})
    };
    assert_eq!(
        put(&h, "/v1/agent/service/register", Some(body("blue")))
            .await
            .status,
        200
    );
    assert_eq!(
        put(&h, "/v1/agent/service/register", Some(body("green")))
            .await
            .status,
        200
    );
    assert!(h
        .tables()
        .row(&h.registry_table, "blue", "web:web-1")
        .await
        .is_none());
    assert!(h
        .tables()
        .row(&h.registry_table, "green", "web:web-1")
        .await
        .is_some());
    let (v, _) = health(&h, "web").await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["Service"]["Meta"]["serviceType"], "green");
}
