//! CORS: a web page on another site cannot act through a visitor's browser. A browser
//! sends `Origin` with every cross-site request, the `text/plain` POSTs it sends without a
//! preflight included; only configured origins get through, and only they get CORS answers.
//! (The origins are header values only: no packet leaves 127.0.0.1.)

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

const EVIL: &str = "https://evil.example.net";
const APP: &str = "https://app.example.com";

fn registration(name: &str) -> String {
    json!({"serviceName": name, "serviceType": "api", "endpoint": "https://x.example.com"})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_site_cannot_register_or_deregister_through_a_browser() {
    // The dev loop itself: standalone on loopback, anonymous.
    let h = Handler::spawn(HandlerConfig::new(Mode::Standalone)).await;
    h.register_ok(&json!({"serviceName": "victim", "serviceType": "api", "endpoint": "https://x.example.com"}))
        .await;
    let browser = [
        ("Origin", EVIL),
        ("Content-Type", "text/plain;charset=UTF-8"),
    ];
    h.send(
        Method::POST,
        "/api/ServiceRegistrar",
        &browser,
        Some(registration("planted")),
    )
    .await
    .assert_error(403, Some("Origin"));
    h.send(
        Method::DELETE,
        "/api/ServiceRegistrar?serviceType=api&serviceName=victim",
        &[("Origin", EVIL)],
        None,
    )
    .await
    .assert_error(403, Some("Origin"));
    let delete = ReqEnvelope::new("ServiceRegistrar", "DELETE")
        .query(&[("serviceType", "api"), ("serviceName", "victim")])
        .build()
        .to_string();
    h.send(
        Method::POST,
        "/ServiceRegistrar",
        &browser,
        Some(delete.clone()),
    )
    .await
    .assert_error(403, Some("Origin"));
    h.send(
        Method::POST,
        "/HealthMonitor",
        &browser,
        Some(timer_envelope(timer_info_object()).to_string()),
    )
    .await
    .assert_error(403, Some("Origin"));
    // Reading through a browser is refused as well (no CORS grant, and no answer at all).
    h.send(
        Method::GET,
        "/api/ServiceDiscovery",
        &[("Origin", EVIL)],
        None,
    )
    .await
    .assert_error(403, Some("Origin"));
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["RowKey"], "victim");

    // Under the host the same envelope, relayed with the page's Origin inside it, is refused too.
    let host = Handler::start().await;
    host.register_ok(&json!({"serviceName": "victim", "serviceType": "api", "endpoint": "https://x.example.com"}))
        .await;
    let relayed = ReqEnvelope::new("ServiceRegistrar", "DELETE")
        .query(&[("serviceType", "api"), ("serviceName", "victim")])
        .header("Origin", EVIL)
        .build();
    let res = host
        .invoke("ServiceRegistrar", &relayed)
        .await
        .envelope_res();
    assert_eq!(res.status, 403, "{}", res.raw);
    host.send(Method::POST, "/ServiceRegistrar", &browser, Some(delete))
        .await
        .assert_error(403, Some("Origin"));
    assert!(host
        .tables()
        .row(&host.registry_table, "api", "victim")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_for_allowed_origins_only() {
    let h =
        Handler::spawn(HandlerConfig::new(Mode::Standalone).env("REGISTRY_ALLOWED_ORIGINS", APP))
            .await;
    let preflight = |origin: &'static str| {
        [
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ]
    };
    let r = h
        .send(
            Method::OPTIONS,
            "/api/ServiceRegistrar",
            &preflight(APP),
            None,
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.text
    );
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );

    let r = h
        .send(
            Method::OPTIONS,
            "/api/ServiceRegistrar",
            &preflight(EVIL),
            None,
        )
        .await;
    r.assert_error(403, Some("Origin"));
    assert!(r.header("access-control-allow-origin").is_none());

    // The allowed origin's actual requests get through, with the CORS headers a page needs.
    let r = h
        .send(
            Method::POST,
            "/api/ServiceRegistrar",
            &[("Origin", APP), ("Content-Type", "application/json")],
            Some(registration("from-app")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .send(
            Method::GET,
            "/api/ServiceDiscovery",
            &[("Origin", APP)],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
    // Without Origin (servers, curl) nothing changes.
    let r = h
        .send(Method::GET, "/api/ServiceDiscovery", &[], None)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(h.tables().rows(&h.registry_table).await.len(), 1);
}
