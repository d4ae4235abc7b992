//! Instances: instance ids, TTL, weight and health-check options on registration; heartbeat;
//! expiry in discovery and deletion by the sweep; deregistration; the function.json files.

use crate::harness::*;
use serde_json::{json, Value};

fn handler_cache_off() -> Vec<(&'static str, &'static str)> {
    vec![("DISCOVERY_CACHE_TTL_MS", "0")]
}

/// The example in docs/testing.md ("Adding a test"), kept running so it stays true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_keeps_an_instance_listed_and_probed() {
    let h = Handler::start().await;
    let target = HttpTarget::status(200);
    let orders = json!({"serviceName": "orders", "serviceType": "api", "instanceId": "pod-1"});
    let mut body = orders.clone();
    body["endpoint"] = json!(target.url);
    h.register_ok(&body).await;
    let r = h.heartbeat(&orders).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.sweep_report().await.healthy, 1);
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(keys(&h.discover_ok("").await), vec!["api/orders/pod-1"]);
}

// ---------------------------------------------------------------------------
// Registration with instance ids
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_registration_keys_rows_by_name_and_instance() {
    let h = Handler::start().await;

    // Without an instance id: exactly as before.
    let r = h
        .register(
            &json!({"serviceName": "web", "serviceType": "api", "endpoint": local_endpoint("web")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"message": "Service registered successfully", "serviceId": "api:web"})
    );

    // With one: the answer names it.
    let r = h
        .register(&json!({
            "serviceName": "web", "serviceType": "api", "endpoint": local_endpoint("web-a"),
            "instanceId": "a", "ttlSeconds": 30, "weight": 7,
            "healthCheck": {"kind": "http", "timeoutMs": 250, "path": "/healthz"}
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.assert_json_content_type();
    assert_eq!(
        r.json(),
        json!({"message": "Service registered successfully", "serviceId": "api:web", "instanceId": "a"})
    );
    let b = h
        .register_instance("api", "web", Some("b"), json!({}))
        .await;
    assert_eq!(
        b,
        json!({"message": "Service registered successfully", "serviceId": "api:web", "instanceId": "b"})
    );
    // Neighbours whose names share a prefix with "web".
    h.register_instance("api", "web2", None, json!({})).await;
    h.register_instance("api", "web-x", Some("a"), json!({}))
        .await;

    let tables = h.tables();
    let rows = tables
        .query(&h.registry_table, Some("PartitionKey eq 'api'"))
        .await;
    let mut rks: Vec<&str> = rows.iter().map(|r| r["RowKey"].as_str().unwrap()).collect();
    rks.sort();
    assert_eq!(rks, vec!["web", "web-x:a", "web2", "web:a", "web:b"]);

    let plain = tables.row(&h.registry_table, "api", "web").await.unwrap();
    assert!(
        plain.get("instanceId").is_none(),
        "a registration without instanceId must not store an instanceId property: {plain}"
    );
    assert_eq!(plain["serviceName"], "web");

    let a = tables.row(&h.registry_table, "api", "web:a").await.unwrap();
    assert_eq!(a["instanceId"], "a", "{a}");
    assert_eq!(a["serviceName"], "web", "{a}");
    assert_eq!(a["serviceType"], "api", "{a}");
    assert_eq!(a["endpoint"], local_endpoint("web-a"));
    assert_eq!(int32_prop(&a, "ttlSeconds"), 30);
    assert_eq!(int32_prop(&a, "weight"), 7);
    let hc: Value = serde_json::from_str(
        a["healthCheck"]
            .as_str()
            .unwrap_or_else(|| panic!("healthCheck must be stored as JSON text: {a}")),
    )
    .expect("healthCheck JSON text");
    assert_eq!(hc["kind"], "http", "{hc}");
    assert_eq!(hc["timeoutMs"], 250, "{hc}");
    assert_eq!(hc["path"], "/healthz", "{hc}");
    assert_iso_utc(a["registeredAt"].as_str().unwrap());
    assert_iso_utc(a["lastHeartbeat"].as_str().unwrap());
    let bx = tables.row(&h.registry_table, "api", "web:b").await.unwrap();
    assert!(
        bx.get("ttlSeconds").is_none() || bx["ttlSeconds"].is_null(),
        "no ttlSeconds given, none stored: {bx}"
    );

    // Discovery by name: the plain row and every instance of exactly that name, in RowKey order.
    let v = h.discover_ok("serviceName=web").await;
    let s = items(&v);
    assert_eq!(
        s.iter().map(key_of).collect::<Vec<_>>(),
        vec!["api/web/-", "api/web/a", "api/web/b"]
    );
    assert_eq!(s[0]["instanceId"], Value::Null);
    assert_eq!(s[0]["weight"], 100);
    assert_eq!(s[0]["ttlSeconds"], Value::Null);
    assert_eq!(s[0]["expiresAt"], Value::Null);
    assert_eq!(s[0]["expired"], false);
    assert_eq!(s[0]["endpoint"], local_endpoint("web"));
    assert_eq!(s[1]["instanceId"], "a");
    assert_eq!(s[1]["weight"], 7);
    assert_eq!(s[1]["ttlSeconds"], 30);
    assert_eq!(s[1]["expired"], false);
    assert_eq!(s[1]["endpoint"], local_endpoint("web-a"));
    assert_eq!(s[1]["lastHeartbeat"], a["lastHeartbeat"]);
    assert_eq!(s[1]["registeredAt"], a["registeredAt"]);
    let expires = parse_iso(s[1]["expiresAt"].as_str().unwrap());
    let expected = parse_iso(a["lastHeartbeat"].as_str().unwrap()) + chrono::Duration::seconds(30);
    assert!(
        (expires - expected).num_milliseconds().abs() <= 1000,
        "expiresAt {expires} must be lastHeartbeat + ttlSeconds ({expected})"
    );
    assert_eq!(s[2]["instanceId"], "b");
    assert_eq!(s[2]["weight"], 100);
    assert_eq!(s[2]["healthStatus"], Value::Null);

    // One instance.
    let v = h.discover_ok("serviceName=web&instanceId=b").await;
    assert_eq!(keys(&v), vec!["api/web/b"]);
    let v = h
        .discover_ok("serviceType=api&serviceName=web&instanceId=a")
        .await;
    assert_eq!(keys(&v), vec!["api/web/a"]);
    let v = h.discover_ok("serviceName=web&instanceId=zzz").await;
    assert_eq!(keys(&v), Vec::<String>::new());
    let v = h.discover_ok("serviceName=web-x").await;
    assert_eq!(keys(&v), vec!["api/web-x/a"]);
    // instanceId without serviceName, or outside the name rule.
    h.discover("instanceId=a")
        .await
        .assert_error(400, Some("instanceId"));
    h.discover("serviceType=api&instanceId=a")
        .await
        .assert_error(400, Some("instanceId"));
    h.discover("serviceName=web&instanceId=a%3Ab")
        .await
        .assert_error(400, Some("instanceId"));

    // Everything: five items ordered by (serviceType, RowKey).
    let v = h.discover_ok("").await;
    assert_eq!(
        keys(&v),
        vec![
            "api/web/-",
            "api/web-x/a",
            "api/web2/-",
            "api/web/a",
            "api/web/b"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_reregistration_keeps_registered_at_and_touches_only_that_row() {
    let h = Handler::start().await;
    h.register_instance("api", "svc", None, json!({})).await;
    h.register_instance("api", "svc", Some("i1"), json!({"weight": 5}))
        .await;
    h.register_instance("api", "svc", Some("i2"), json!({}))
        .await;
    let tables = h.tables();
    let before_plain = tables.row(&h.registry_table, "api", "svc").await.unwrap();
    let before_i1 = tables
        .row(&h.registry_table, "api", "svc:i1")
        .await
        .unwrap();
    let before_i2 = tables
        .row(&h.registry_table, "api", "svc:i2")
        .await
        .unwrap();
    // So the re-registration's lastHeartbeat can only be later than the stored one.
    wait_until_past_stored(
        before_i1["lastHeartbeat"].as_str().unwrap(),
        chrono::Duration::zero(),
    )
    .await;

    h.register_instance(
        "api",
        "svc",
        Some("i1"),
        json!({"weight": 9, "endpoint": local_endpoint("svc-moved"), "ttlSeconds": 60}),
    )
    .await;
    let rows = tables.rows(&h.registry_table).await;
    assert_eq!(
        rows.len(),
        3,
        "re-registration must not add a row: {rows:?}"
    );
    let after_i1 = tables
        .row(&h.registry_table, "api", "svc:i1")
        .await
        .unwrap();
    assert_eq!(after_i1["registeredAt"], before_i1["registeredAt"]);
    assert!(
        parse_iso(after_i1["lastHeartbeat"].as_str().unwrap())
            > parse_iso(before_i1["lastHeartbeat"].as_str().unwrap()),
        "lastHeartbeat must move on re-registration: {before_i1} -> {after_i1}"
    );
    assert_eq!(int32_prop(&after_i1, "weight"), 9);
    assert_eq!(int32_prop(&after_i1, "ttlSeconds"), 60);
    assert_eq!(after_i1["endpoint"], local_endpoint("svc-moved"));
    assert_eq!(after_i1["instanceId"], "i1");
    // The other rows of the same name are untouched.
    assert_eq!(
        user_properties(&tables.row(&h.registry_table, "api", "svc").await.unwrap()),
        user_properties(&before_plain)
    );
    assert_eq!(
        user_properties(
            &tables
                .row(&h.registry_table, "api", "svc:i2")
                .await
                .unwrap()
        ),
        user_properties(&before_i2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_fields_are_validated_and_refusals_write_nothing() {
    let h = Handler::start().await;
    let http = json!({"serviceName": "v", "endpoint": local_endpoint("v")});
    let tcp = json!({"serviceName": "v", "endpoint": "tcp://127.0.0.1:6379"});
    let with = |base: &Value, k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "instanceId empty",
            with(&http, "instanceId", json!("")),
            "instanceId",
        ),
        (
            "instanceId colon",
            with(&http, "instanceId", json!("a:b")),
            "instanceId",
        ),
        (
            "instanceId slash",
            with(&http, "instanceId", json!("a/b")),
            "instanceId",
        ),
        (
            "instanceId quote",
            with(&http, "instanceId", json!("o'b")),
            "instanceId",
        ),
        (
            "instanceId space",
            with(&http, "instanceId", json!("a b")),
            "instanceId",
        ),
        (
            "instanceId leading dash",
            with(&http, "instanceId", json!("-a")),
            "instanceId",
        ),
        (
            "instanceId 129 chars",
            with(&http, "instanceId", json!("i".repeat(129))),
            "instanceId",
        ),
        (
            "instanceId number",
            with(&http, "instanceId", json!(5)),
            "instanceId",
        ),
        (
            "instanceId array",
            with(&http, "instanceId", json!(["a"])),
            "instanceId",
        ),
        (
            "ttlSeconds 4",
            with(&http, "ttlSeconds", json!(4)),
            "ttlSeconds",
        ),
        (
            "ttlSeconds 0",
            with(&http, "ttlSeconds", json!(0)),
            "ttlSeconds",
        ),
        (
            "ttlSeconds negative",
            with(&http, "ttlSeconds", json!(-30)),
            "ttlSeconds",
        ),
        (
            "ttlSeconds 86401",
            with(&http, "ttlSeconds", json!(86401)),
            "ttlSeconds",
        ),
        (
            "ttlSeconds string",
            with(&http, "ttlSeconds", json!("30")),
            "ttlSeconds",
        ),
        (
            "ttlSeconds fraction",
            with(&http, "ttlSeconds", json!(30.5)),
            "ttlSeconds",
        ),
        (
            "ttlSeconds bool",
            with(&http, "ttlSeconds", json!(true)),
            "ttlSeconds",
        ),
        (
            "weight negative",
            with(&http, "weight", json!(-1)),
            "weight",
        ),
        ("weight 1001", with(&http, "weight", json!(1001)), "weight"),
        (
            "weight string",
            with(&http, "weight", json!("100")),
            "weight",
        ),
        (
            "weight fraction",
            with(&http, "weight", json!(1.5)),
            "weight",
        ),
        (
            "healthCheck string",
            with(&http, "healthCheck", json!("http")),
            "healthCheck",
        ),
        (
            "healthCheck array",
            with(&http, "healthCheck", json!([])),
            "healthCheck",
        ),
        (
            "healthCheck number",
            with(&http, "healthCheck", json!(1)),
            "healthCheck",
        ),
        (
            "healthCheck.kind udp",
            with(&http, "healthCheck", json!({"kind": "udp"})),
            "healthCheck.kind",
        ),
        (
            "healthCheck.kind number",
            with(&http, "healthCheck", json!({"kind": 1})),
            "healthCheck.kind",
        ),
        (
            "healthCheck.timeoutMs 99",
            with(&http, "healthCheck", json!({"timeoutMs": 99})),
            "healthCheck.timeoutMs",
        ),
        (
            "healthCheck.timeoutMs 30001",
            with(&http, "healthCheck", json!({"timeoutMs": 30001})),
            "healthCheck.timeoutMs",
        ),
        (
            "healthCheck.timeoutMs string",
            with(&http, "healthCheck", json!({"timeoutMs": "500"})),
            "healthCheck.timeoutMs",
        ),
        (
            "healthCheck.timeoutMs fraction",
            with(&http, "healthCheck", json!({"timeoutMs": 500.5})),
            "healthCheck.timeoutMs",
        ),
        (
            "healthCheck.path no slash",
            with(&http, "healthCheck", json!({"path": "health"})),
            "healthCheck.path",
        ),
        (
            "healthCheck.path number",
            with(&http, "healthCheck", json!({"path": 5})),
            "healthCheck.path",
        ),
        (
            "healthCheck.path with kind tcp",
            with(&http, "healthCheck", json!({"kind": "tcp", "path": "/h"})),
            "healthCheck.path",
        ),
        (
            "healthCheck.path on a tcp endpoint",
            with(&tcp, "healthCheck", json!({"path": "/h"})),
            "healthCheck.path",
        ),
        (
            "healthCheck.kind http on a tcp endpoint",
            with(&tcp, "healthCheck", json!({"kind": "http"})),
            "healthCheck.kind",
        ),
    ];
    let mut failures = vec![];
    for (name, body, field) in &cases {
        let r = h.register(body).await;
        let ok = r.status == 400
            && r.header("content-type")
                .is_some_and(|ct| ct.starts_with("application/json"))
            && serde_json::from_str::<Value>(&r.text)
                .ok()
                .is_some_and(|v| {
                    v["field"].as_str() == Some(field)
                        && v["error"].as_str().is_some_and(|e| !e.trim().is_empty())
                });
        if !ok {
            failures.push(format!(
                "[{name}] expected 400 field {field:?}, got {} {}",
                r.status,
                r.text.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        h.tables().rows(&h.registry_table).await.is_empty(),
        "refused registrations must write nothing"
    );

    // Boundaries and nulls are accepted.
    let long_id = format!("A{}xy", "z._-9".repeat(25));
    assert_eq!(long_id.len(), 128);
    let long_rk = format!("v:{long_id}");
    let ok_cases: Vec<(Value, &str)> = vec![
        (with(&http, "ttlSeconds", json!(5)), "v"),
        (
            with(
                &with(&http, "instanceId", json!("i1")),
                "ttlSeconds",
                json!(86400),
            ),
            "v:i1",
        ),
        (
            with(&with(&http, "instanceId", json!("i2")), "weight", json!(0)),
            "v:i2",
        ),
        (
            with(
                &with(&http, "instanceId", json!("i3")),
                "weight",
                json!(1000),
            ),
            "v:i3",
        ),
        (
            with(
                &with(&http, "instanceId", json!("i4")),
                "healthCheck",
                json!({"kind": "http", "timeoutMs": 100, "path": "/"}),
            ),
            "v:i4",
        ),
        (
            with(
                &with(&http, "instanceId", json!("i5")),
                "healthCheck",
                json!({"timeoutMs": 30000}),
            ),
            "v:i5",
        ),
        (
            with(
                &with(&http, "instanceId", json!("i6")),
                "healthCheck",
                json!({}),
            ),
            "v:i6",
        ),
        (
            with(
                &with(&tcp, "instanceId", json!("i7")),
                "healthCheck",
                json!({"kind": "tcp"}),
            ),
            "v:i7",
        ),
        (
            json!({"serviceName": "v", "endpoint": local_endpoint("v"), "instanceId": null,
                   "ttlSeconds": null, "weight": null, "healthCheck": null}),
            "v",
        ),
        (with(&http, "instanceId", json!(long_id)), long_rk.as_str()),
    ];
    for (body, rk) in &ok_cases {
        let r = h.register(body).await;
        assert_eq!(r.status, 200, "{body} must be accepted: {}", r.text);
        assert!(
            h.tables()
                .row(&h.registry_table, "default", rk)
                .await
                .is_some(),
            "no row {rk} after registering {body}"
        );
    }
    let row = h
        .tables()
        .row(&h.registry_table, "default", "v:i2")
        .await
        .unwrap();
    assert_eq!(int32_prop(&row, "weight"), 0);
    let v = h.discover_ok("serviceName=v&instanceId=i2").await;
    assert_eq!(items(&v)[0]["weight"], 0);
    // The null registration replaced "v" without a TTL (null = absent).
    let v = h.discover_ok("serviceName=v").await;
    let plain = items(&v)
        .into_iter()
        .find(|s| s["instanceId"].is_null())
        .expect("plain row v");
    assert_eq!(plain["ttlSeconds"], Value::Null, "{plain}");
    assert_eq!(plain["weight"], 100, "{plain}");
}

// ---------------------------------------------------------------------------
// Heartbeat
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_moves_only_last_heartbeat() {
    let h = Handler::start().await;
    h.register_instance(
        "api",
        "hb",
        None,
        json!({"tags": ["x"], "metadata": {"k": "v"}, "version": "2.0.0"}),
    )
    .await;
    h.register_instance(
        "api",
        "hb",
        Some("n1"),
        json!({"ttlSeconds": 30, "weight": 3}),
    )
    .await;
    h.register_instance("other", "hb2", None, json!({})).await;
    let tables = h.tables();
    let before_plain = tables.row(&h.registry_table, "api", "hb").await.unwrap();
    let before_n1 = tables.row(&h.registry_table, "api", "hb:n1").await.unwrap();
    // So each heartbeat's lastHeartbeat can only be later than the stored ones (n1 was written
    // last of the two).
    wait_until_past_stored(
        before_n1["lastHeartbeat"].as_str().unwrap(),
        chrono::Duration::zero(),
    )
    .await;

    // Plain row.
    let sent = chrono::Utc::now();
    let r = h
        .heartbeat(&json!({"serviceName": "hb", "serviceType": "api"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.assert_json_content_type();
    let v = r.json();
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    assert_eq!(k, vec!["lastHeartbeat", "message", "serviceId"], "{v}");
    assert_eq!(v["message"], "Heartbeat recorded");
    assert_eq!(v["serviceId"], "api:hb");
    let hb = v["lastHeartbeat"].as_str().unwrap();
    assert_iso_utc(hb);
    assert!(
        (parse_iso(hb) - sent).num_seconds().abs() < 10,
        "lastHeartbeat {hb} is not now"
    );
    let after_plain = tables.row(&h.registry_table, "api", "hb").await.unwrap();
    assert_eq!(
        parse_iso(after_plain["lastHeartbeat"].as_str().unwrap()),
        parse_iso(hb),
        "the row holds the lastHeartbeat the answer reports"
    );
    assert!(
        parse_iso(hb) > parse_iso(before_plain["lastHeartbeat"].as_str().unwrap()),
        "lastHeartbeat must move"
    );
    let mut a = user_properties(&after_plain);
    let mut b = user_properties(&before_plain);
    a.remove("lastHeartbeat");
    b.remove("lastHeartbeat");
    assert_eq!(a, b, "a heartbeat changes nothing but lastHeartbeat");
    // The instance row is untouched by the plain heartbeat.
    assert_eq!(
        user_properties(&tables.row(&h.registry_table, "api", "hb:n1").await.unwrap()),
        user_properties(&before_n1)
    );

    // Instance row.
    let r = h
        .heartbeat(&json!({"serviceName": "hb", "serviceType": "api", "instanceId": "n1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    assert_eq!(
        k,
        vec!["instanceId", "lastHeartbeat", "message", "serviceId"],
        "{v}"
    );
    assert_eq!(v["message"], "Heartbeat recorded");
    assert_eq!(v["serviceId"], "api:hb");
    assert_eq!(v["instanceId"], "n1");
    let after_n1 = tables.row(&h.registry_table, "api", "hb:n1").await.unwrap();
    assert_eq!(
        parse_iso(after_n1["lastHeartbeat"].as_str().unwrap()),
        parse_iso(v["lastHeartbeat"].as_str().unwrap())
    );
    let mut a = user_properties(&after_n1);
    let mut b = user_properties(&before_n1);
    a.remove("lastHeartbeat");
    b.remove("lastHeartbeat");
    assert_eq!(
        a, b,
        "an instance heartbeat changes nothing but lastHeartbeat"
    );
    assert_eq!(tables.rows(&h.registry_table).await.len(), 3);

    // Discovery sees it at once (own write), and expiresAt follows.
    let d = h.discover_ok("serviceName=hb&instanceId=n1").await;
    let s = &items(&d)[0];
    assert_eq!(
        parse_iso(s["lastHeartbeat"].as_str().unwrap()),
        parse_iso(v["lastHeartbeat"].as_str().unwrap())
    );
    assert_eq!(
        parse_iso(s["expiresAt"].as_str().unwrap()),
        parse_iso(v["lastHeartbeat"].as_str().unwrap()) + chrono::Duration::seconds(30)
    );

    // serviceType defaults to `default`.
    h.register_instance("default", "dflt", None, json!({}))
        .await;
    let r = h.heartbeat(&json!({"serviceName": "dflt"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["serviceId"], "default:dflt");

    // Envelope form.
    let env = ReqEnvelope::new("ServiceHeartbeat", "POST")
        .body(&json!({"serviceName": "hb", "serviceType": "api", "instanceId": "n1"}).to_string())
        .build();
    let res = h.invoke("ServiceHeartbeat", &env).await.envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    let ev = res.json();
    assert_eq!(ev["message"], "Heartbeat recorded");
    assert_eq!(ev["serviceId"], "api:hb");
    assert_eq!(ev["instanceId"], "n1");
    assert_iso_utc(ev["lastHeartbeat"].as_str().unwrap());
    let row = tables.row(&h.registry_table, "api", "hb:n1").await.unwrap();
    assert_eq!(
        parse_iso(row["lastHeartbeat"].as_str().unwrap()),
        parse_iso(ev["lastHeartbeat"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_for_unknown_is_404_and_bad_input_is_400() {
    let h = Handler::start().await;
    h.register_instance("api", "known", None, json!({})).await;
    h.register_instance("api", "known", Some("k1"), json!({}))
        .await;
    let tables = h.tables();
    let before = tables.rows(&h.registry_table).await;

    for body in [
        json!({"serviceName": "unknown", "serviceType": "api"}),
        json!({"serviceName": "known"}), // serviceType defaults to `default`
        json!({"serviceName": "known", "serviceType": "db"}),
        json!({"serviceName": "known", "serviceType": "api", "instanceId": "k2"}),
        json!({"serviceName": "unknown", "serviceType": "api", "instanceId": "k1"}),
    ] {
        h.heartbeat(&body)
            .await
            .assert_error(404, Some("serviceName"));
    }
    let res = h
        .invoke(
            "ServiceHeartbeat",
            &ReqEnvelope::new("ServiceHeartbeat", "POST")
                .body(&json!({"serviceName": "ghost", "serviceType": "api"}).to_string())
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 404, "{}", res.raw);
    assert_error_body(&res.json(), Some("serviceName"));

    let bad: Vec<(String, &str)> = vec![
        ("not json".to_string(), "body"),
        ("[]".to_string(), "body"),
        ("".to_string(), "body"),
        (json!({}).to_string(), "serviceName"),
        (json!({"serviceName": null}).to_string(), "serviceName"),
        (json!({"serviceName": 5}).to_string(), "serviceName"),
        (json!({"serviceName": "a/b"}).to_string(), "serviceName"),
        (json!({"serviceName": "a:b"}).to_string(), "serviceName"),
        (
            json!({"serviceName": "known", "serviceType": "a b"}).to_string(),
            "serviceType",
        ),
        (
            json!({"serviceName": "known", "serviceType": "api", "instanceId": "a:b"}).to_string(),
            "instanceId",
        ),
        (
            json!({"serviceName": "known", "serviceType": "api", "instanceId": 7}).to_string(),
            "instanceId",
        ),
    ];
    for (body, field) in &bad {
        let r = h
            .request(
                reqwest::Method::POST,
                "/api/ServiceHeartbeat",
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            r.status, 400,
            "heartbeat body {body:?} must be 400 ({field}): {}",
            r.text
        );
        r.assert_error(400, Some(field));
    }

    let after = tables.rows(&h.registry_table).await;
    assert_eq!(
        after.iter().map(user_properties).collect::<Vec<_>>(),
        before.iter().map(user_properties).collect::<Vec<_>>(),
        "refused heartbeats must neither create nor change rows"
    );
    assert!(tables.rows(&h.health_table).await.is_empty());
}

// ---------------------------------------------------------------------------
// TTL
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_lapse_hides_instances_until_a_heartbeat() {
    let h = Handler::start_with(&handler_cache_off()).await;
    h.register_instance("api", "eph", Some("old"), json!({"ttlSeconds": 5}))
        .await;
    h.register_instance("api", "eph", Some("new"), json!({"ttlSeconds": 600}))
        .await;
    h.register_instance("api", "eph", Some("forever"), json!({}))
        .await;
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    h.set_last_heartbeat("api", "eph:old", long_ago).await;
    // Without a TTL a stale heartbeat never expires.
    h.set_last_heartbeat("api", "eph:forever", long_ago).await;

    let v = h.discover_ok("serviceName=eph").await;
    assert_eq!(keys(&v), vec!["api/eph/forever", "api/eph/new"]);
    let s = items(&v);
    assert_eq!(s[0]["expired"], false);
    assert_eq!(s[0]["expiresAt"], Value::Null);
    assert_eq!(s[1]["expired"], false);
    assert_eq!(s[1]["ttlSeconds"], 600);
    for q in [
        "serviceName=eph&includeExpired=false",
        "serviceName=eph&includeExpired=FALSE",
    ] {
        assert_eq!(
            keys(&h.discover_ok(q).await),
            vec!["api/eph/forever", "api/eph/new"],
            "{q}"
        );
    }
    // Expired ones are also left out of a point query for that instance.
    let v = h.discover_ok("serviceName=eph&instanceId=old").await;
    assert_eq!(keys(&v), Vec::<String>::new());

    let v = h.discover_ok("serviceName=eph&includeExpired=true").await;
    assert_eq!(
        keys(&v),
        vec!["api/eph/forever", "api/eph/new", "api/eph/old"]
    );
    let old = &items(&v)[2];
    assert_eq!(old["expired"], true, "{old}");
    assert_eq!(old["ttlSeconds"], 5);
    assert_eq!(
        parse_iso(old["expiresAt"].as_str().unwrap()),
        parse_iso(&iso(long_ago)) + chrono::Duration::seconds(5)
    );
    h.discover("serviceName=eph&includeExpired=perhaps")
        .await
        .assert_error(400, Some("includeExpired"));

    // A heartbeat brings it back.
    let r = h
        .heartbeat(&json!({"serviceName": "eph", "serviceType": "api", "instanceId": "old"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = h.discover_ok("serviceName=eph").await;
    assert_eq!(
        keys(&v),
        vec!["api/eph/forever", "api/eph/new", "api/eph/old"]
    );
    assert_eq!(items(&v)[2]["expired"], false);
    // Nothing was deleted by reading.
    assert_eq!(h.tables().rows(&h.registry_table).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_expired_rows_with_zero_grace() {
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "0"),
        ("DEREGISTER_EXPIRED_AFTER_SECONDS", "0"),
    ])
    .await;
    let target = HttpTarget::status(200);
    for (id, ttl) in [("gone", Some(60)), ("fresh", Some(60)), ("nottl", None)] {
        let mut extra = json!({"endpoint": target.url});
        if let Some(t) = ttl {
            extra["ttlSeconds"] = json!(t);
        }
        h.register_instance("api", "sw", Some(id), extra).await;
    }
    h.register_instance(
        "api",
        "sw",
        None,
        json!({"endpoint": target.url, "ttlSeconds": 60}),
    )
    .await;
    // First sweep: every service gets a health row.
    let first = h.sweep_report().await;
    assert_eq!(first.deleted_expired, 0, "{first:?}");
    let tables = h.tables();
    assert_eq!(tables.rows(&h.health_table).await.len(), 4);

    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    h.set_last_heartbeat("api", "sw:gone", long_ago).await;
    h.set_last_heartbeat("api", "sw:nottl", long_ago).await;
    h.set_last_heartbeat("api", "sw", long_ago).await;

    let second = h.sweep_report().await;
    assert_eq!(second.deleted_expired, 2, "{second:?}");
    let mut reg: Vec<String> = tables
        .rows(&h.registry_table)
        .await
        .iter()
        .map(|r| r["RowKey"].as_str().unwrap().to_string())
        .collect();
    reg.sort();
    assert_eq!(
        reg,
        vec!["sw:fresh", "sw:nottl"],
        "registry rows after the sweep"
    );
    let mut hlt: Vec<String> = tables
        .rows(&h.health_table)
        .await
        .iter()
        .map(|r| r["RowKey"].as_str().unwrap().to_string())
        .collect();
    hlt.sort();
    assert_eq!(
        hlt,
        vec!["sw:fresh", "sw:nottl"],
        "health rows after the sweep"
    );
    let v = h.discover_ok("serviceName=sw&includeExpired=true").await;
    assert_eq!(keys(&v), vec!["api/sw/fresh", "api/sw/nottl"]);

    let third = h.sweep_report().await;
    assert_eq!(third.deleted_expired, 0, "{third:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_keeps_expired_rows_within_the_default_grace() {
    let h = Handler::start_with(&handler_cache_off()).await;
    let target = HttpTarget::status(200);
    for id in ["recent", "ancient"] {
        h.register_instance(
            "api",
            "gr",
            Some(id),
            json!({"endpoint": target.url, "ttlSeconds": 5}),
        )
        .await;
    }
    let now = chrono::Utc::now();
    // Expired 5 minutes ago: inside the 600 s grace. Expired 15 minutes ago: past it.
    h.set_last_heartbeat("api", "gr:recent", now - chrono::Duration::seconds(5 + 300))
        .await;
    h.set_last_heartbeat(
        "api",
        "gr:ancient",
        now - chrono::Duration::seconds(5 + 900),
    )
    .await;

    let summary = h.sweep_report().await;
    assert_eq!(summary.deleted_expired, 1, "{summary:?}");
    let tables = h.tables();
    let reg: Vec<String> = tables
        .rows(&h.registry_table)
        .await
        .iter()
        .map(|r| r["RowKey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reg, vec!["gr:recent"]);
    assert!(
        tables
            .row(&h.health_table, "api", "gr:ancient")
            .await
            .is_none(),
        "no health row may remain (or be written) for a deleted instance"
    );
    // Still expired (hidden by default, listed with includeExpired).
    assert_eq!(
        keys(&h.discover_ok("serviceName=gr").await),
        Vec::<String>::new()
    );
    let v = h.discover_ok("serviceName=gr&includeExpired=true").await;
    assert_eq!(keys(&v), vec!["api/gr/recent"]);
    assert_eq!(items(&v)[0]["expired"], true);
}

// ---------------------------------------------------------------------------
// Deregistration
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_removes_exactly_that_key_from_both_tables() {
    let h = Handler::start().await;
    let target = HttpTarget::status(200);
    let ep = json!({"endpoint": target.url});
    h.register_instance("api", "dr", None, ep.clone()).await;
    h.register_instance("api", "dr", Some("a"), ep.clone())
        .await;
    h.register_instance("api", "dr", Some("b"), ep.clone())
        .await;
    h.register_instance("db", "dr", Some("a"), ep.clone()).await;
    h.sweep_report().await;
    let tables = h.tables();
    assert_eq!(tables.rows(&h.health_table).await.len(), 4);
    // Prime the discovery cache, so the next read proves the delete invalidated it.
    assert_eq!(h.discover_ok("serviceName=dr").await["count"], 4);

    let r = h
        .deregister("serviceName=dr&serviceType=api&instanceId=a")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.assert_json_content_type();
    assert_eq!(
        r.json(),
        json!({"message": "Service deregistered successfully", "serviceId": "api:dr", "instanceId": "a"})
    );
    let rk = |rows: Vec<Value>| {
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["PartitionKey"].as_str().unwrap(),
                    r["RowKey"].as_str().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        rk(tables.rows(&h.registry_table).await),
        vec!["api/dr", "api/dr:b", "db/dr:a"]
    );
    assert_eq!(
        rk(tables.rows(&h.health_table).await),
        vec!["api/dr", "api/dr:b", "db/dr:a"]
    );
    assert_eq!(
        keys(&h.discover_ok("serviceName=dr").await),
        vec!["api/dr/-", "api/dr/b", "db/dr/a"],
        "discovery must not show a deregistered instance"
    );

    // Without instanceId: only RowKey = serviceName.
    let r = h.deregister("serviceName=dr&serviceType=api").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"message": "Service deregistered successfully", "serviceId": "api:dr"})
    );
    assert_eq!(
        rk(tables.rows(&h.registry_table).await),
        vec!["api/dr:b", "db/dr:a"]
    );
    assert_eq!(
        rk(tables.rows(&h.health_table).await),
        vec!["api/dr:b", "db/dr:a"]
    );

    // Again: 404, nothing else touched.
    h.deregister("serviceName=dr&serviceType=api")
        .await
        .assert_error(404, Some("serviceName"));
    h.deregister("serviceName=dr&serviceType=api&instanceId=a")
        .await
        .assert_error(404, Some("serviceName"));

    // Envelope form: POST /ServiceRegistrar with Method DELETE.
    let env = ReqEnvelope::new("ServiceRegistrar", "DELETE")
        .query(&[
            ("serviceName", "dr"),
            ("serviceType", "db"),
            ("instanceId", "a"),
        ])
        .build();
    let res = h.invoke("ServiceRegistrar", &env).await.envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(
        res.json(),
        json!({"message": "Service deregistered successfully", "serviceId": "db:dr", "instanceId": "a"})
    );
    assert_eq!(rk(tables.rows(&h.registry_table).await), vec!["api/dr:b"]);
    assert_eq!(rk(tables.rows(&h.health_table).await), vec!["api/dr:b"]);
    let env = ReqEnvelope::new("ServiceRegistrar", "DELETE")
        .query(&[
            ("serviceName", "dr"),
            ("serviceType", "db"),
            ("instanceId", "a"),
        ])
        .build();
    let res = h.invoke("ServiceRegistrar", &env).await.envelope_res();
    assert_eq!(res.status, 404, "{}", res.raw);
    assert_error_body(&res.json(), Some("serviceName"));
    assert_eq!(keys(&h.discover_ok("").await), vec!["api/dr/b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_validates_and_defaults_the_type() {
    let h = Handler::start().await;
    h.register_instance("default", "dd", None, json!({})).await;
    h.register_instance("default", "dd", Some("x"), json!({}))
        .await;
    let tables = h.tables();

    for (q, status, field) in [
        ("", 400, "serviceName"),
        ("serviceName=", 400, "serviceName"),
        ("serviceType=default", 400, "serviceName"),
        ("serviceName=a%2Fb", 400, "serviceName"),
        (
            "serviceName=dd%27%20or%20RowKey%20ne%20%27",
            400,
            "serviceName",
        ),
        ("serviceName=dd&instanceId=x%3Ay", 400, "instanceId"),
        ("serviceName=dd&serviceType=a%20b", 400, "serviceType"),
        ("serviceName=nope", 404, "serviceName"),
        ("serviceName=dd&serviceType=api", 404, "serviceName"),
        ("serviceName=dd&instanceId=y", 404, "serviceName"),
    ] {
        let r = h.deregister(q).await;
        assert_eq!(r.status, status, "DELETE ?{q}: {}", r.text);
        r.assert_error(status, Some(field));
    }
    assert_eq!(tables.rows(&h.registry_table).await.len(), 2);

    // serviceType defaults to `default`.
    let r = h.deregister("serviceName=dd&instanceId=x").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"message": "Service deregistered successfully", "serviceId": "default:dd", "instanceId": "x"})
    );
    let rows = tables.rows(&h.registry_table).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["RowKey"], "dd");

    // Other methods stay refused.
    let r = h
        .request(reqwest::Method::PUT, "/api/ServiceRegistrar", None)
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
    let r = h
        .request(
            reqwest::Method::DELETE,
            "/api/ServiceHeartbeat?serviceName=dd",
            None,
        )
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
    let r = h
        .request(reqwest::Method::GET, "/api/ServiceHeartbeat", None)
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(tables.rows(&h.registry_table).await.len(), 1);
}

// ---------------------------------------------------------------------------
// function.json
// ---------------------------------------------------------------------------

fn http_methods(function: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(function)
        .join("function.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} must exist: {e}", path.display()));
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let bindings = v["bindings"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: bindings array", path.display()));
    let trigger = bindings
        .iter()
        .find(|b| b["type"] == "httpTrigger")
        .unwrap_or_else(|| panic!("{}: no httpTrigger binding", path.display()));
    assert_eq!(trigger["direction"], "in", "{function}: {trigger}");
    assert_eq!(trigger["name"], "req", "{function}: {trigger}");
    assert_eq!(trigger["authLevel"], "function", "{function}: {trigger}");
    assert!(
        bindings
            .iter()
            .any(|b| b["type"] == "http" && b["direction"] == "out" && b["name"] == "res"),
        "{function}: needs the http output binding `res`: {v}"
    );
    let mut methods: Vec<String> = trigger["methods"]
        .as_array()
        .unwrap_or_else(|| panic!("{function}: methods array"))
        .iter()
        .map(|m| m.as_str().expect("method string").to_ascii_lowercase())
        .collect();
    methods.sort();
    methods
}

#[test]
fn function_json_files_declare_the_new_routes() {
    assert_eq!(http_methods("ServiceHeartbeat"), vec!["post"]);
    assert_eq!(http_methods("ServiceResolver"), vec!["get"]);
    assert_eq!(http_methods("ServiceRegistrar"), vec!["delete", "post"]);
    assert_eq!(http_methods("ServiceDiscovery"), vec!["get"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_instance_id_on_a_write_is_refused_not_read_as_absent() {
    let h = Handler::start().await;
    h.register_instance("api", "orders", None, json!({})).await;
    // `instanceId=$POD` with `$POD` unset must not act on the service-level row.
    h.deregister("serviceType=api&serviceName=orders&instanceId=")
        .await
        .assert_error(400, Some("instanceId"));
    h.heartbeat(&json!({"serviceType": "api", "serviceName": "orders", "instanceId": ""}))
        .await
        .assert_error(400, Some("instanceId"));
    assert!(h
        .tables()
        .row(&h.registry_table, "api", "orders")
        .await
        .is_some());
    // The resolver names its one required parameter first.
    h.request(
        reqwest::Method::GET,
        "/api/ServiceResolver?instanceId=x",
        None,
    )
    .await
    .assert_error(400, Some("serviceName"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_rows_never_outlive_their_registration() {
    let h = Handler::start_with(&[("HEALTH_FAILURES_TO_UNHEALTHY", "1")]).await;
    let down = HttpTarget::status(503);
    let up = HttpTarget::status(200);
    for (instance, target) in [("pod-0", &down), ("pod-1", &up)] {
        h.register_instance(
            "api",
            "web",
            Some(instance),
            json!({"endpoint": target.url}),
        )
        .await;
    }
    assert_eq!(h.sweep_report().await.deleted_orphans, 0);
    let tables = h.tables();
    assert_eq!(
        tables
            .row(&h.health_table, "api", "web:pod-0")
            .await
            .unwrap()["status"],
        "unhealthy"
    );

    // A sweep that read the registry before a deregistration writes its verdict after it: the
    // registration is gone but its health row is back. The next sweep removes it.
    let row = tables
        .row(&h.registry_table, "api", "web:pod-1")
        .await
        .unwrap();
    h.deregister("serviceType=api&serviceName=web&instanceId=pod-1")
        .await;
    let mut stale = row.clone();
    stale["status"] = json!("healthy");
    tables
        .upsert(
            &h.health_table,
            &json!({"PartitionKey": "api", "RowKey": "web:pod-1", "serviceName": "web",
                    "status": "healthy", "lastChecked": "2026-11-25T05:00:00.000Z",
                    "responseTime": 3, "errorMessage": ""}),
        )
        .await;
    let report = h.sweep_report().await;
    assert_eq!(report.deleted_orphans, 1, "{report:?}");
    assert!(tables
        .row(&h.health_table, "api", "web:pod-1")
        .await
        .is_none());

    // A pod that comes back under its old name after its registration was deleted starts fresh,
    // not with the unhealthy verdict and open circuit its predecessor left. The registration does
    // not pay a round trip to delete that row: a health row checked before the registration's
    // `registeredAt` is ignored by discovery and by the sweep, whose verdict then replaces it.
    tables
        .upsert(
            &h.health_table,
            &json!({"PartitionKey": "api", "RowKey": "web:pod-2", "serviceName": "web",
                    "status": "unhealthy", "circuit": "open", "lastChecked": "2026-11-25T05:00:00.000Z",
                    "nextProbeAt": "2099-01-01T00:00:00.000Z", "responseTime": 5000, "errorMessage": "x"}),
        )
        .await;
    h.register_instance("api", "web", Some("pod-2"), json!({"endpoint": up.url}))
        .await;
    let v = h
        .discover_ok("serviceType=api&serviceName=web&instanceId=pod-2")
        .await;
    assert_eq!(v["services"][0]["healthStatus"], Value::Null);
    let hits = up.hits();
    let report = h.sweep_report().await;
    assert_eq!(report.deleted_orphans, 0, "{report:?}");
    assert!(
        up.hits() > hits,
        "the open circuit it inherited kept it from being probed"
    );
    let fresh = tables
        .row(&h.health_table, "api", "web:pod-2")
        .await
        .unwrap();
    assert_eq!(fresh["status"], "healthy", "{fresh}");
    let v = h
        .discover_ok("serviceType=api&serviceName=web&instanceId=pod-2")
        .await;
    assert_eq!(v["services"][0]["healthStatus"]["status"], "healthy", "{v}");
    // Re-registering an existing instance keeps its health history.
    h.register_instance("api", "web", Some("pod-0"), json!({"endpoint": down.url}))
        .await;
    assert!(tables
        .row(&h.health_table, "api", "web:pod-0")
        .await
        .is_some());
}
