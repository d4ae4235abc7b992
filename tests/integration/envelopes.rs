//! Custom-handler invocation envelopes (forwarding off) and secret hygiene.

use crate::harness::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_envelope_success() {
    let h = Handler::start().await;
    let env = ReqEnvelope::new("ServiceRegistrar", "POST")
        .body(&recipe_body().to_string())
        .build();
    let r = h.invoke("ServiceRegistrar", &env).await;
    let res = r.envelope_res();
    assert_eq!(res.status, 200, "Outputs.res: {}", res.raw);
    assert_eq!(
        res.json(),
        json!({"message": "Service registered successfully", "serviceId": "api:test-api"})
    );
    assert!(
        res.header("Content-Type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "Outputs.res.headers must carry Content-Type application/json: {}",
        res.raw
    );
    assert!(
        res.raw["Outputs"]["res"].get("status").is_none()
            || res.raw["Outputs"]["res"].get("statusCode").is_some(),
        "no `status` without `statusCode`"
    );
    let row = h
        .tables()
        .row(&h.registry_table, "api", "test-api")
        .await
        .expect("envelope registration must write the row");
    assert_all_plain_strings(&row);
    assert_eq!(row["endpoint"], "https://test-api.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_envelope_validation_failures() {
    let h = Handler::start().await;
    let cases: Vec<(Option<String>, &str, u16)> = vec![
        (
            Some(json!({"serviceName": "o'brien", "endpoint": "https://x.example.com"}).to_string()),
            "serviceName",
            400,
        ),
        (
            Some(json!({"serviceName": "ok", "endpoint": "ftp://x"}).to_string()),
            "endpoint",
            400,
        ),
        (Some("not json".to_string()), "body", 400),
        (Some("[]".to_string()), "body", 400),
        // No Body key at all (request without a body).
        (None, "body", 400),
        (
            Some(
                json!({"serviceName": "big", "endpoint": "https://b.example.com", "p": "q".repeat(70 * 1024)})
                    .to_string(),
            ),
            "body",
            413,
        ),
    ];
    for (body, field, status) in cases {
        let mut e = ReqEnvelope::new("ServiceRegistrar", "POST");
        if let Some(b) = &body {
            e = e.body(b);
        }
        let r = h.invoke("ServiceRegistrar", &e.build()).await;
        let res = r.envelope_res();
        assert_eq!(
            res.status,
            status,
            "Outputs.res.statusCode for body {:?}: {}",
            body.as_deref().map(|b| &b[..b.len().min(80)]),
            res.raw
        );
        let v = res.json();
        assert_error_body(&v, Some(field));
        assert!(
            res.header("Content-Type")
                .is_some_and(|ct| ct.starts_with("application/json")),
            "error Outputs.res.headers must carry Content-Type: {}",
            res.raw
        );
    }
    assert!(
        h.tables().rows(&h.registry_table).await.is_empty(),
        "failed envelope registrations must write nothing"
    );
}

async fn seed(h: &Handler) {
    for (t, n) in [("api", "one"), ("api", "two"), ("db", "three")] {
        h.register_ok(&json!({"serviceName": n, "serviceType": t, "endpoint": format!("https://{n}.example.com")}))
            .await;
    }
}

fn names(v: &Value) -> Vec<String> {
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["serviceName"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_envelope_query_forms_and_no_body() {
    let h = Handler::start().await;
    seed(&h).await;

    // Query as an object, no Body key.
    let e = ReqEnvelope::new("ServiceDiscovery", "GET").query(&[("serviceType", "api")]);
    let built = e.build();
    assert!(built["Data"]["req"].get("Body").is_none());
    let res = h.invoke("ServiceDiscovery", &built).await.envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    let v = res.json();
    assert_discovery_shape(&v);
    assert_eq!(names(&v), vec!["one", "two"]);
    assert!(res
        .header("Content-Type")
        .is_some_and(|ct| ct.starts_with("application/json")));

    // Query as a JSON-encoded string.
    let e = ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[("serviceType", "db")])
        .query_as_string();
    let built = e.build();
    assert!(built["Data"]["req"]["Query"].is_string());
    let res = h.invoke("ServiceDiscovery", &built).await.envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(names(&res.json()), vec!["three"]);

    // Empty query, string form "{}".
    let e = ReqEnvelope::new("ServiceDiscovery", "GET").query_as_string();
    let res = h
        .invoke("ServiceDiscovery", &e.build())
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(res.json()["count"], 3);

    // Header names in odd casing, a `code` in Query and Url, both query params.
    let e = ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[
            ("code", "abc"),
            ("serviceType", "api"),
            ("serviceName", "two"),
        ])
        .header("content-type", "application/json")
        .header("ACCEPT", "application/json")
        .header("x-FUNCTIONS-key", "abc");
    let res = h
        .invoke("ServiceDiscovery", &e.build())
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(names(&res.json()), vec!["two"]);

    // Invalid query in an envelope: HTTP 200, Outputs.res.statusCode 400.
    for (pairs, field) in [
        (vec![("healthyOnly", "maybe")], "healthyOnly"),
        (
            vec![("serviceType", "x' or PartitionKey ne '")],
            "serviceType",
        ),
    ] {
        let e = ReqEnvelope::new("ServiceDiscovery", "GET").query(&pairs);
        let res = h
            .invoke("ServiceDiscovery", &e.build())
            .await
            .envelope_res();
        assert_eq!(res.status, 400, "{}", res.raw);
        assert_error_body(&res.json(), Some(field));
    }
    let e = ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[("healthyOnly", "maybe")])
        .query_as_string();
    let res = h
        .invoke("ServiceDiscovery", &e.build())
        .await
        .envelope_res();
    assert_eq!(res.status, 400, "{}", res.raw);
    assert_error_body(&res.json(), Some("healthyOnly"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_envelopes_get_400_inside_the_envelope() {
    let h = Handler::start().await;
    let bad: Vec<(&str, String)> = vec![
        ("ServiceRegistrar", "this is not json".to_string()),
        ("ServiceRegistrar", "".to_string()),
        ("ServiceRegistrar", json!({"Metadata": {}}).to_string()),
        ("ServiceRegistrar", json!({"Data": {}}).to_string()),
        (
            "ServiceRegistrar",
            json!({"Data": {"other": {}}}).to_string(),
        ),
        ("ServiceRegistrar", json!([1, 2]).to_string()),
        ("ServiceDiscovery", "{\"Data\":".to_string()),
        ("ServiceDiscovery", json!({"Data": {}}).to_string()),
    ];
    for (f, body) in bad {
        // Still answered in the envelope's shape, so the host relays our 400 to the caller.
        let res = h.invoke_raw(f, body.clone()).await.envelope_res();
        assert_eq!(
            res.status, 400,
            "malformed envelope to /{f} ({body:?}) must carry statusCode 400, got {} {}",
            res.status, res.body
        );
        assert_error_body(&res.json(), None);
    }
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}

const QUERY_KEY: &str = "QKEYq8Zt3xVv1Ws9";
const HEADER_KEY: &str = "HKEYm2Pp7rLc4Nd6";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_keys_never_logged() {
    for (format, level) in [("text", "info"), ("json", "debug")] {
        let cfg = HandlerConfig::new(Mode::CustomHandler)
            .env("RUST_LOG_FORMAT", format)
            .env("RUST_LOG", level);
        let h = Handler::spawn(cfg).await;

        // Forwarded, successful and failing, with `code` and `x-functions-key`.
        for body in [
            recipe_body().to_string(),
            json!({"serviceName": "bad/name", "endpoint": "https://x.example.com"}).to_string(),
            "not json".to_string(),
        ] {
            let r = Resp::read(
                h.client
                    .post(h.url(&format!("/api/ServiceRegistrar?code={QUERY_KEY}")))
                    .header("x-functions-key", HEADER_KEY)
                    .header("x-ms-invocation-id", uuid::Uuid::new_v4().to_string())
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                r.status == 200 || r.status == 400,
                "{} {}",
                r.status,
                r.text
            );
        }
        for q in [
            format!("code={QUERY_KEY}"),
            format!("code={QUERY_KEY}&healthyOnly=maybe"),
            format!("serviceType=api&code={QUERY_KEY}"),
        ] {
            let r = Resp::read(
                h.client
                    .get(h.url(&format!("/api/ServiceDiscovery?{q}")))
                    .header("x-functions-key", HEADER_KEY)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                r.status == 200 || r.status == 400,
                "{} {}",
                r.status,
                r.text
            );
        }
        // Unknown route and wrong method with a key.
        let _ = h
            .client
            .get(h.url(&format!("/api/Nope?code={QUERY_KEY}")))
            .header("x-functions-key", HEADER_KEY)
            .send()
            .await
            .unwrap();
        let _ = h
            .client
            .get(h.url(&format!("/api/ServiceRegistrar?code={QUERY_KEY}")))
            .send()
            .await
            .unwrap();

        // Envelopes carrying the key in Url, Query, Headers and Metadata.
        for body in [
            Some(recipe_body().to_string()),
            Some("nope".to_string()),
            None,
        ] {
            let mut e = ReqEnvelope::new("ServiceRegistrar", "POST")
                .query(&[("code", QUERY_KEY)])
                .header("x-functions-key", HEADER_KEY)
                .metadata("code", json!(format!("\"{QUERY_KEY}\"")));
            if let Some(b) = &body {
                e = e.body(b);
            }
            let res = h
                .invoke("ServiceRegistrar", &e.build())
                .await
                .envelope_res();
            let joined = res.logs.join("\n");
            assert!(
                !joined.contains(QUERY_KEY) && !joined.contains(HEADER_KEY),
                "envelope Logs contain a function key: {joined}"
            );
        }
        let e = ReqEnvelope::new("ServiceDiscovery", "GET")
            .query(&[("code", QUERY_KEY), ("healthyOnly", "bad")])
            .header("X-Functions-Key", HEADER_KEY)
            .query_as_string();
        let _ = h
            .invoke("ServiceDiscovery", &e.build())
            .await
            .envelope_res();

        // The request line is logged before the answer goes out: once the last request's line is
        // in, everything these requests made the handler log is too.
        let logs = h
            .wait_for_log("\"/ServiceDiscovery\"", std::time::Duration::from_secs(10))
            .await;
        assert!(
            !h.stdout().trim().is_empty() || !h.stderr().trim().is_empty(),
            "no log output captured at all (RUST_LOG={level}); the check below would be vacuous"
        );
        assert!(
            !logs.contains(QUERY_KEY),
            "the `code` query key appears in the handler's logs (RUST_LOG_FORMAT={format}, RUST_LOG={level}):\n{logs}"
        );
        assert!(
            !logs.contains(HEADER_KEY),
            "the x-functions-key value appears in the handler's logs (RUST_LOG_FORMAT={format}, RUST_LOG={level}):\n{logs}"
        );
    }
}

/// The envelope carries exactly what the forwarded route returns (status and body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_and_forwarded_answers_match() {
    let h = Handler::start().await;
    let bodies = [
        recipe_body().to_string(),
        json!({"serviceName": "x", "endpoint": "tcp://host"}).to_string(),
        json!({"serviceName": "x", "endpoint": "https://x.example.com", "tags": [1]}).to_string(),
        json!({"endpoint": "https://x.example.com"}).to_string(),
        "{".to_string(),
    ];
    for b in bodies {
        let fwd = h.register_raw(b.clone()).await;
        let env = h
            .invoke(
                "ServiceRegistrar",
                &ReqEnvelope::new("ServiceRegistrar", "POST")
                    .body(&b)
                    .build(),
            )
            .await
            .envelope_res();
        assert_eq!(env.status, fwd.status, "status for body {b}");
        assert_eq!(env.json(), fwd.json(), "body for body {b}");
    }
    for q in [
        vec![],
        vec![("serviceType", "api")],
        vec![("serviceName", "a/b")],
        vec![("healthyOnly", "nah")],
    ] {
        let qs: String = q
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let fwd = h.discover(&qs).await;
        let env = h
            .invoke(
                "ServiceDiscovery",
                &ReqEnvelope::new("ServiceDiscovery", "GET")
                    .query(&q)
                    .build(),
            )
            .await
            .envelope_res();
        assert_eq!(env.status, fwd.status, "status for ?{qs}");
        let (mut a, mut b) = (env.json(), fwd.json());
        // Timestamps differ between the two calls.
        a.as_object_mut().unwrap().remove("timestamp");
        b.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(a, b, "body for ?{qs}");
    }
}
