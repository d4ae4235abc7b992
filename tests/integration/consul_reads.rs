//! The Consul-compatible reads (`/v1/...`): every endpoint's exact shape for a registration made
//! through the native API, Consul's headers on every answer, `200 []` for an unknown service,
//! Consul's error for another datacenter, and `filter`, `tag`, `passing`, `node-meta` selecting.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn get(h: &Handler, path: &str) -> Resp {
    h.request(Method::GET, path, None).await
}

/// A read's answer: 200, JSON, and Consul's headers; the index as a number.
fn consul_ok(r: &Resp) -> (Value, u64) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.header("x-consul-knownleader").as_deref(), Some("true"));
    assert_eq!(r.header("x-consul-lastcontact").as_deref(), Some("0"));
    let index: u64 = r
        .header("x-consul-index")
        .expect("X-Consul-Index")
        .parse()
        .expect("a u64 index");
    assert!(index >= 1);
    (r.json(), index)
}

fn orders() -> Value {
    json!({
        "serviceName": "orders", "serviceType": "api", "instanceId": "pod-7",
        "endpoint": "https://localhost:8443/v1", "version": "2.1.0",
        "tags": ["v1", "prod"], "metadata": {"DAPR_PORT": 50002, "region": "eu", "nested": {"a": 1}},
        "weight": 3
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_shows_a_native_registration_in_consuls_shapes() {
    let h = Handler::start_consul_anonymous().await;
    h.register_ok(&orders()).await;
    let row = h
        .tables()
        .row(&h.registry_table, "api", "orders:pod-7")
        .await
        .unwrap();
    let revision: u64 = row["revision"].as_str().unwrap().parse().unwrap();
    let created: u64 = row["createRevision"].as_str().unwrap().parse().unwrap();
    assert_eq!(revision, created);

    let node_id = {
        let (v, index) = consul_ok(&get(&h, "/v1/health/service/orders").await);
        assert_eq!(index, revision, "the index is the row's revision");
        let entries = v.as_array().unwrap();
        assert_eq!(entries.len(), 1, "{v}");
        let e = &entries[0];
        let node = &e["Node"];
        assert_eq!(node["Node"], "localhost");
        assert_eq!(node["Address"], "localhost");
        assert_eq!(node["Datacenter"], "dc1");
        assert_eq!(
            node["Meta"],
            json!({"external-node": "true", "external-probe": "true"})
        );
        assert_eq!(
            node["TaggedAddresses"],
            json!({"lan": "localhost", "wan": "localhost"})
        );
        let service = &e["Service"];
        assert_eq!(service["ID"], "pod-7");
        assert_eq!(service["Service"], "orders");
        assert_eq!(service["Tags"], json!(["v1", "prod"]));
        assert_eq!(service["Address"], "localhost");
        assert_eq!(service["Port"], 8443);
        assert_eq!(
            service["Meta"],
            json!({
                "DAPR_PORT": "50002", "region": "eu", "nested": "{\"a\":1}", "serviceType": "api",
                "version": "2.1.0", "scheme": "https", "endpoint": "https://localhost:8443/v1"
            })
        );
        assert_eq!(service["Weights"], json!({"Passing": 3, "Warning": 1}));
        assert_eq!(service["CreateIndex"], created);
        assert_eq!(service["ModifyIndex"], revision);
        assert_eq!(
            e["Checks"],
            json!([{
                "Node": "localhost", "CheckID": "service:pod-7",
                "Name": "Service 'orders' check", "Status": "warning", "Notes": "", "Output": "",
                "ServiceID": "pod-7", "ServiceName": "orders", "ServiceTags": ["v1", "prod"],
                "Type": "http", "CreateIndex": created, "ModifyIndex": revision
            }]),
            "never checked: warning"
        );
        node["ID"].as_str().unwrap().to_owned()
    };
    assert_eq!(node_id.len(), 36);

    let (v, _) = consul_ok(&get(&h, "/v1/catalog/service/orders").await);
    assert_eq!(
        v,
        json!([{
            "ID": node_id, "Node": "localhost", "Address": "localhost",
            "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "localhost", "wan": "localhost"},
            "NodeMeta": {"external-node": "true", "external-probe": "true"},
            "ServiceID": "pod-7", "ServiceName": "orders", "ServiceAddress": "localhost",
            "ServiceTags": ["v1", "prod"],
            "ServiceMeta": {
                "DAPR_PORT": "50002", "region": "eu", "nested": "{\"a\":1}", "serviceType": "api",
                "version": "2.1.0", "scheme": "https", "endpoint": "https://localhost:8443/v1"
            },
            "ServicePort": 8443, "ServiceWeights": {"Passing": 3, "Warning": 1},
            "ServiceTaggedAddresses": {
                "lan": {"Address": "localhost", "Port": 8443},
                "wan": {"Address": "localhost", "Port": 8443}
            },
            "ServiceEnableTagOverride": false, "CreateIndex": created, "ModifyIndex": revision
        }])
    );

    let (v, _) = consul_ok(&get(&h, "/v1/catalog/services").await);
    assert_eq!(v, json!({"orders": ["v1", "prod"]}));
    let (v, _) = consul_ok(&get(&h, "/v1/catalog/datacenters").await);
    assert_eq!(v, json!(["dc1"]));
    let (v, _) = consul_ok(&get(&h, "/v1/catalog/nodes").await);
    assert_eq!(v[0]["Node"], "localhost");
    assert_eq!(v.as_array().unwrap().len(), 1);

    let (v, _) = consul_ok(&get(&h, "/v1/health/checks/orders").await);
    assert_eq!(v[0]["CheckID"], "service:pod-7");
    let (v, _) = consul_ok(&get(&h, "/v1/health/state/warning").await);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    let (v, _) = consul_ok(&get(&h, "/v1/health/state/passing").await);
    assert_eq!(v, json!([]));
    let (v, _) = consul_ok(&get(&h, "/v1/health/state/any").await);
    assert_eq!(v[0]["ServiceTags"], json!(["v1", "prod"]));

    let (v, _) = consul_ok(&get(&h, "/v1/agent/services").await);
    assert_eq!(v["pod-7"]["Service"], "orders");
    assert_eq!(v["pod-7"]["Port"], 8443);
    assert_eq!(v["pod-7"]["Datacenter"], "dc1");
    let (v, _) = consul_ok(&get(&h, "/v1/agent/service/pod-7").await);
    assert_eq!(v["ID"], "pod-7");
    let (v, _) = consul_ok(&get(&h, "/v1/agent/checks").await);
    assert_eq!(v["service:pod-7"]["Status"], "warning");

    let (v, _) = consul_ok(&get(&h, "/v1/agent/self").await);
    assert_eq!(v["Config"]["Datacenter"], "dc1");
    assert_eq!(v["Config"]["NodeName"], "service-registry");
    for (k, value) in v.as_object().unwrap() {
        assert!(value.is_object(), "{k} must be an object: {v}");
    }
    let (v, _) = consul_ok(&get(&h, "/v1/status/leader").await);
    assert!(v.as_str().is_some_and(|s| !s.is_empty()), "{v}");
    let (v, _) = consul_ok(&get(&h, "/v1/status/peers").await);
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_parameters_and_unknown_names() {
    let h = Handler::start_consul_anonymous().await;
    h.register_ok(&orders()).await;
    h.register_ok(&json!({
        "serviceName": "orders", "serviceType": "worker", "instanceId": "w-1",
        "endpoint": "http://127.0.0.1", "tags": ["v2"]
    }))
    .await;

    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap().to_owned())
            .collect()
    };
    let (v, _) = consul_ok(&get(&h, "/v1/health/service/orders").await);
    assert_eq!(ids(&v), vec!["pod-7", "w-1"], "both types under one name");
    assert_eq!(v[1]["Service"]["Port"], 80);
    let (v, _) = consul_ok(&get(&h, "/v1/health/service/orders?tag=v1&tag=prod").await);
    assert_eq!(ids(&v), vec!["pod-7"]);
    let (v, _) = consul_ok(&get(&h, "/v1/health/service/orders?tag=v1&tag=v2").await);
    assert_eq!(ids(&v), Vec::<String>::new());
    let (v, _) = consul_ok(&get(&h, "/v1/health/service/orders?passing=1").await);
    assert_eq!(v, json!([]), "never checked is warning, not passing");
    let filter = "/v1/health/service/orders?filter=Service.Meta.serviceType%3D%3D%22worker%22";
    let (v, _) = consul_ok(&get(&h, filter).await);
    assert_eq!(ids(&v), vec!["w-1"]);
    let filter = "/v1/health/service/orders?filter=%22prod%22%20in%20Service.Tags";
    let (v, _) = consul_ok(&get(&h, filter).await);
    assert_eq!(ids(&v), vec!["pod-7"]);
    let (v, _) = consul_ok(
        &get(
            &h,
            "/v1/health/service/orders?node-meta=external-node:true&stale&cached=&near=_agent",
        )
        .await,
    );
    assert_eq!(ids(&v).len(), 2);
    let (v, _) = consul_ok(&get(&h, "/v1/health/service/orders?node-meta=rack:r1").await);
    assert_eq!(v, json!([]));
    let dapr =
        "/v1/health/state/any?filter=ServiceName%3D%3D%22orders%22%20or%20ServiceName%3D%3D%22x%22";
    let (v, _) = consul_ok(&get(&h, dapr).await);
    assert_eq!(v.as_array().unwrap().len(), 2);

    let (v, index) = consul_ok(&get(&h, "/v1/health/service/nothing-here").await);
    assert_eq!((v, index), (json!([]), 1));
    let (v, _) = consul_ok(&get(&h, "/v1/catalog/service/nothing-here").await);
    assert_eq!(v, json!([]));

    // A filter it cannot evaluate is a 400, never ignored; plain text naming the parameter.
    let r = get(
        &h,
        "/v1/health/service/orders?filter=Service.Nope%3D%3D%22x%22",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.text.contains("filter"), "{}", r.text);
    let r = get(&h, "/v1/health/state/unknown").await;
    assert_eq!(r.status, 400, "{}", r.text);

    // Another datacenter: Consul's own answer.
    let r = get(&h, "/v1/health/service/orders?dc=elsewhere").await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(r.text.contains("No path to datacenter"), "{}", r.text);
    let (_, _) = consul_ok(&get(&h, "/v1/health/service/orders?dc=dc1").await);

    let r = get(&h, "/v1/agent/service/nobody").await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_is_a_blocking_404_with_an_index() {
    let h = Handler::start_consul_anonymous().await;
    let r = get(&h, "/v1/kv/fabio/config?recurse").await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.header("x-consul-index").as_deref(), Some("1"));
    let started = std::time::Instant::now();
    let r = get(&h, "/v1/kv/fabio/config?recurse&index=1&wait=2s").await;
    assert_eq!(r.status, 404);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "held {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_recipe_wrote_counts_from_its_storage_timestamp() {
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "0"),
        ("REGISTRY_ALLOW_ANONYMOUS", "true"),
    ])
    .await;
    let now = iso(chrono::Utc::now());
    h.tables()
        .upsert(
            &h.registry_table,
            &json!({
                "PartitionKey": "api", "RowKey": "node-api", "serviceName": "node-api",
                "endpoint": "http://127.0.0.1:8080", "healthEndpoint": "http://127.0.0.1:8080",
                "serviceType": "api", "version": "1.0.0", "tags": "[]", "metadata": "{}",
                "registeredAt": now, "lastHeartbeat": now
            }),
        )
        .await;
    let row = h
        .tables()
        .row(&h.registry_table, "api", "node-api")
        .await
        .unwrap();
    let stamp = parse_iso(row["Timestamp"].as_str().unwrap());
    let micros = u64::try_from(stamp.timestamp_micros()).unwrap();
    let (v, index) = consul_ok(&get(&h, "/v1/health/service/node-api").await);
    assert_eq!(index, micros, "no revision: storage's Timestamp");
    assert_eq!(v[0]["Service"]["ID"], "node-api");
    assert_eq!(v[0]["Service"]["Port"], 8080);
}
