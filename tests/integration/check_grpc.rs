//! gRPC health checks end to end against a real gRPC health server no one here wrote (grpcio's,
//! `GrpcHealthServer`): the server's overall health and a named service, SERVING → NOT_SERVING →
//! SERVING, plaintext and TLS (a self-signed certificate trusted through `HEALTH_PROBE_CA_FILE`,
//! and refused without it), with the server's count of Check calls as proof of contact.

use crate::harness::*;
use serde_json::{json, Value};

/// Every verdict at once: one failure opens, one pass closes, and an open circuit is due again
/// a millisecond later, so each sweep shows what the server says now.
const AT_ONCE: [(&str, &str); 3] = [
    ("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
    ("HEALTH_SUCCESSES_TO_HEALTHY", "1"),
    ("HEALTH_CIRCUIT_BACKOFF_MS", "1"),
];

async fn status_after_sweep(h: &Handler, name: &str) -> Value {
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.tables()
        .row(&h.health_table, "default", name)
        .await
        .unwrap_or_else(|| panic!("no health row for {name}"))
}

fn registration(name: &str, health_endpoint: &str, port: u16) -> Value {
    json!({"serviceName": name, "endpoint": format!("tcp://127.0.0.1:{port}"),
           "healthEndpoint": health_endpoint})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_server_going_not_serving_and_back() {
    let server = GrpcHealthServer::start(None).await;
    let h = Handler::start_with(&AT_ONCE).await;
    let p = server.port;
    h.register_ok(&registration("whole", &format!("grpc://127.0.0.1:{p}"), p))
        .await;
    let v = h.discover_ok("serviceName=whole").await;
    assert_eq!(
        v["services"][0]["healthEndpoint"],
        format!("grpc://127.0.0.1:{p}")
    );

    let row = status_after_sweep(&h, "whole").await;
    assert_eq!(
        (&row["status"], &row["errorMessage"]),
        (&json!("healthy"), &json!("")),
        "{row}"
    );
    server.set("", "NOT_SERVING").await;
    let row = status_after_sweep(&h, "whole").await;
    assert_eq!(row["status"], "unhealthy", "{row}");
    assert_eq!(row["errorMessage"], "gRPC health NOT_SERVING", "{row}");
    server.set("", "SERVING").await;
    let row = status_after_sweep(&h, "whole").await;
    assert_eq!(row["status"], "healthy", "{row}");
    assert_eq!(server.checks().await, 3, "one Check call per sweep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_service_is_checked_by_its_name() {
    let server = GrpcHealthServer::start(None).await;
    let h = Handler::start_with(&AT_ONCE).await;
    let p = server.port;
    h.register_ok(&registration(
        "orders",
        &format!("grpc://127.0.0.1:{p}/shop.v1.Orders"),
        p,
    ))
    .await;
    // Unknown to the server yet: grpcio answers NOT_FOUND.
    let row = status_after_sweep(&h, "orders").await;
    assert_eq!(row["status"], "unhealthy", "{row}");
    assert_eq!(
        row["errorMessage"],
        "gRPC health: service unknown to the server (service shop.v1.Orders)"
    );
    server.set("shop.v1.Orders", "SERVING").await;
    assert_eq!(status_after_sweep(&h, "orders").await["status"], "healthy");
    // The server as a whole going down does not change what the named service says.
    server.set("", "NOT_SERVING").await;
    server.set("shop.v1.Orders", "NOT_SERVING").await;
    let row = status_after_sweep(&h, "orders").await;
    assert_eq!(
        row["errorMessage"], "gRPC health NOT_SERVING (service shop.v1.Orders)",
        "{row}"
    );
    server.set("shop.v1.Orders", "SERVING").await;
    assert_eq!(status_after_sweep(&h, "orders").await["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_is_checked_over_tls_with_the_configured_roots() {
    let certificate = TestCertificate::for_loopback(chrono::Duration::days(90));
    let server = GrpcHealthServer::start(Some(&certificate)).await;
    let p = server.port;
    let ca = certificate.cert_pem.display().to_string();
    let mut trusting = AT_ONCE.to_vec();
    trusting.push(("HEALTH_PROBE_CA_FILE", &ca));
    let h = Handler::start_with(&trusting).await;
    let untrusting = Handler::start_with(&AT_ONCE).await;
    for handler in [&h, &untrusting] {
        handler
            .register_ok(&registration(
                "secure",
                &format!("grpcs://127.0.0.1:{p}"),
                p,
            ))
            .await;
    }
    let row = status_after_sweep(&h, "secure").await;
    assert_eq!(row["status"], "healthy", "{row}");
    server.set("", "NOT_SERVING").await;
    let row = status_after_sweep(&h, "secure").await;
    assert_eq!(row["errorMessage"], "gRPC health NOT_SERVING", "{row}");

    // Without the root, the handshake fails on the certificate: no Check call is made.
    let before = server.checks().await;
    let row = status_after_sweep(&untrusting, "secure").await;
    assert_eq!(row["status"], "unhealthy", "{row}");
    let message = row["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("TLS handshake failed"), "{row}");
    assert_eq!(server.checks().await, before);

    // Plaintext to a TLS server fails, and says so.
    untrusting
        .register_ok(&registration("plain", &format!("grpc://127.0.0.1:{p}"), p))
        .await;
    let row = status_after_sweep(&untrusting, "plain").await;
    assert_eq!(row["status"], "unhealthy", "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_settings_are_validated_and_kind_defaults_to_the_scheme() {
    let h = Handler::start().await;
    for (endpoint, check, field) in [
        (
            "grpc://127.0.0.1:1",
            json!({"kind": "http"}),
            "healthCheck.kind",
        ),
        (
            "grpc://127.0.0.1:1",
            json!({"path": "/x"}),
            "healthCheck.path",
        ),
        (
            "grpc://127.0.0.1:1",
            json!({"expectedStatus": [200]}),
            "healthCheck.expectedStatus",
        ),
        (
            "http://127.0.0.1:1/",
            json!({"kind": "grpc"}),
            "healthCheck.kind",
        ),
        ("grpc://127.0.0.1", json!(null), "healthEndpoint"),
        ("grpc://127.0.0.1:1/a/b", json!(null), "healthEndpoint"),
    ] {
        let mut body = json!({"serviceName": "g", "endpoint": "tcp://127.0.0.1:1",
                              "healthEndpoint": endpoint});
        if !check.is_null() {
            body["healthCheck"] = check;
        }
        h.register(&body).await.assert_error(400, Some(field));
    }
    // A service's own endpoint keeps its rules: grpc:// is for health endpoints.
    h.register(&json!({"serviceName": "g", "endpoint": "grpc://127.0.0.1:1"}))
        .await
        .assert_error(400, Some("endpoint"));
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    h.register_ok(&json!({"serviceName": "g", "endpoint": "tcp://127.0.0.1:1",
                          "healthEndpoint": "grpcs://127.0.0.1:1/x", "healthCheck": {"kind": "grpc", "timeoutMs": 500}}))
        .await;
}
