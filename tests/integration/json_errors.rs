//! Every error is JSON, including the ones a framework would answer by itself: wrong methods on the
//! envelope routes, oversized envelopes, over-long URLs and header blocks, and envelope fields of
//! the wrong JSON type (each a 400 naming the field).

use crate::harness::*;
use serde_json::{json, Value};

fn assert_json_error(r: &Resp, status: u16, field: Option<&str>, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {} {}", r.status, r.text);
    r.assert_json_content_type();
    let v = r.json();
    assert_error_body(&v, field);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_on_envelope_routes_are_json_405s() {
    let h = Handler::start().await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/ServiceRegistrar", "POST"),
        (reqwest::Method::PUT, "/ServiceDiscovery", "POST"),
        (reqwest::Method::DELETE, "/ServiceHeartbeat", "POST"),
        (reqwest::Method::GET, "/ServiceResolver", "POST"),
        (reqwest::Method::GET, "/HealthMonitor", "POST"),
        (reqwest::Method::POST, "/", "GET"),
    ] {
        let r = h.request(method.clone(), path, None).await;
        assert_json_error(&r, 405, None, &format!("{method} {path}"));
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{method} {path}");
    }
    // The /api routes name what they allow too.
    let r = h
        .request(reqwest::Method::PUT, "/api/ServiceRegistrar", None)
        .await;
    assert_json_error(&r, 405, None, "PUT /api/ServiceRegistrar");
    assert_eq!(r.header("allow").as_deref(), Some("POST, DELETE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_envelopes_are_json_413s() {
    let h = Handler::start().await;
    let huge = "x".repeat(2 * 1024 * 1024 + 1);
    let envelope = ReqEnvelope::new("ServiceRegistrar", "POST")
        .body(
            &json!({"serviceName": "big", "endpoint": "https://e.example.com", "pad": huge})
                .to_string(),
        )
        .build();
    // An HTTP function's envelope: the 413 travels in Outputs.res, as every answer to it does.
    let res = h.invoke("ServiceRegistrar", &envelope).await.envelope_res();
    assert_eq!(res.status, 413, "{}", res.body);
    assert_error_body(&res.json(), Some("body"));
    // The timer's envelope: a JSON 413 of its own.
    let r = h
        .invoke_raw(
            "HealthMonitor",
            format!("{{\"Data\":{{\"pad\":\"{huge}\"}}}}"),
        )
        .await;
    assert_json_error(&r, 413, Some("body"), "oversized timer envelope");
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_fields_are_type_checked() {
    let h = Handler::start().await;
    h.register_ok(&json!({"serviceName": "a", "endpoint": "https://a.example.com"}))
        .await;
    let with_req = |req: Value| json!({"Data": {"req": req}, "Metadata": sys_metadata("X")});
    for (req, field) in [
        (json!({"Method": 123}), "Data.req.Method"),
        (json!({"Method": true}), "Data.req.Method"),
        (json!({"Method": ["GET"]}), "Data.req.Method"),
        (json!({"Method": "GET", "Query": 5}), "Data.req.Query"),
        (
            json!({"Method": "GET", "Query": ["serviceName"]}),
            "Data.req.Query",
        ),
        (
            json!({"Method": "GET", "Query": {"serviceName": 5}}),
            "Data.req.Query",
        ),
        (
            json!({"Method": "GET", "Query": {"serviceName": {"a": 1}}}),
            "Data.req.Query",
        ),
        (
            json!({"Method": "GET", "Query": "not json"}),
            "Data.req.Query",
        ),
        (json!({"Method": "GET", "Headers": 7}), "Data.req.Headers"),
        (
            json!({"Method": "GET", "Headers": {"Accept": 7}}),
            "Data.req.Headers",
        ),
        (
            json!({"Method": "GET", "Headers": {"Accept": [1]}}),
            "Data.req.Headers",
        ),
        (json!({"Method": "GET", "Body": 12}), "Data.req.Body"),
        (json!(42), "Data.req"),
    ] {
        let res = h
            .invoke("ServiceDiscovery", &with_req(req.clone()))
            .await
            .envelope_res();
        assert_eq!(res.status, 400, "{req}: {}", res.body);
        assert_error_body(&res.json(), Some(field));
    }
    // null means absent: all services, not the one named "null".
    let res = h
        .invoke(
            "ServiceDiscovery",
            &with_req(json!({"Method": "GET", "Query": {"serviceName": null}, "Headers": {"Accept": null}})),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["count"], 1, "{}", res.body);
    // ...and a deregistration with a null name is missing its name, not deleting "null".
    let res = h
        .invoke(
            "ServiceRegistrar",
            &with_req(json!({"Method": "DELETE", "Query": {"serviceName": null}})),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 400, "{}", res.body);
    assert_error_body(&res.json(), Some("serviceName"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_urls_and_header_blocks_are_json_errors() {
    let h = Handler::start().await;
    // The Functions host refuses URLs over 4,096 bytes; so do we, in JSON.
    let long = format!("/api/ServiceDiscovery?tags={}", "t".repeat(4096));
    let r = h.request(reqwest::Method::GET, &long, None).await;
    assert_json_error(&r, 414, None, "a 4 KB query");
    let r = h
        .request(
            reqwest::Method::POST,
            &format!("/ServiceDiscovery?{}", "q".repeat(5000)),
            None,
        )
        .await;
    assert_json_error(&r, 414, None, "a long envelope URL");
    // Just under the limit is served.
    let fits = format!("/api/ServiceDiscovery?tags={}", "t".repeat(4000));
    let r = h.request(reqwest::Method::GET, &fits, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A header block over 32 KiB (Kestrel's default for the host) is a JSON 431.
    let r = h
        .forwarded(reqwest::Method::GET, "/api/ServiceDiscovery")
        .header("X-Padding", "p".repeat(33 * 1024))
        .send()
        .await
        .unwrap();
    let r = Resp::read(r).await;
    assert_json_error(&r, 431, None, "a 33 KiB header");
    // So is a request with more than 100 headers (hyper alone would answer that without a body).
    let mut many = h.forwarded(reqwest::Method::GET, "/api/ServiceDiscovery");
    for i in 0..150 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let r = Resp::read(many.send().await.unwrap()).await;
    assert_json_error(&r, 431, None, "150 headers");
}
