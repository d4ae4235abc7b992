//! The SSRF guard end to end: refused literals are a 400 at registration (nothing written), and a
//! name that resolves to a refused address is recorded unhealthy without a packet sent to it.

use crate::harness::*;
use serde_json::json;
use std::sync::atomic::Ordering;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_forbidden_literal_addresses() {
    let h = Handler::start_with(&[("HEALTH_ALLOW_LOOPBACK", "false")]).await;
    let cases = [
        (
            json!({"serviceName": "imds", "endpoint": "http://169.254.169.254/metadata/instance"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "imds6", "endpoint": "http://[::ffff:169.254.169.254]/"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "imdshex", "endpoint": "http://0xa9fea9fe/"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "imdsdec", "endpoint": "http://2852039166/"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "imdsoct", "endpoint": "http://0251.0376.0251.0376/"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "wire", "endpoint": "https://api.example.com", "healthEndpoint": "tcp://168.63.129.16:80"}),
            "healthEndpoint",
        ),
        (
            json!({"serviceName": "loop", "endpoint": "http://127.0.0.1:8080/health"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "loop6", "endpoint": "tcp://[::1]:6379"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "zero", "endpoint": "http://0.0.0.0:80/"}),
            "endpoint",
        ),
        (
            json!({"serviceName": "mcast", "endpoint": "http://224.0.0.1/"}),
            "endpoint",
        ),
    ];
    for (body, field) in cases {
        let r = h.register(&body).await;
        let error = r.assert_error(400, Some(field));
        assert!(
            error["error"].as_str().unwrap().contains("not allowed"),
            "{body}: {error}"
        );
    }
    assert!(
        h.tables().rows(&h.registry_table).await.is_empty(),
        "a refused registration must write nothing"
    );
    // A private VNet address is fine by default.
    h.register_ok(&json!({"serviceName": "vnet", "endpoint": "http://10.1.2.3:8080/"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_to_refused_addresses_are_recorded_not_contacted() {
    let h = Handler::start_with(&[
        ("HEALTH_ALLOW_LOOPBACK", "false"),
        ("HEALTH_PROBE_TIMEOUT_MS", "2000"),
    ])
    .await;
    let target = HttpTarget::status(200);
    let tcp = TcpTarget::start();
    // `localhost` is a name, so registration accepts it; the probe resolves it to loopback.
    let http_url = target.url.replace("127.0.0.1", "localhost");
    let tcp_url = tcp.url.replace("127.0.0.1", "localhost");
    h.register_ok(&json!({"serviceName": "by-name", "endpoint": http_url}))
        .await;
    h.register_ok(&json!({"serviceName": "tcp-by-name", "endpoint": tcp_url}))
        .await;

    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let logs = logs_of(&r.json());
    assert_eq!(
        sweep_report(&logs).map(|r| (r.probed, r.refused)),
        Some((2, 2)),
        "summary must count the refusals: {logs:?}"
    );
    assert_eq!(
        target.hits.load(Ordering::SeqCst),
        0,
        "no request may reach a refused address"
    );
    assert_eq!(
        tcp.accepted.load(Ordering::SeqCst),
        0,
        "no connection may reach a refused address"
    );

    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(row["status"], "unhealthy", "{row}");
        let message = row["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("refused") && message.contains("loopback"),
            "{row}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_list_applies_to_resolved_addresses() {
    let h = Handler::start_with(&[("HEALTH_DENY_CIDRS", "127.0.0.0/8")]).await;
    let target = HttpTarget::status(200);
    // Loopback is allowed by the harness, but the deny list wins, at registration for literals...
    h.register(&json!({"serviceName": "denied", "endpoint": target.url}))
        .await
        .assert_error(400, Some("endpoint"));
    // ...and at probe time for names.
    let by_name = target.url.replace("127.0.0.1", "localhost");
    h.register_ok(&json!({"serviceName": "denied-name", "endpoint": by_name}))
        .await;
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("HEALTH_DENY_CIDRS"),
        "{}",
        rows[0]
    );
    assert_eq!(target.hits.load(Ordering::SeqCst), 0);
}
