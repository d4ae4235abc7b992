//! The last sweep's summary: stored in the state table's `(~sweep, last)` row, served by
//! `GET /api/Sweep` (and its envelope), exactly the counters of the sweep's summary line; a failed
//! sweep records that it failed and why. The row never shows in discovery and the sweep leaves it
//! alone.

use crate::harness::*;
use serde_json::{json, Value};
use service_registry::health::SweepReport;

const SECRET: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq";

/// The counters as the row stores them: Int64, each under its summary-line name.
fn stored_counters(row: &Value) -> Value {
    let counters: serde_json::Map<String, Value> = SweepReport::COUNTERS
        .iter()
        .map(|name| {
            assert_eq!(
                row[format!("{name}@odata.type")],
                "Edm.Int64",
                "{name}: {row}"
            );
            let n: u64 = row[*name]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{name}: {row}"));
            ((*name).to_owned(), json!(n))
        })
        .collect();
    Value::Object(counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_sweep_is_stored_and_served_with_exactly_its_summary_counters() {
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_JITTER_MS", "0"),
        ("HEALTH_PROBE_TIMEOUT_MS", "1000"),
    ])
    .await;
    assert_eq!(h.last_sweep().await, Value::Null, "no sweep yet");

    let (up, down) = (HttpTarget::status(200), HttpTarget::status(503));
    for (name, target) in [("up", &up), ("down", &down)] {
        h.register_ok(&json!({"serviceName": name, "serviceType": "api", "endpoint": target.url}))
            .await;
    }
    let report = h.sweep_report().await;
    assert_eq!(
        (report.probed, report.healthy, report.unhealthy),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!((up.hits(), down.hits()), (1, 1));

    let row = h
        .tables()
        .row(&h.state_table, "~sweep", "last")
        .await
        .expect("the (~sweep, last) row");
    assert_eq!(
        stored_counters(&row),
        serde_json::to_value(&report).unwrap(),
        "{row}"
    );
    assert_eq!(
        (row["outcome"].clone(), row["trigger"].clone()),
        (json!("succeeded"), json!("invocation"))
    );
    assert!(
        row.get("tick").is_none() && row.get("error").is_none(),
        "{row}"
    );

    let shown = h.last_sweep().await;
    assert_eq!(
        shown["counters"],
        serde_json::to_value(&report).unwrap(),
        "{shown}"
    );
    assert_eq!(shown["outcome"], "succeeded");
    assert_eq!(shown["trigger"], "invocation");
    for absent in ["tick", "error"] {
        assert!(shown.get(absent).is_none(), "{absent}: {shown}");
    }
    // Who swept and when, as the health rows it wrote record it: both services were new, so their
    // transitions are dated at the sweep's start.
    let health = h.tables().rows(&h.health_table).await;
    assert_eq!(health.len(), 2, "{health:?}");
    for service in &health {
        assert_eq!(shown["checkedBy"], service["checkedBy"], "{service}");
        assert_eq!(shown["startedAt"], service["lastTransition"], "{service}");
    }
    let (started, finished) = (
        shown["startedAt"].as_str().unwrap(),
        shown["finishedAt"].as_str().unwrap(),
    );
    assert_iso_utc(started);
    assert_iso_utc(finished);
    assert!(parse_iso(started) <= parse_iso(finished), "{shown}");
    assert_eq!(
        (row["startedAt"].as_str(), row["finishedAt"].as_str()),
        (Some(started), Some(finished))
    );

    // The envelope path answers the same.
    let res = h
        .invoke("Sweep", &ReqEnvelope::new("Sweep", "GET").build())
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    let answer = res.json();
    assert_eq!(answer["lastSweep"], shown, "{answer}");
    assert_eq!(
        answer["recentTransitions"],
        h.sweep_status().await["recentTransitions"]
    );

    // The row is the handler's own: never listed, never judged an orphan or an invalid row.
    let v = h.discover_ok("").await;
    assert_eq!(v["count"], 2, "{v}");
    let again = h.sweep_report().await;
    assert_eq!(
        (again.deleted_orphans, again.invalid_rows),
        (0, 0),
        "{again:?}"
    );
    let shown_again = h.last_sweep().await;
    assert_eq!(
        shown_again["counters"],
        serde_json::to_value(&again).unwrap()
    );
    assert_ne!(
        shown_again["startedAt"], shown["startedAt"],
        "replaced by the newer sweep"
    );
    assert_eq!(
        h.tables().all_rows(&h.health_table).await.len(),
        2,
        "the two services, and nothing else"
    );
    assert_eq!(
        h.tables().all_rows(&h.state_table).await.len(),
        2,
        "the summary and the recent transitions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sweep_records_that_it_failed_and_why() {
    // No read cache: the sweep must read the registry table, which the test deletes.
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "0"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
    ])
    .await;
    let up = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "up", "endpoint": up.url}))
        .await;
    h.sweep_report().await;
    assert_eq!(h.last_sweep().await["outcome"], "succeeded");

    h.tables().delete_table(&h.registry_table).await;
    let r = h.sweep().await;
    assert_eq!(
        r.status, 500,
        "a sweep that cannot read the registry fails: {}",
        r.text
    );
    let logs = logs_of(&r.json());
    let reason = logs
        .iter()
        .find_map(|l| l.strip_prefix("HealthMonitor sweep failed: "))
        .unwrap_or_else(|| panic!("no failure line: {logs:?}"))
        .to_owned();

    let shown = h.last_sweep().await;
    assert_eq!(shown["outcome"], "failed", "{shown}");
    assert_eq!(
        shown["error"],
        reason.as_str(),
        "the same reason as the invocation's Logs: {shown}"
    );
    assert!(
        shown.get("counters").is_none(),
        "a failed sweep has no summary: {shown}"
    );
    assert!(
        !reason.is_empty() && !reason.contains(SECRET) && !reason.contains("AccountKey"),
        "{reason}"
    );
    let row = h
        .tables()
        .row(&h.state_table, "~sweep", "last")
        .await
        .unwrap();
    assert_eq!(row["outcome"], "failed");
    assert_eq!(row["error"], reason.as_str());
    assert!(row.get("probed").is_none(), "{row}");
    assert_eq!(up.hits(), 1, "the failed sweep probed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_sweep_records_its_tick_and_its_replica() {
    let cfg = HandlerConfig::new(Mode::Standalone)
        .env("HEALTH_MONITOR_SCHEDULE", "* * * * * *")
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .env("HOSTNAME", "replica-s");
    let h = Handler::spawn(cfg).await;
    let shown = poll_until(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(200),
        || async {
            let shown = h.last_sweep().await;
            (!shown.is_null()).then_some(shown)
        },
    )
    .await
    .unwrap_or_else(|| panic!("no scheduled sweep recorded:\n{}", h.logs()));
    assert_eq!(shown["trigger"], "schedule", "{shown}");
    assert_eq!(shown["checkedBy"], "replica-s", "{shown}");
    assert_eq!(shown["outcome"], "succeeded", "{shown}");
    let tick = shown["tick"]
        .as_str()
        .expect("a scheduled sweep names its tick");
    assert_iso_utc(tick);
    // The tick is a whole second (the schedule fires every second), and the sweep starts at it or after.
    assert!(tick.ends_with(".000Z"), "{tick}");
    assert!(
        parse_iso(tick) <= parse_iso(shown["startedAt"].as_str().unwrap()),
        "{shown}"
    );
    // The lease row names the same holder; the summary row sits beside it.
    let lease = h
        .tables()
        .row(&h.state_table, "~lease", "HealthMonitor")
        .await
        .expect("lease row");
    assert_eq!(lease["holder"], "replica-s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_sweep_is_for_admins() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    h.call(reqwest::Method::GET, "/api/Sweep", None, None)
        .await
        .assert_error(401, Some("Authorization"));
    // A reader of every service still may not see the sweep's counts: like the manual sweep, an
    // admin's business.
    h.call(reqwest::Method::GET, "/api/Sweep", Some(READER), None)
        .await
        .assert_error(403, None);
    let r = h
        .call(reqwest::Method::GET, "/api/Sweep", Some(ADMIN), None)
        .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"lastSweep": null, "recentTransitions": []})),
        "{}",
        r.text
    );
}
