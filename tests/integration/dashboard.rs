//! The dashboard. The page's own headers here; what a browser shows, in headless
//! Chromium (scripts/check-dashboard.sh): a healthy and a failing local target, one sweep, the
//! page with the admin key entered, its filters and its conditional refresh, that the admin key's
//! data leaves the page after "Forget key" and a refused key, and a screenshot under
//! target/ci-artifacts/. Then the dependency graph and the timeline: a three-level chain whose leaf
//! fails, a soft dependency and a cycle, one sweep, the graph's nodes, edges, colours, labels and
//! highlighted chain and the timeline's transitions in the page (scripts/check_dashboard_graph.py),
//! and target/ci-artifacts/dashboard-graph.png.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Chromium on a loaded 2-core machine (installed beforehand by scripts/prepare.sh, never here).
const BROWSER_BUDGET: Duration = Duration::from_secs(300);

/// A handler with the keyed tests' keys that marks a target unhealthy at its first failure.
async fn handler() -> Handler {
    Handler::spawn(
        HandlerConfig::with_keys()
            .env("HEALTH_ALLOW_LOOPBACK", "true")
            .env("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_needs_no_key_and_allows_only_its_own_script_and_style() {
    let h = handler().await;
    let r = h.send(Method::GET, "/api/Dashboard", &[], None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let policy = r.header("content-security-policy").expect("a CSP");
    assert!(
        policy.starts_with("default-src 'none'; script-src 'sha256-"),
        "{policy}"
    );
    assert!(
        policy.contains("connect-src 'self'") && !policy.contains("unsafe"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(r.text.contains("<label for=\"key\">"), "{}", r.text);
    // The SVG namespace the graph's elements are created in is a name, never fetched.
    let text = r.text.replace("\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !text.contains("http://") && !text.contains("https://"),
        "no external URL"
    );

    // The data it shows still needs the key.
    let r = h
        .send(Method::GET, "/api/ServiceDiscovery", &[], None)
        .await;
    r.assert_error(401, Some("Authorization"));
    let reader = bearer(READER);
    let auth = [("Authorization", reader.as_str())];
    let r = h.send(Method::GET, "/api/Sweep", &auth, None).await;
    r.assert_error(403, None);
    let r = h.send(Method::POST, "/api/Dashboard", &[], None).await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_health_reasons_and_filters() {
    let h = handler().await;
    let up = HttpTarget::status(200);
    let down = HttpTarget::status(503);
    let admin = bearer(ADMIN);
    let auth = [("Authorization", admin.as_str())];
    for body in [
        json!({"serviceName": "dash-up", "serviceType": "web", "instanceId": "pod-1",
               "endpoint": up.url, "ttlSeconds": 600, "weight": 250,
               "tags": ["eu", "blue"], "metadata": {"zone": "1"}}),
        json!({"serviceName": "dash-down", "serviceType": "api", "endpoint": down.url}),
    ] {
        let r = h
            .send(
                Method::POST,
                "/api/ServiceRegistrar",
                &auth,
                Some(body.to_string()),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let sweep = timer_envelope(timer_info_object()).to_string();
    let r = h
        .send(Method::POST, "/HealthMonitor", &auth, Some(sweep))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((up.hits(), down.hits()), (1, 1), "each target probed once");

    browser(&h, &[], "dashboard.png").await;
}

/// Runs scripts/check-dashboard.sh (with `flags`) against `h` and the admin key, bounded by
/// BROWSER_BUDGET, and asserts it passed and left its screenshot `shot` in target/ci-artifacts/.
async fn browser(h: &Handler, flags: &[&str], shot: &str) {
    let artifacts = manifest_dir().join("target/ci-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join(shot);
    let _ = std::fs::remove_file(&shot);
    let base = h.url("");
    let base = base.trim_end_matches('/').to_owned();
    let script = manifest_dir().join("scripts/check-dashboard.sh");
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.extend([base, ADMIN.to_owned(), shot.to_str().unwrap().to_owned()]);
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(script)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run scripts/check-dashboard.sh");
        let deadline = Instant::now() + BROWSER_BUDGET;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let output = child.wait_with_output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    println!("{stdout}");
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    println!("dashboard screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_draws_the_dependency_graph_and_the_timeline() {
    let h = handler().await;
    let failing = HttpTarget::status(503);
    let up = HttpTarget::status(200);
    let admin = bearer(ADMIN);
    let auth = [("Authorization", admin.as_str())];
    // web:shop -> api:orders -> db:orders-sql (503), web:shop softly on cache:sessions, and a
    // cycle loop:ping <-> loop:pong, every other target answering 200.
    let registrations = [
        json!({"serviceType": "db", "serviceName": "orders-sql", "endpoint": failing.url}),
        json!({"serviceType": "api", "serviceName": "orders", "endpoint": up.url,
               "dependsOn": ["db:orders-sql"]}),
        json!({"serviceType": "web", "serviceName": "shop", "endpoint": up.url,
               "dependsOn": ["api:orders", {"service": "cache:sessions", "required": false}]}),
        json!({"serviceType": "cache", "serviceName": "sessions", "endpoint": up.url}),
        json!({"serviceType": "loop", "serviceName": "ping", "endpoint": up.url,
               "dependsOn": ["loop:pong"]}),
        json!({"serviceType": "loop", "serviceName": "pong", "endpoint": up.url,
               "dependsOn": ["loop:ping"]}),
    ];
    for body in &registrations {
        let r = h
            .send(
                Method::POST,
                "/api/ServiceRegistrar",
                &auth,
                Some(body.to_string()),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let sweep = timer_envelope(timer_info_object()).to_string();
    let r = h
        .send(Method::POST, "/HealthMonitor", &auth, Some(sweep))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (failing.hits(), up.hits()),
        (1, 5),
        "each target probed once"
    );

    // What the page will draw, as the API says it: the chain, nearest first.
    let r = h
        .send(
            Method::GET,
            "/api/ServiceDiscovery?serviceType=web&serviceName=shop",
            &auth,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let shop = &r.json()["services"][0];
    assert_eq!(shop["effectiveStatus"], "unhealthy", "{shop}");
    assert_eq!(
        shop["blockedBy"],
        json!(["api:orders", "db:orders-sql"]),
        "{shop}"
    );

    browser(&h, &["--graph"], "dashboard-graph.png").await;
}
