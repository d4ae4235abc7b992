//! Per-registration check settings (kind, path, timeout), redirects towards link-local addresses,
//! and registry rows whose keys the handler cannot address.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP server that answers 200 on `ok_path` and 404 elsewhere, after `delay`.
async fn path_server(ok_path: &'static str, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                tokio::time::sleep(delay).await;
                let status = if path == ok_path {
                    "200 OK"
                } else {
                    "404 Not Found"
                };
                let reply =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_kind_path_and_timeout_apply_per_registration() {
    let h = Handler::start_with(&[("HEALTH_FAILURES_TO_UNHEALTHY", "1")]).await;
    let tcp = TcpTarget::start();
    let deep = path_server("/deep/health?x=1", Duration::ZERO).await;
    let slow = path_server("/", Duration::from_millis(1200)).await;
    let tcp_url = format!("http://127.0.0.1:{}/", tcp.port);
    for (name, endpoint, check) in [
        // A listener that does not speak HTTP: healthy only when checked by connecting.
        ("by-connect", tcp_url.clone(), json!({"kind": "tcp"})),
        ("by-get", tcp_url.clone(), Value::Null),
        // The path replaces the endpoint's path and query.
        (
            "deep",
            format!("http://127.0.0.1:{deep}/"),
            json!({"path": "/deep/health?x=1"}),
        ),
        ("shallow", format!("http://127.0.0.1:{deep}/"), Value::Null),
        // A 1.2 s answer: within the default 5 s, not within 300 ms.
        ("patient", format!("http://127.0.0.1:{slow}/"), Value::Null),
        (
            "hasty",
            format!("http://127.0.0.1:{slow}/"),
            json!({"timeoutMs": 300}),
        ),
    ] {
        let mut body = json!({"serviceName": name, "endpoint": endpoint});
        if !check.is_null() {
            body["healthCheck"] = check;
        }
        h.register_ok(&body).await;
    }
    let stored = h
        .tables()
        .row(&h.registry_table, "default", "hasty")
        .await
        .unwrap();
    assert_eq!(stored["healthCheck"], "{\"timeoutMs\":300}");

    let sweep = h.sweep().await;
    assert_eq!(sweep.status, 200, "{}", sweep.text);
    for (name, status) in [
        ("by-connect", "healthy"),
        ("by-get", "unhealthy"),
        ("deep", "healthy"),
        ("shallow", "unhealthy"),
        ("patient", "healthy"),
        ("hasty", "unhealthy"),
    ] {
        let row = h.health_row(name).await;
        assert_eq!(row["status"], status, "{name}: {row}");
    }
    assert!(tcp.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(
        h.health_row("hasty").await["errorMessage"],
        "no answer within 300 ms"
    );
    assert_eq!(h.health_row("shallow").await["errorMessage"], "HTTP 404");

    // Discovery shows the settings as registered.
    let v = h.discover_ok("serviceName=hasty").await;
    assert_eq!(v["services"][0]["healthCheck"], json!({"timeoutMs": 300}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_check_settings_are_400s_that_write_nothing() {
    let h = Handler::start().await;
    for (check, endpoint, field) in [
        (
            json!({"kind": "http"}),
            "tcp://127.0.0.1:6379",
            "healthCheck.kind",
        ),
        (
            json!({"path": "/x"}),
            "tcp://127.0.0.1:6379",
            "healthCheck.path",
        ),
        (
            json!({"timeoutMs": 50}),
            "http://127.0.0.1:1/",
            "healthCheck.timeoutMs",
        ),
        (
            json!({"kind": "ping"}),
            "http://127.0.0.1:1/",
            "healthCheck.kind",
        ),
        (json!([]), "http://127.0.0.1:1/", "healthCheck"),
    ] {
        let r = h
            .register(&json!({"serviceName": "svc", "endpoint": endpoint, "healthCheck": check}))
            .await;
        r.assert_error(400, Some(field));
    }
    // A check that would connect to a refused address is refused up front too.
    let r = h
        .register(&json!({
            "serviceName": "svc", "endpoint": "http://example.invalid/",
            "healthEndpoint": "http://169.254.169.254/", "healthCheck": {"kind": "tcp"}
        }))
        .await;
    r.assert_error(400, Some("healthEndpoint"));
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_the_metadata_address_is_not_followed() {
    let h = Handler::start_with(&[("HEALTH_FAILURES_TO_UNHEALTHY", "1")]).await;
    // The only way to learn anything about 169.254.169.254 would be to follow this Location.
    let bounce = HttpTarget::redirect("http://169.254.169.254/metadata/identity/oauth2/token");
    let bounce_v6 = HttpTarget::redirect("http://[::ffff:169.254.169.254]/latest/meta-data/");
    h.register_ok(&json!({"serviceName": "bounce", "endpoint": bounce.url}))
        .await;
    h.register_ok(&json!({"serviceName": "bounce-v6", "endpoint": bounce_v6.url}))
        .await;
    let report = h.sweep_report().await;
    for (name, target) in [("bounce", &bounce), ("bounce-v6", &bounce_v6)] {
        let row = h.health_row(name).await;
        // The 302 itself is the answer (below 400), and the redirect target was never contacted:
        // had it been followed, the guard would have refused it and the row would say so.
        assert_eq!(row["status"], "healthy", "{row}");
        assert_eq!(row["errorMessage"], "", "{row}");
        assert_eq!(target.hits(), 1);
    }
    assert_eq!(report.refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_unaddressable_keys_are_skipped_not_fatal() {
    let h = Handler::start().await;
    let ok = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "fine", "endpoint": ok.url}))
        .await;
    // Another client wrote keys Table Storage accepts but this handler never would.
    // (Not `o'brien`: the Tables crate this harness writes with cuts that key at the quote.)
    for row_key in ["caf\u{e9}", "has space", "a:b:c"] {
        h.tables()
            .upsert(
                &h.registry_table,
                &json!({"PartitionKey": "default", "RowKey": row_key, "serviceName": row_key,
                        "endpoint": ok.url}),
            )
            .await;
    }
    let report = h.sweep_report().await;
    assert_eq!((report.probed, report.invalid_rows), (1, 3), "{report:?}");
    assert_eq!(h.health_row("fine").await["status"], "healthy");
    assert_eq!(h.tables().rows(&h.health_table).await.len(), 1);
}
