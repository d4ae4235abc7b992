//! Authentication standalone: API keys, roles, scopes, the manual sweep for admins, no
//! envelopes, the log line, and the refusal to start open on a reachable address.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_every_function_is_401_and_nothing_is_written() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    let requests: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/ServiceRegistrar",
            Some(service("api", "a")),
        ),
        (Method::DELETE, "/api/ServiceRegistrar?serviceName=a", None),
        (
            Method::POST,
            "/api/ServiceHeartbeat",
            Some(json!({"serviceName": "a"})),
        ),
        (Method::GET, "/api/ServiceDiscovery", None),
        (Method::GET, "/api/ServiceResolver?serviceName=a", None),
        (
            Method::POST,
            "/HealthMonitor",
            Some(timer_envelope(timer_info_object())),
        ),
    ];
    for (method, path, body) in &requests {
        let r = h.call(method.clone(), path, None, body.clone()).await;
        r.assert_error(401, Some("Authorization"));
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="service-registry""#),
            "{method} {path}"
        );
        // A key that is not ours, and a scheme we do not take: refused as presented credentials.
        let r = h
            .call(
                method.clone(),
                path,
                Some("not-a-key-of-ours"),
                body.clone(),
            )
            .await;
        r.assert_error(401, Some("Authorization"));
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains(r#"error="invalid_token""#),
            "{method} {path}"
        );
        let r = h
            .send(
                method.clone(),
                path,
                &[("Authorization", &format!("Basic {ADMIN}"))],
                body.as_ref().map(Value::to_string),
            )
            .await;
        r.assert_error(401, Some("Authorization"));
    }
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    // Readiness and unknown routes are nobody's secret.
    assert_eq!(h.call(Method::GET, "/", None, None).await.status, 200);
    h.call(Method::GET, "/api/Nope", None, None)
        .await
        .assert_error(404, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_reads_writes_and_the_manual_sweep() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    let target = HttpTarget::status(200);
    let svc = json!({"serviceName": "web", "serviceType": "api", "endpoint": target.url});

    // Reader: reads, but cannot write or sweep.
    let r = h
        .call(Method::GET, "/api/ServiceDiscovery", Some(READER), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.call(
        Method::POST,
        "/api/ServiceRegistrar",
        Some(READER),
        Some(svc.clone()),
    )
    .await
    .assert_error(403, Some("serviceType"));
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    let sweep = Some(timer_envelope(timer_info_object()));
    h.call(Method::POST, "/HealthMonitor", Some(READER), sweep.clone())
        .await
        .assert_error(403, None);

    // Writer: writes its type and reads it back, but is no admin.
    let r = h
        .call(
            Method::POST,
            "/api/ServiceRegistrar",
            Some(WRITER),
            Some(svc.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .call(
            Method::POST,
            "/api/ServiceHeartbeat",
            Some(WRITER),
            Some(json!({"serviceName": "web", "serviceType": "api"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .call(
            Method::GET,
            "/api/ServiceResolver?serviceName=web",
            Some(WRITER),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.call(Method::POST, "/HealthMonitor", Some(WRITER), sweep.clone())
        .await
        .assert_error(403, None);
    assert_eq!(target.hits(), 0, "no sweep ran for a non-admin");

    // Admin: the manual sweep runs and probes.
    let r = h
        .call(Method::POST, "/HealthMonitor", Some(ADMIN), sweep)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let report = sweep_report(&logs_of(&r.json())).expect("a summary");
    assert_eq!((report.probed, report.healthy), (1, 1), "{}", r.text);
    assert_eq!(target.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_writer_cannot_touch_other_types_or_names() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    for (t, n) in [("db", "main"), ("api", "web"), ("db", "orders-db")] {
        let r = h
            .call(
                Method::POST,
                "/api/ServiceRegistrar",
                Some(ADMIN),
                Some(service(t, n)),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let tables = h.tables();
    let before = tables.row(&h.registry_table, "db", "main").await.unwrap();

    // Writer for `api`: not `db`, by register, deregister or heartbeat.
    h.call(
        Method::POST,
        "/api/ServiceRegistrar",
        Some(WRITER),
        Some(service("db", "main")),
    )
    .await
    .assert_error(403, Some("serviceType"));
    h.call(
        Method::DELETE,
        "/api/ServiceRegistrar?serviceType=db&serviceName=main",
        Some(WRITER),
        None,
    )
    .await
    .assert_error(403, Some("serviceType"));
    h.call(
        Method::POST,
        "/api/ServiceHeartbeat",
        Some(WRITER),
        Some(json!({"serviceName": "main", "serviceType": "db"})),
    )
    .await
    .assert_error(403, Some("serviceType"));
    let after = tables.row(&h.registry_table, "db", "main").await.unwrap();
    assert_eq!(after["lastHeartbeat"], before["lastHeartbeat"]);
    assert_eq!(after["endpoint"], before["endpoint"]);

    // Writer for `*:orders-*`: names with that prefix in any type, nothing else.
    let r = h
        .call(
            Method::POST,
            "/api/ServiceRegistrar",
            Some(PREFIXED),
            Some(service("queue", "orders-eu")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.call(
        Method::POST,
        "/api/ServiceRegistrar",
        Some(PREFIXED),
        Some(service("api", "payments")),
    )
    .await
    .assert_error(403, Some("serviceName"));
    let r = h
        .call(
            Method::DELETE,
            "/api/ServiceRegistrar?serviceType=db&serviceName=orders-db",
            Some(PREFIXED),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Reads are filtered to the scope, and a query naming only what is outside it is a 403.
    let names = |v: &Value| -> Vec<String> {
        v["services"]
            .as_array()
            .unwrap()
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
    let r = h
        .call(Method::GET, "/api/ServiceDiscovery", Some(WRITER), None)
        .await;
    assert_eq!(names(&r.json()), ["api:web"], "{}", r.text);
    let r = h
        .call(Method::GET, "/api/ServiceDiscovery", Some(PREFIXED), None)
        .await;
    assert_eq!(names(&r.json()), ["queue:orders-eu"], "{}", r.text);
    let r = h
        .call(Method::GET, "/api/ServiceDiscovery", Some(READER), None)
        .await;
    assert_eq!(r.json()["count"], 3, "{}", r.text);
    h.call(
        Method::GET,
        "/api/ServiceDiscovery?serviceType=db",
        Some(WRITER),
        None,
    )
    .await
    .assert_error(403, Some("serviceType"));
    h.call(
        Method::GET,
        "/api/ServiceResolver?serviceType=db&serviceName=main",
        Some(WRITER),
        None,
    )
    .await
    .assert_error(403, Some("serviceType"));
    // Without a type the name may exist in the writer's type; here it does not, so: not found.
    h.call(
        Method::GET,
        "/api/ServiceResolver?serviceName=main",
        Some(WRITER),
        None,
    )
    .await
    .assert_error(404, Some("serviceName"));
    let r = h
        .call(
            Method::GET,
            "/api/ServiceResolver?serviceName=main",
            Some(READER),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_functions_key_carries_a_key_the_same_way() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    let r = h
        .send(
            Method::POST,
            "/api/ServiceRegistrar",
            &[("x-functions-key", WRITER)],
            Some(service("api", "k").to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .send(
            Method::POST,
            "/api/ServiceRegistrar",
            &[("x-functions-key", READER)],
            Some(service("api", "k").to_string()),
        )
        .await;
    r.assert_error(403, Some("serviceType"));
    let r = h
        .send(
            Method::GET,
            "/api/ServiceDiscovery",
            &[("x-functions-key", "wrong")],
            None,
        )
        .await;
    r.assert_error(401, Some("x-functions-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_line_names_the_caller_and_the_decision_never_the_key() {
    for level in ["info", "trace"] {
        let h = Handler::spawn(
            HandlerConfig::new(Mode::Standalone)
                .env("REGISTRY_API_KEYS", &key_lines())
                .env("RUST_LOG_FORMAT", "json")
                .env("RUST_LOG", level),
        )
        .await;
        let expected = [
            (Some(WRITER), 200, "key:writer", "allowed"),
            (Some(READER), 403, "key:reader", "forbidden"),
            (None, 401, "-", "unauthenticated"),
            (Some("some-guess"), 401, "-", "unauthenticated"),
        ];
        for (key, status, _, _) in expected {
            let r = h
                .call(
                    Method::POST,
                    "/api/ServiceRegistrar",
                    key,
                    Some(service("api", "logged")),
                )
                .await;
            assert_eq!(r.status, status, "{}", r.text);
        }
        let lines = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || async {
                let lines: Vec<Value> = h
                    .stdout()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter(|v| v["message"] == "request")
                    .collect();
                (lines.len() >= expected.len()).then_some(lines)
            },
        )
        .await
        .unwrap_or_else(|| panic!("four request lines:\n{}", h.logs()));
        for (line, (_, status, caller, decision)) in lines.iter().zip(expected) {
            assert_eq!(line["status"], status, "{line}");
            assert_eq!(line["caller"], caller, "{line}");
            assert_eq!(line["auth"], decision, "{line}");
        }
        let logs = h.logs();
        for secret in [WRITER, READER, "some-guess", &sha256_hex(WRITER)] {
            assert!(
                !logs.contains(secret),
                "RUST_LOG={level}: {secret} in the log:\n{logs}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serves_no_envelopes_but_the_manual_sweep() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    let r = h
        .call(
            Method::POST,
            "/api/ServiceRegistrar",
            Some(ADMIN),
            Some(service("api", "kept")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let delete = ReqEnvelope::new("ServiceRegistrar", "DELETE")
        .query(&[("serviceType", "api"), ("serviceName", "kept")])
        .header("Authorization", &bearer(ADMIN))
        .build();
    for function in [
        "ServiceRegistrar",
        "ServiceDiscovery",
        "ServiceHeartbeat",
        "ServiceResolver",
    ] {
        for key in [None, Some(ADMIN)] {
            let r = h
                .call(
                    Method::POST,
                    &format!("/{function}"),
                    key,
                    Some(delete.clone()),
                )
                .await;
            r.assert_error(404, None);
        }
    }
    assert!(h
        .tables()
        .row(&h.registry_table, "api", "kept")
        .await
        .is_some());
}

#[test]
fn a_reachable_standalone_bind_without_authentication_refuses_to_start() {
    // The check runs before anything binds: the process exits at once and never listens.
    let cfg = HandlerConfig::new(Mode::Standalone)
        .env("DISCOVERY_BIND", &format!("0.0.0.0:{}", free_port()));
    let (status, elapsed, stdout, stderr) = run_handler_to_exit(&cfg, Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("still running 10 s later:\n{stdout}\n{stderr}"));
    assert!(!status.success(), "{status:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(!stdout.contains("handler listening"), "{stdout}");
    let line = stderr.lines().find(|l| {
        [
            "DISCOVERY_BIND",
            "REGISTRY_API_KEYS",
            "REGISTRY_ENTRA_TENANT_ID",
            "REGISTRY_ALLOW_ANONYMOUS",
        ]
        .iter()
        .all(|v| l.contains(v))
    });
    assert!(line.is_some(), "one line naming the variables:\n{stderr}");

    // Trusting the platform's principal header is refused standalone, at any address.
    let cfg = HandlerConfig::new(Mode::Standalone).env("REGISTRY_TRUST_CLIENT_PRINCIPAL", "true");
    let (status, _, _, stderr) = run_handler_to_exit(&cfg, Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(
        stderr.contains("REGISTRY_TRUST_CLIENT_PRINCIPAL"),
        "{stderr}"
    );
}
