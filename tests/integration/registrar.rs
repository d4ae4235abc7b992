//! POST /api/ServiceRegistrar (forwarded HTTP): success, stored row, defaults,
//! re-registration and every validation rule of the contract.

use crate::harness::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_registration_returns_exact_body_and_stores_string_row() {
    let h = Handler::start().await;
    let before = chrono::Utc::now();
    let r = h.register(&recipe_body()).await;
    let after = chrono::Utc::now();
    assert_eq!(r.status, 200, "body: {}", r.text);
    r.assert_json_content_type();
    assert_eq!(
        r.json(),
        json!({"message": "Service registered successfully", "serviceId": "api:test-api"})
    );

    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(rows.len(), 1, "exactly one registry row expected: {rows:?}");
    let row = &rows[0];
    assert_eq!(row["PartitionKey"], "api");
    assert_eq!(row["RowKey"], "test-api");
    assert_all_plain_strings(row);
    let props = user_properties(row);
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort();
    let mut expected = vec![
        "serviceName",
        "endpoint",
        "healthEndpoint",
        "serviceType",
        "version",
        "tags",
        "metadata",
        "registeredAt",
        "lastHeartbeat",
    ];
    expected.sort();
    for k in &expected {
        assert!(keys.contains(k), "row lacks property {k}: {row}");
    }
    assert_eq!(props["serviceName"], "test-api");
    assert_eq!(props["endpoint"], "https://test-api.example.com");
    assert_eq!(props["healthEndpoint"], "https://test-api.example.com");
    assert_eq!(props["serviceType"], "api");
    assert_eq!(props["version"], "1.0.0");
    let tags: Value = serde_json::from_str(props["tags"].as_str().unwrap()).expect("tags JSON");
    assert_eq!(tags, json!(["production", "rest-api"]));
    let md: Value =
        serde_json::from_str(props["metadata"].as_str().unwrap()).expect("metadata JSON");
    assert_eq!(md, json!({"region": "eastus", "port": 443}));
    for k in ["registeredAt", "lastHeartbeat"] {
        let s = props[k].as_str().unwrap();
        assert_iso_utc(s);
        let t = parse_iso(s);
        assert!(
            t >= before - chrono::Duration::seconds(2) && t <= after + chrono::Duration::seconds(2),
            "{k}={s} is not the registration time ({before}..{after})"
        );
    }
    // Nothing written to the health table by a registration.
    assert!(h.tables().rows(&h.health_table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_applies_defaults() {
    let h = Handler::start().await;
    let r = h
        .register(&json!({"serviceName": "bare", "endpoint": "http://bare.internal:8080/x"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"message": "Service registered successfully", "serviceId": "default:bare"})
    );
    let row = h
        .tables()
        .row(&h.registry_table, "default", "bare")
        .await
        .expect("row under PartitionKey default");
    assert_all_plain_strings(&row);
    assert_eq!(row["serviceType"], "default");
    assert_eq!(row["version"], "1.0.0");
    assert_eq!(row["healthEndpoint"], "http://bare.internal:8080/x");
    assert_eq!(
        serde_json::from_str::<Value>(row["tags"].as_str().unwrap()).unwrap(),
        json!([])
    );
    assert_eq!(
        serde_json::from_str::<Value>(row["metadata"].as_str().unwrap()).unwrap(),
        json!({})
    );

    // `null` means absent; unknown fields are ignored.
    let r = h
        .register(&json!({
            "serviceName": "nulls", "endpoint": "tcp://redis.internal:6379",
            "serviceType": null, "version": null, "tags": null, "metadata": null,
            "healthEndpoint": null, "somethingElse": {"x": 1}
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["serviceId"], "default:nulls");
    let row = h
        .tables()
        .row(&h.registry_table, "default", "nulls")
        .await
        .expect("row");
    assert_eq!(row["healthEndpoint"], "tcp://redis.internal:6379");
    assert_eq!(row["version"], "1.0.0");
    assert_eq!(row["tags"], "[]");
    assert_eq!(row["metadata"], "{}");
    assert!(
        row.get("somethingElse").is_none(),
        "unknown field must not be stored: {row}"
    );

    // Explicit healthEndpoint is kept.
    h.register_ok(&json!({
        "serviceName": "he", "endpoint": "https://he.example.com",
        "healthEndpoint": "https://he.example.com/healthz"
    }))
    .await;
    let row = h
        .tables()
        .row(&h.registry_table, "default", "he")
        .await
        .unwrap();
    assert_eq!(row["healthEndpoint"], "https://he.example.com/healthz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_content_type_is_accepted() {
    let h = Handler::start().await;
    let body = json!({"serviceName": "curl-d", "endpoint": "https://c.example.com"}).to_string();
    // curl -d without -H sends application/x-www-form-urlencoded.
    for (i, ct) in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ]
    .iter()
    .enumerate()
    {
        let mut rb = h
            .client
            .post(h.url("/api/ServiceRegistrar"))
            .header("x-ms-invocation-id", uuid::Uuid::new_v4().to_string());
        if let Some(ct) = ct {
            rb = rb.header("Content-Type", *ct);
        }
        let r = Resp::read(rb.body(body.clone()).send().await.unwrap()).await;
        assert_eq!(r.status, 200, "content type {ct:?} (case {i}): {}", r.text);
    }
    assert!(h
        .tables()
        .row(&h.registry_table, "default", "curl-d")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reregistration_keeps_registered_at_and_moves_last_heartbeat() {
    let h = Handler::start().await;
    h.register_ok(&recipe_body()).await;
    let first = h
        .tables()
        .row(&h.registry_table, "api", "test-api")
        .await
        .expect("row after first registration");
    // Let the clock pass the stored lastHeartbeat by more than the 500 ms asserted below (whole
    // milliseconds, as stored, hence 501).
    wait_until_past_stored(
        first["lastHeartbeat"].as_str().unwrap(),
        chrono::Duration::milliseconds(501),
    )
    .await;

    let mut second_body = recipe_body();
    second_body["endpoint"] = json!("https://test-api-v2.example.com");
    second_body["version"] = json!("2.0.0");
    second_body["tags"] = json!(["canary"]);
    let r = h.register(&second_body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"message": "Service registered successfully", "serviceId": "api:test-api"})
    );
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(
        rows.len(),
        1,
        "re-registration must not add a row: {rows:?}"
    );
    let second = &rows[0];
    assert_eq!(
        second["registeredAt"], first["registeredAt"],
        "registeredAt must be kept on re-registration"
    );
    let hb1 = parse_iso(first["lastHeartbeat"].as_str().unwrap());
    let hb2 = parse_iso(second["lastHeartbeat"].as_str().unwrap());
    assert!(
        hb2 > hb1 + chrono::Duration::milliseconds(500),
        "lastHeartbeat must move: {hb1} -> {hb2}"
    );
    assert_eq!(second["endpoint"], "https://test-api-v2.example.com");
    assert_eq!(
        second["healthEndpoint"], "https://test-api-v2.example.com",
        "healthEndpoint defaults to the new endpoint"
    );
    assert_eq!(second["version"], "2.0.0");
    assert_eq!(
        second["tags"]
            .as_str()
            .map(|s| serde_json::from_str::<Value>(s).unwrap()),
        Some(json!(["canary"]))
    );
    assert_all_plain_strings(second);

    // A re-registration replaces the fields (no merge): omitted optionals fall back to defaults.
    let r = h
        .register(&json!({"serviceName": "test-api", "serviceType": "api", "endpoint": "tcp://test-api.internal:9000"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let third = h
        .tables()
        .row(&h.registry_table, "api", "test-api")
        .await
        .unwrap();
    assert_eq!(third["registeredAt"], first["registeredAt"]);
    assert_eq!(third["endpoint"], "tcp://test-api.internal:9000");
    assert_eq!(third["healthEndpoint"], "tcp://test-api.internal:9000");
    assert_eq!(third["version"], "1.0.0");
    assert_eq!(
        third["tags"], "[]",
        "tags must be replaced, not merged: {third}"
    );
    assert_eq!(
        third["metadata"], "{}",
        "metadata must be replaced, not merged: {third}"
    );
    let second = &third;

    // Discovery shows the kept registeredAt too.
    let d = h.discover_ok("serviceType=api&serviceName=test-api").await;
    assert_eq!(d["count"], 1);
    assert_eq!(d["services"][0]["registeredAt"], first["registeredAt"]);
    assert_eq!(d["services"][0]["lastHeartbeat"], second["lastHeartbeat"]);
}

/// One invalid request of the validation table.
struct Case {
    name: &'static str,
    body: String,
    status: u16,
    field: &'static str,
}

fn case(name: &'static str, body: Value, field: &'static str) -> Case {
    Case {
        name,
        body: body.to_string(),
        status: 400,
        field,
    }
}

fn with(field: &str, value: Value) -> Value {
    let mut b = json!({"serviceName": "svc", "endpoint": "https://svc.example.com"});
    b[field] = value;
    b
}

fn without(field: &str) -> Value {
    let mut b = json!({"serviceName": "svc", "endpoint": "https://svc.example.com"});
    b.as_object_mut().unwrap().remove(field);
    b
}

fn validation_cases() -> Vec<Case> {
    let many_tags: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let mut many_keys = serde_json::Map::new();
    for i in 0..65 {
        many_keys.insert(format!("k{i}"), json!(i));
    }
    let long_endpoint = format!("https://a.example.com/{}", "p".repeat(2048));
    vec![
        // body
        Case {
            name: "not JSON",
            body: "this is not json".into(),
            status: 400,
            field: "body",
        },
        Case {
            name: "empty body",
            body: "".into(),
            status: 400,
            field: "body",
        },
        Case {
            name: "truncated JSON",
            body: "{\"serviceName\": \"a\"".into(),
            status: 400,
            field: "body",
        },
        case(
            "array body",
            json!([{"serviceName": "a", "endpoint": "https://a.example.com"}]),
            "body",
        ),
        case("string body", json!("serviceName"), "body"),
        case("number body", json!(42), "body"),
        case("null body", Value::Null, "body"),
        // serviceName
        case("serviceName missing", without("serviceName"), "serviceName"),
        case(
            "serviceName null",
            with("serviceName", Value::Null),
            "serviceName",
        ),
        case(
            "serviceName number",
            with("serviceName", json!(123)),
            "serviceName",
        ),
        case(
            "serviceName array",
            with("serviceName", json!(["a"])),
            "serviceName",
        ),
        case(
            "serviceName empty",
            with("serviceName", json!("")),
            "serviceName",
        ),
        case(
            "serviceName slash",
            with("serviceName", json!("a/b")),
            "serviceName",
        ),
        case(
            "serviceName backslash",
            with("serviceName", json!("a\\b")),
            "serviceName",
        ),
        case(
            "serviceName hash",
            with("serviceName", json!("a#b")),
            "serviceName",
        ),
        case(
            "serviceName question",
            with("serviceName", json!("a?b")),
            "serviceName",
        ),
        case(
            "serviceName quote",
            with("serviceName", json!("o'brien")),
            "serviceName",
        ),
        case(
            "serviceName control char",
            with("serviceName", json!("ab\u{0001}cd")),
            "serviceName",
        ),
        case(
            "serviceName newline",
            with("serviceName", json!("ab\ncd")),
            "serviceName",
        ),
        case(
            "serviceName 129 chars",
            with("serviceName", json!("a".repeat(129))),
            "serviceName",
        ),
        case(
            "serviceName leading dash",
            with("serviceName", json!("-abc")),
            "serviceName",
        ),
        case(
            "serviceName space",
            with("serviceName", json!("a b")),
            "serviceName",
        ),
        case(
            "serviceName colon",
            with("serviceName", json!("a:b")),
            "serviceName",
        ),
        case(
            "serviceName non-ascii",
            with("serviceName", json!("caf\u{e9}")),
            "serviceName",
        ),
        // endpoint
        case("endpoint missing", without("endpoint"), "endpoint"),
        case("endpoint null", with("endpoint", Value::Null), "endpoint"),
        case("endpoint number", with("endpoint", json!(8080)), "endpoint"),
        case("endpoint empty", with("endpoint", json!("")), "endpoint"),
        case(
            "endpoint ftp",
            with("endpoint", json!("ftp://x")),
            "endpoint",
        ),
        case(
            "endpoint not a url",
            with("endpoint", json!("not a url")),
            "endpoint",
        ),
        case(
            "endpoint http no host",
            with("endpoint", json!("http://")),
            "endpoint",
        ),
        case(
            "endpoint tcp no port",
            with("endpoint", json!("tcp://host")),
            "endpoint",
        ),
        case(
            "endpoint relative path",
            with("endpoint", json!("/api/health")),
            "endpoint",
        ),
        case(
            "endpoint host only",
            with("endpoint", json!("svc.example.com")),
            "endpoint",
        ),
        case(
            "endpoint over 2048",
            with("endpoint", json!(long_endpoint.clone())),
            "endpoint",
        ),
        case(
            "endpoint tcp bad port",
            with("endpoint", json!("tcp://host:99999")),
            "endpoint",
        ),
        case(
            "endpoint tcp empty",
            with("endpoint", json!("tcp://")),
            "endpoint",
        ),
        case(
            "endpoint http bad port",
            with("endpoint", json!("http://host:99999/")),
            "endpoint",
        ),
        case(
            "endpoint mailto",
            with("endpoint", json!("mailto:ops@example.com")),
            "endpoint",
        ),
        case(
            "endpoint file",
            with("endpoint", json!("file:///etc/passwd")),
            "endpoint",
        ),
        case(
            "healthEndpoint over 2048",
            with("healthEndpoint", json!(long_endpoint)),
            "healthEndpoint",
        ),
        // healthEndpoint
        case(
            "healthEndpoint ftp",
            with("healthEndpoint", json!("ftp://x")),
            "healthEndpoint",
        ),
        case(
            "healthEndpoint number",
            with("healthEndpoint", json!(5)),
            "healthEndpoint",
        ),
        case(
            "healthEndpoint relative",
            with("healthEndpoint", json!("/health")),
            "healthEndpoint",
        ),
        case(
            "healthEndpoint tcp no port",
            with("healthEndpoint", json!("tcp://host")),
            "healthEndpoint",
        ),
        // serviceType
        case(
            "serviceType slash",
            with("serviceType", json!("a/b")),
            "serviceType",
        ),
        case(
            "serviceType quote",
            with("serviceType", json!("x' or PartitionKey ne '")),
            "serviceType",
        ),
        case(
            "serviceType number",
            with("serviceType", json!(7)),
            "serviceType",
        ),
        case(
            "serviceType 129 chars",
            with("serviceType", json!("t".repeat(129))),
            "serviceType",
        ),
        case(
            "serviceType hash",
            with("serviceType", json!("a#b")),
            "serviceType",
        ),
        // version
        case("version empty", with("version", json!("")), "version"),
        case(
            "version 65 chars",
            with("version", json!("1".repeat(65))),
            "version",
        ),
        case(
            "version control char",
            with("version", json!("1.0\n")),
            "version",
        ),
        case("version number", with("version", json!(1.0)), "version"),
        // tags
        case("tags string", with("tags", json!("production")), "tags"),
        case("tags numbers", with("tags", json!([1, 2])), "tags"),
        case("tags object", with("tags", json!({"a": "b"})), "tags"),
        case("tags nested array", with("tags", json!([["a"]])), "tags"),
        case("tags 33 items", with("tags", json!(many_tags)), "tags"),
        case("tags empty string", with("tags", json!([""])), "tags"),
        case(
            "tags 129 chars",
            with("tags", json!(["x".repeat(129)])),
            "tags",
        ),
        case(
            "tags control char",
            with("tags", json!(["a\u{0007}"])),
            "tags",
        ),
        // metadata
        case("metadata array", with("metadata", json!([1])), "metadata"),
        case("metadata string", with("metadata", json!("{}")), "metadata"),
        case("metadata number", with("metadata", json!(5)), "metadata"),
        case(
            "metadata 65 keys",
            with("metadata", Value::Object(many_keys)),
            "metadata",
        ),
        case(
            "metadata over 8192 bytes",
            with("metadata", json!({"blob": "m".repeat(8200)})),
            "metadata",
        ),
        // first failing field is reported
        case(
            "serviceName before endpoint",
            json!({"serviceName": "a/b", "endpoint": "ftp://x"}),
            "serviceName",
        ),
        case(
            "endpoint before tags",
            json!({"serviceName": "ok", "endpoint": "ftp://x", "tags": "bad"}),
            "endpoint",
        ),
        case(
            "version before tags and metadata",
            json!({"serviceName": "ok", "endpoint": "https://ok.example.com", "version": "", "tags": "bad", "metadata": []}),
            "version",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_rule_rejects_and_writes_nothing() {
    let h = Handler::start().await;
    let mut failures = vec![];
    for c in validation_cases() {
        let r = h.register_raw(c.body.clone()).await;
        let ok = r.status == c.status
            && r.header("content-type")
                .is_some_and(|ct| ct.starts_with("application/json"))
            && serde_json::from_str::<Value>(&r.text)
                .ok()
                .is_some_and(|v| {
                    v["field"].as_str() == Some(c.field)
                        && v["error"].as_str().is_some_and(|e| !e.trim().is_empty())
                });
        if !ok {
            failures.push(format!(
                "[{}] expected {} field {:?}, got {} {:?} {}",
                c.name,
                c.status,
                c.field,
                r.status,
                r.header("content-type"),
                r.text.chars().take(300).collect::<String>()
            ));
        }
        let rows = h.tables().rows(&h.registry_table).await;
        if !rows.is_empty() {
            failures.push(format!("[{}] a row was written: {rows:?}", c.name));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} validation case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let h = Handler::start().await;
    // A valid JSON object of about 70 KB.
    let big = json!({
        "serviceName": "big", "endpoint": "https://big.example.com",
        "padding": "z".repeat(70 * 1024)
    })
    .to_string();
    assert!(big.len() > 65_536);
    let r = h.register_raw(big).await;
    r.assert_error(413, Some("body"));

    // Not JSON and too big: the size rule comes first.
    let r = h.register_raw("x".repeat(70 * 1024)).await;
    r.assert_error(413, Some("body"));

    assert!(h.tables().rows(&h.registry_table).await.is_empty());

    // Just under the limit is not rejected for size.
    let mut ok = json!({
        "serviceName": "big", "endpoint": "https://big.example.com",
        "padding": ""
    });
    let base_len = ok.to_string().len();
    ok["padding"] = json!("z".repeat(65_536 - base_len));
    let s = ok.to_string();
    assert_eq!(s.len(), 65_536);
    let r = h.register_raw(s).await;
    assert_eq!(
        r.status, 200,
        "a 65,536-byte body must be accepted: {}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundary_values_are_accepted() {
    let h = Handler::start().await;
    let name128 = format!("a{}", "b".repeat(127));
    let mut tags32: Vec<String> = (0..31).map(|i| format!("{i}{}", "t".repeat(120))).collect();
    tags32.push("x".repeat(128));
    let mut keys64 = serde_json::Map::new();
    for i in 0..64 {
        keys64.insert(format!("k{i}"), json!({"nested": [i, true, null]}));
    }
    let long_ep = format!("https://a.example.com/{}", "p".repeat(2048 - 22));
    assert_eq!(long_ep.len(), 2048);
    let body = json!({
        "serviceName": name128,
        "serviceType": "Type_1.x-y",
        "endpoint": long_ep,
        "healthEndpoint": "http://localhost:8080/health?x=1",
        "version": "v".repeat(64),
        "tags": tags32,
        "metadata": keys64,
    });
    let r = h.register(&body).await;
    assert_eq!(
        r.status, 200,
        "boundary values must be accepted: {}",
        r.text
    );
    assert_eq!(
        r.json()["serviceId"],
        json!(format!("Type_1.x-y:{name128}"))
    );
    let row = h
        .tables()
        .row(&h.registry_table, "Type_1.x-y", &name128)
        .await
        .expect("row");
    assert_eq!(row["endpoint"], json!(long_ep));
    let tags: Value = serde_json::from_str(row["tags"].as_str().unwrap()).unwrap();
    assert_eq!(tags, json!(tags32));
    let md: Value = serde_json::from_str(row["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(md, Value::Object(keys64));

    // tcp://host:port endpoint
    h.register_ok(&json!({"serviceName": "redis", "serviceType": "cache", "endpoint": "tcp://redis.internal:6379"}))
        .await;
    let row = h
        .tables()
        .row(&h.registry_table, "cache", "redis")
        .await
        .expect("tcp row");
    assert_eq!(row["endpoint"], "tcp://redis.internal:6379");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_all_land() {
    let h = Handler::start().await;
    let futs = (0..60).map(|i| {
        let h = &h;
        async move {
            let body = json!({
                "serviceName": format!("par-{i:02}"),
                "serviceType": format!("t{}", i % 3),
                "endpoint": format!("https://par{i}.example.com")
            });
            (i, h.register(&body).await)
        }
    });
    let results = futures::future::join_all(futs).await;
    for (i, r) in results {
        assert_eq!(r.status, 200, "registration {i}: {}", r.text);
    }
    assert_eq!(h.tables().rows(&h.registry_table).await.len(), 60);
    let v = h.discover_ok("").await;
    assert_eq!(v["count"], 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_are_read_and_limited() {
    let h = Handler::start().await;
    let chunked = |s: String| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = s
            .into_bytes()
            .chunks(1000)
            .map(|c| Ok(c.to_vec()))
            .collect();
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };
    let body = json!({"serviceName": "chunky", "endpoint": "https://c.example.com"}).to_string();
    let r = h.register_raw(chunked(body)).await;
    assert_eq!(r.status, 200, "chunked registration: {}", r.text);
    assert!(h
        .tables()
        .row(&h.registry_table, "default", "chunky")
        .await
        .is_some());

    let big = json!({"serviceName": "chunkbig", "endpoint": "https://c.example.com", "p": "q".repeat(70 * 1024)})
        .to_string();
    let r = h.register_raw(chunked(big)).await;
    r.assert_error(413, Some("body"));
    assert!(h
        .tables()
        .row(&h.registry_table, "default", "chunkbig")
        .await
        .is_none());
}
