//! Consul's token carriers on the native keys: `X-Consul-Token`, `?token=` and
//! `Authorization: Bearer` each carry a key; reads need a reader, writes a writer for the key they
//! touch; refusals are Consul-style plain text with nothing written.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

fn body(service_type: &str) -> Option<String> {
    Some(
        json!({"Name": "orders", "ID": "o-1", "Address": "127.0.0.1", "Port": 8080,
               "Meta": {"serviceType": service_type}})
        .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_carrier_carries_the_native_keys_and_scopes() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;

    let r = h.send(Method::GET, "/v1/catalog/services", &[], None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    assert!(r.header("x-consul-index").is_none());

    let by_header = [("X-Consul-Token", READER)];
    let bearer_value = bearer(READER);
    let by_bearer = [("Authorization", bearer_value.as_str())];
    for headers in [&by_header[..], &by_bearer[..]] {
        let r = h
            .send(Method::GET, "/v1/catalog/services", headers, None)
            .await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text);
    }
    let r = h
        .send(
            Method::GET,
            &format!("/v1/catalog/services?token={READER}"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .send(
            Method::GET,
            "/v1/catalog/services",
            &[("X-Consul-Token", "not-a-key")],
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    // Writes: a reader may not, a writer for type `api` may write `api` only.
    let r = h
        .send(
            Method::PUT,
            "/v1/agent/service/register",
            &[("X-Consul-Token", READER)],
            body("api"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = h
        .send(
            Method::PUT,
            "/v1/agent/service/register",
            &[("X-Consul-Token", WRITER)],
            body("web"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("serviceType"), "{}", r.text);
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    let r = h
        .send(
            Method::PUT,
            &format!("/v1/agent/service/register?token={WRITER}"),
            &[],
            body("api"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(h
        .tables()
        .row(&h.registry_table, "api", "orders:o-1")
        .await
        .is_some());

    let r = h
        .send(
            Method::PUT,
            "/v1/agent/service/deregister/o-1",
            &[("X-Consul-Token", READER)],
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let writer = bearer(WRITER);
    let r = h
        .send(
            Method::PUT,
            "/v1/agent/service/deregister/o-1",
            &[("Authorization", writer.as_str())],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(h
        .tables()
        .row(&h.registry_table, "api", "orders:o-1")
        .await
        .is_none());
    assert!(!h.logs().contains(WRITER), "a key never reaches the log");

    // The native body limit.
    let big =
        json!({"Name": "x", "Address": "127.0.0.1", "Port": 1, "Tags": ["a".repeat(70 * 1024)]});
    let r = h
        .send(
            Method::PUT,
            "/v1/agent/service/register",
            &[("X-Consul-Token", WRITER)],
            Some(big.to_string()),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text);
}
