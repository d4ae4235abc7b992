//! DNS rebinding: a page whose own host name was re-resolved to 127.0.0.1 reaches our port with
//! same-origin requests (no `Origin`), but its `Host` still names the attacker. Where nobody is
//! checked (standalone without authentication, the metrics listener) such a request is a JSON 421
//! naming `Host`; the loopback names are answered; authenticated listeners and the handler under
//! the Functions host (which forwards with its own `Host`) are unaffected. Every packet goes to
//! 127.0.0.1: the names are header values only.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

const REBIND: &str = "rebind.attacker.example";

async fn get_with_host(h: &Handler, path: &str, host: &str) -> Resp {
    h.send(Method::GET, path, &[("Host", host)], None).await
}

fn assert_misdirected(r: &Resp, what: &str) {
    assert_eq!(r.status, 421, "{what}: {}", r.text);
    r.assert_error(421, Some("Host"));
    assert!(!r.text.contains("orders"), "{what}: {}", r.text);
}

/// A service to be read, and one sweep so `/api/Sweep` has something to show.
async fn with_a_service_and_a_sweep(h: &Handler) {
    h.register_ok(&json!({"serviceName": "orders", "serviceType": "api", "endpoint": "https://orders.example.com"}))
        .await;
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anonymous_dev_loop_answers_only_its_loopback_names() {
    for anonymous in [
        HandlerConfig::new(Mode::Standalone),
        HandlerConfig::new(Mode::Standalone).env("REGISTRY_ALLOW_ANONYMOUS", "true"),
    ] {
        let h = Handler::spawn(anonymous).await;
        with_a_service_and_a_sweep(&h).await;
        let port = h.port;
        let rebind = format!("{REBIND}:{port}");
        for path in [
            "/api/ServiceDiscovery",
            "/api/Sweep",
            "/",
            "/api/openapi.json",
        ] {
            assert_misdirected(&get_with_host(&h, path, &rebind).await, path);
            assert_misdirected(&get_with_host(&h, path, REBIND).await, path);
        }
        // Nor can it write: a simple POST as a rebinding page sends it.
        let r = h
            .send(
                Method::POST,
                "/api/ServiceRegistrar",
                &[("Host", &rebind), ("Content-Type", "text/plain;charset=UTF-8")],
                Some(json!({"serviceName": "planted", "serviceType": "api", "endpoint": "https://x.example.com"}).to_string()),
            )
            .await;
        assert_misdirected(&r, "POST /api/ServiceRegistrar");
        assert_eq!(h.tables().rows(&h.registry_table).await.len(), 1);
        assert!(h.logs().contains("status=421"), "the refusal is logged");

        for host in [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            "localhost".to_owned(),
            format!("[::1]:{port}"),
        ] {
            let r = get_with_host(&h, "/api/ServiceDiscovery", &host).await;
            assert_eq!(r.status, 200, "{host}: {}", r.text);
            assert_eq!(r.json()["count"], 1, "{host}");
            let r = get_with_host(&h, "/api/Sweep", &host).await;
            assert_eq!(r.status, 200, "{host}: {}", r.text);
        }
        // The loopback name on another port names another server.
        assert_misdirected(
            &get_with_host(
                &h,
                "/api/ServiceDiscovery",
                &format!("localhost:{}", port ^ 1),
            )
            .await,
            "another port",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_answers_only_its_loopback_names() {
    let metrics_port = free_port();
    let h = Handler::spawn(
        HandlerConfig::with_keys().env("METRICS_BIND", &format!("127.0.0.1:{metrics_port}")),
    )
    .await;
    let client = http_client();
    let scrape = |host: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
                .header("Host", host)
                .send()
                .await
                .unwrap()
        }
    };
    let r = scrape(format!("{REBIND}:{metrics_port}")).await;
    assert_eq!(r.status(), 421);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["field"], "Host", "{body}");
    for host in [
        format!("127.0.0.1:{metrics_port}"),
        format!("localhost:{metrics_port}"),
        format!("[::1]:{metrics_port}"),
    ] {
        let r = scrape(host.clone()).await;
        assert_eq!(r.status(), 200, "{host}");
        assert!(r.text().await.unwrap().contains("registry_requests_total"));
    }
    // The API beside it has keys configured: a rebinding page holds none, so no Host check there.
    let r = h
        .send(
            Method::GET,
            "/api/ServiceDiscovery",
            &[
                ("Host", &format!("{REBIND}:{}", h.port)),
                ("Authorization", &bearer(READER)),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .send(
            Method::GET,
            "/api/ServiceDiscovery",
            &[("Host", &format!("{REBIND}:{}", h.port))],
            None,
        )
        .await;
    r.assert_error(401, Some("Authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_in_the_allowed_hosts_are_answered_too() {
    let h = Handler::spawn(
        HandlerConfig::new(Mode::Standalone).env("REGISTRY_ALLOWED_HOSTS", "registry"),
    )
    .await;
    let r = get_with_host(&h, "/api/ServiceDiscovery", &format!("registry:{}", h.port)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_misdirected(
        &get_with_host(&h, "/api/ServiceDiscovery", &format!("{REBIND}:{}", h.port)).await,
        "not listed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_functions_host_its_own_host_header_is_answered() {
    // As the host forwards: to 127.0.0.1:<port> with the app's public name in `Host`.
    let h = Handler::start().await;
    let r = get_with_host(&h, "/api/ServiceDiscovery", "myapp.azurewebsites.net").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get_with_host(&h, "/", "myapp.azurewebsites.net").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
}
