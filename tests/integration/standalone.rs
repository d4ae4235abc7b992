//! Standalone mode (no FUNCTIONS_CUSTOMHANDLER_PORT): own scheduler, SIGTERM; and the
//! absence of a scheduler in custom-handler mode.

use crate::harness::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_runs_the_sweep_on_its_schedule() {
    let cfg = HandlerConfig::new(Mode::Standalone)
        .env("HEALTH_MONITOR_SCHEDULE", "*/2 * * * * *")
        .env("HEALTH_PROBE_TIMEOUT_MS", "1000");
    let h = Handler::spawn(cfg).await;
    let target = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "sched", "serviceType": "api", "endpoint": target.url}))
        .await;
    let tables = h.tables();
    let row = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async { tables.row(&h.health_table, "api", "sched").await },
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "no HealthStatus row within 10 s with HEALTH_MONITOR_SCHEDULE=*/2 * * * * *:\n{}",
            h.logs()
        )
    });
    assert_eq!(row["status"], "healthy", "{row}");
    assert_eq!(row["errorMessage"], "");
    assert!(target.hits() >= 1);

    // It keeps running: lastChecked moves on a later tick.
    let first = parse_iso(row["lastChecked"].as_str().unwrap());
    let moved = poll_until(
        Duration::from_secs(8),
        Duration::from_millis(250),
        || async {
            let r = tables.row(&h.health_table, "api", "sched").await?;
            (parse_iso(r["lastChecked"].as_str()?) > first).then_some(())
        },
    )
    .await;
    assert!(
        moved.is_some(),
        "the schedule fired only once:\n{}",
        h.logs()
    );

    // What the sweep recorded is what discovery serves.
    let v = h.discover_ok("healthyOnly=true").await;
    assert_eq!(v["count"], 1, "{v}");
    // Envelopes are the host's protocol: not served standalone (a JSON 404, nothing run), except
    // the manual sweep, which the anonymous loopback dev loop may trigger.
    let r = h
        .invoke(
            "ServiceDiscovery",
            &ReqEnvelope::new("ServiceDiscovery", "GET")
                .query(&[("healthyOnly", "true")])
                .build(),
        )
        .await;
    r.assert_error(404, None);
    // The schedule keeps firing every two seconds, so a manual sweep can meet a scheduled one
    // still running (likelier on a loaded machine), which it reports and skips; ask until one runs.
    let r = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let r = h.sweep().await;
            (!r.text.contains("a sweep is already running")).then_some(r)
        },
    )
    .await
    .expect("a manual sweep ran between the scheduled ones");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(sweep_report(&logs_of(&r.json())).is_some(), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_exits_zero_on_sigterm() {
    let mut h = Handler::spawn(HandlerConfig::new(Mode::Standalone)).await;
    h.register_ok(&json!({"serviceName": "x", "endpoint": "https://x.example.com"}))
        .await;
    let t0 = Instant::now();
    send_signal(h.pid(), "TERM");
    let status = h.wait_exit(Duration::from_secs(5)).await;
    let status = status
        .unwrap_or_else(|| panic!("handler did not exit within 5 s of SIGTERM:\n{}", h.logs()));
    assert!(
        status.success(),
        "exit status after SIGTERM: {status:?}\n{}",
        h.logs()
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_handler_mode_exits_zero_on_sigterm() {
    let mut h = Handler::start().await;
    send_signal(h.pid(), "TERM");
    let status = h
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no exit within 5 s of SIGTERM:\n{}", h.logs()));
    assert!(status.success(), "{status:?}\n{}", h.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_handler_mode_has_no_scheduler() {
    // The host owns the timer: even with a 2 s schedule configured, nothing is probed.
    let h = Handler::start_with(&[("HEALTH_MONITOR_SCHEDULE", "*/2 * * * * *")]).await;
    let target = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "nosched", "serviceType": "api", "endpoint": target.url}))
        .await;
    // How long is long enough to be sure nothing fires? As long as a standalone process on the
    // same schedule, started after this one on the same machine, takes to sweep twice.
    let control = Handler::spawn(
        HandlerConfig::new(Mode::Standalone).env("HEALTH_MONITOR_SCHEDULE", "*/2 * * * * *"),
    )
    .await;
    let control_target = HttpTarget::status(200);
    control
        .register_ok(&json!({"serviceName": "sched", "endpoint": control_target.url}))
        .await;
    let fired = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { (control_target.hits() >= 2).then_some(()) },
    )
    .await;
    assert!(
        fired.is_some(),
        "the standalone control did not sweep twice in 30 s:\n{}",
        control.logs()
    );
    assert_eq!(
        target.hits(),
        0,
        "custom-handler mode must not run its own sweeps"
    );
    assert!(h.tables().rows(&h.health_table).await.is_empty());
}
