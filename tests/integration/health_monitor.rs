//! HealthMonitor timer envelope: probes, HealthStatus rows, timeouts and concurrency.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn register_target(h: &Handler, name: &str, url: &str) {
    h.register_ok(&json!({"serviceName": name, "serviceType": "probe", "endpoint": url}))
        .await;
}

fn summary(res: &Resp) -> SweepReport {
    assert_eq!(
        res.status, 200,
        "timer envelope must answer HTTP 200: {} {}",
        res.status, res.text
    );
    res.assert_json_content_type();
    let v = res.json();
    check_envelope_shape(&v);
    assert_eq!(
        v["Outputs"],
        json!({}),
        "a timer has no output bindings: {v}"
    );
    let logs = logs_of(&v);
    sweep_report(&logs).unwrap_or_else(|| {
        panic!("Logs must hold `HealthMonitor sweep: probed N, healthy H, unhealthy U, duration_ms D`: {v}")
    })
}

/// Assert the type of `responseTime` in a raw row: a JSON integer, Int32 (no Int64/Double annotation).
fn assert_response_time_int32(row: &Value) -> i64 {
    let ann = row.get("responseTime@odata.type").and_then(Value::as_str);
    assert!(
        ann.is_none() || ann == Some("Edm.Int32"),
        "responseTime must be stored as Int32, found annotation {ann:?}: {row}"
    );
    let rt = row["responseTime"]
        .as_i64()
        .unwrap_or_else(|| panic!("responseTime must be an integer: {row}"));
    assert!(
        (0..=i32::MAX as i64).contains(&rt),
        "responseTime out of range: {row}"
    );
    rt
}

fn assert_health_row_common(row: &Value, name: &str) {
    assert_eq!(row["serviceName"], name, "{row}");
    assert_iso_utc(row["lastChecked"].as_str().expect("lastChecked string"));
    let lc = parse_iso(row["lastChecked"].as_str().unwrap());
    assert!(
        (chrono::Utc::now() - lc).num_seconds().abs() < 120,
        "lastChecked is not recent: {row}"
    );
    for k in ["serviceName", "status", "lastChecked", "errorMessage"] {
        assert!(
            row[k].is_string() && row.get(format!("{k}@odata.type")).is_none(),
            "{k} must be a plain string: {row}"
        );
    }
    assert_response_time_int32(row);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_three_targets_writes_health_rows() {
    // An open circuit's backoff of 1 ms makes every sweep probe every service, as the recipe did;
    // tests/integration/circuit.rs covers the default backoff.
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_TIMEOUT_MS", "1500"),
        ("HEALTH_CIRCUIT_BACKOFF_MS", "1"),
    ])
    .await;
    let ok = HttpTarget::status(200);
    let down = HttpTarget::status(503);
    let silent = SilentTarget::start();
    register_target(&h, "ok", &ok.url).await;
    register_target(&h, "down", &down.url).await;
    register_target(&h, "silent", &silent.url).await;

    let started = Instant::now();
    let r = h.sweep().await;
    let elapsed = started.elapsed();
    let SweepReport {
        probed,
        healthy,
        unhealthy,
        ..
    } = summary(&r);
    assert_eq!(
        (probed, healthy, unhealthy),
        (3, 1, 2),
        "summary: {}",
        r.text
    );
    assert!(ok.hits() >= 1, "the 200 target was never requested");
    assert!(down.hits() >= 1, "the 503 target was never requested");
    // The silent probe was cut at the configured timeout (its row below says "within 1500 ms",
    // not the 5,000 ms default); the bound only tells a sweep that hangs from a slow machine.
    assert!(
        elapsed < Duration::from_millis(1500 * 20),
        "sweep took {elapsed:?} with a 1500 ms probe timeout"
    );

    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows.len(), 3, "one HealthStatus row per service: {rows:?}");
    let get = |n: &str| {
        rows.iter()
            .find(|r| r["RowKey"] == n)
            .unwrap_or_else(|| panic!("no health row for {n}: {rows:?}"))
            .clone()
    };
    let ok_row = get("ok");
    assert_eq!(ok_row["PartitionKey"], "probe");
    assert_eq!(ok_row["status"], "healthy");
    assert_eq!(ok_row["errorMessage"], "");
    assert_health_row_common(&ok_row, "ok");

    let down_row = get("down");
    assert_eq!(down_row["status"], "unhealthy");
    assert!(
        down_row["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("503"),
        "errorMessage of a 503 target must mention 503: {down_row}"
    );
    assert_health_row_common(&down_row, "down");

    let silent_row = get("silent");
    assert_eq!(silent_row["status"], "unhealthy");
    assert!(
        !silent_row["errorMessage"].as_str().unwrap_or("").is_empty(),
        "a silent target needs a (timeout) errorMessage: {silent_row}"
    );
    assert!(
        silent_row["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("1500"),
        "HEALTH_PROBE_TIMEOUT_MS=1500 is the timeout applied: {silent_row}"
    );
    assert!(
        assert_response_time_int32(&silent_row) >= 1500,
        "a timed-out probe waited the whole timeout: {silent_row}"
    );
    assert_health_row_common(&silent_row, "silent");

    // Discovery shows the health rows; healthyOnly returns just the healthy one.
    let v = h.discover_ok("").await;
    let services = assert_discovery_shape(&v);
    assert_eq!(services.len(), 3);
    for s in &services {
        let n = s["serviceName"].as_str().unwrap();
        let row = get(n);
        let hs = &s["healthStatus"];
        assert_eq!(
            json!({"status": hs["status"], "lastChecked": hs["lastChecked"], "responseTime": hs["responseTime"]}),
            json!({"status": row["status"], "lastChecked": row["lastChecked"], "responseTime": row["responseTime"]}),
            "healthStatus of {n}"
        );
        assert_eq!(hs["circuit"], row["circuit"], "healthStatus of {n}");
        assert_eq!(
            hs["consecutiveFailures"], row["consecutiveFailures"],
            "healthStatus of {n}"
        );
    }
    let v = h.discover_ok("healthyOnly=true").await;
    let services = assert_discovery_shape(&v);
    assert_eq!(services.len(), 1, "{v}");
    assert_eq!(services[0]["serviceName"], "ok");
    assert_eq!(services[0]["healthStatus"]["status"], "healthy");

    // A second sweep replaces rows (still 3) and moves lastChecked.
    wait_until_past_stored(
        ok_row["lastChecked"].as_str().unwrap(),
        chrono::Duration::zero(),
    )
    .await;
    let r = h.sweep().await;
    assert_eq!(summary(&r).probed, 3);
    let rows2 = h.tables().rows(&h.health_table).await;
    assert_eq!(rows2.len(), 3);
    let ok2 = rows2.iter().find(|r| r["RowKey"] == "ok").unwrap();
    assert!(
        parse_iso(ok2["lastChecked"].as_str().unwrap())
            > parse_iso(ok_row["lastChecked"].as_str().unwrap()),
        "lastChecked must move on the next sweep"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_envelope_variants_are_accepted() {
    let h = Handler::start_with(&[("HEALTH_PROBE_TIMEOUT_MS", "1000")]).await;
    let ok = HttpTarget::status(200);
    register_target(&h, "ok", &ok.url).await;

    let first_run = json!({
        "Schedule": {"AdjustForDST": true},
        "ScheduleStatus": {"Last": "0001-01-01T00:00:00", "Next": "2026-11-25T05:05:00+00:00", "LastUpdated": "0001-01-01T00:00:00"},
        "IsPastDue": false
    });
    let variants: Vec<(&str, Value)> = vec![
        ("object", timer_info_object()),
        ("string", Value::String(timer_info_object().to_string())),
        (
            "ScheduleStatus null",
            json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}),
        ),
        ("first run dates without offset", first_run.clone()),
        (
            "first run, string form",
            Value::String(first_run.to_string()),
        ),
        (
            "IsPastDue true",
            json!({"Schedule": {"AdjustForDST": false}, "ScheduleStatus": {"Last": "2026-11-25T04:50:00+00:00", "Next": "2026-11-25T04:55:00+00:00", "LastUpdated": "2026-11-25T04:50:00+00:00"}, "IsPastDue": true}),
        ),
        (
            "camelCase keys",
            json!({"schedule": {"adjustForDST": true}, "scheduleStatus": null, "isPastDue": false}),
        ),
    ];
    for (name, timer) in variants {
        let before = ok.hits();
        let r = h.invoke("HealthMonitor", &timer_envelope(timer)).await;
        assert_eq!(r.status, 200, "variant {name}: {} {}", r.status, r.text);
        let SweepReport {
            probed: p,
            healthy: hh,
            unhealthy: u,
            ..
        } = summary(&r);
        assert_eq!((p, hh, u), (1, 1, 0), "variant {name}: {}", r.text);
        assert!(ok.hits() > before, "variant {name} did not probe");
    }
    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_targets_are_probed_concurrently() {
    const TIMEOUT_MS: u64 = 2000;
    let h = Handler::start_with(&[("HEALTH_PROBE_TIMEOUT_MS", "2000")]).await;
    // Four services behind one silent server, which counts the connections open at once.
    let silent = SilentTarget::start();
    for i in 0..4 {
        register_target(&h, &format!("silent{i}"), &silent.url).await;
    }
    let ok = HttpTarget::status(200);
    register_target(&h, "ok", &ok.url).await;

    let started = Instant::now();
    let r = h.sweep().await;
    let elapsed = started.elapsed();
    let SweepReport {
        probed: p,
        healthy: hh,
        unhealthy: u,
        ..
    } = summary(&r);
    assert_eq!((p, hh, u), (5, 1, 4), "{}", r.text);
    // Sequential probing would hold one connection at a time for 2 s each; concurrent probing
    // holds all four at once, which the server saw (no clock involved).
    assert_eq!(
        silent.most_open_at_once().await,
        4,
        "the 4 silent probes were not all open at once: probes are not concurrent"
    );
    assert_eq!(silent.connections().await, 4, "one connection per probe");
    assert!(
        elapsed >= Duration::from_millis(TIMEOUT_MS - 200),
        "sweep finished in {elapsed:?}, before the probe timeout could expire"
    );
    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows.len(), 5);
    for row in rows.iter().filter(|r| r["RowKey"] != "ok") {
        assert_eq!(row["status"], "unhealthy", "{row}");
        let msg = row["errorMessage"].as_str().unwrap_or("").to_lowercase();
        assert!(
            msg.contains("time") || msg.contains("2000"),
            "a silent target's errorMessage should be a timeout message: {row}"
        );
        // At least the timeout (it cannot fire early); the upper bound only tells a probe that was
        // not cut at the timeout from a slow machine.
        let rt = assert_response_time_int32(row);
        assert!(
            (TIMEOUT_MS as i64..10 * TIMEOUT_MS as i64).contains(&rt),
            "{row}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_redirect_and_status_rules() {
    let h = Handler::start_with(&[("HEALTH_PROBE_TIMEOUT_MS", "1500")]).await;
    let tcp = TcpTarget::start();
    let closed = closed_port();
    let down = HttpTarget::status(503);
    let redirect = HttpTarget::redirect(&down.url);
    let not_found = HttpTarget::status(404);
    let server_error = HttpTarget::status(500);
    let no_content = HttpTarget::status(204);
    let ok = HttpTarget::status(200);

    register_target(&h, "tcp-open", &tcp.url).await;
    register_target(
        &h,
        "tcp-closed",
        &format!("tcp://127.0.0.1:{}", closed.port),
    )
    .await;
    register_target(
        &h,
        "http-closed",
        &format!("http://127.0.0.1:{}/health", closed.port),
    )
    .await;
    register_target(&h, "redirect", &redirect.url).await;
    register_target(&h, "not-found", &not_found.url).await;
    register_target(&h, "server-error", &server_error.url).await;
    register_target(&h, "no-content", &no_content.url).await;
    // endpoint is down, healthEndpoint is fine: the probe uses healthEndpoint.
    h.register_ok(&json!({"serviceName": "split", "serviceType": "probe", "endpoint": down.url, "healthEndpoint": ok.url}))
        .await;

    let r = h.sweep().await;
    let SweepReport {
        probed: p,
        healthy: hh,
        unhealthy: u,
        ..
    } = summary(&r);
    let rows = h.tables().rows(&h.health_table).await;
    let status = |n: &str| -> (String, String) {
        let row = rows
            .iter()
            .find(|r| r["RowKey"] == n)
            .unwrap_or_else(|| panic!("no health row for {n}: {rows:?}"));
        (
            row["status"].as_str().unwrap_or("?").to_string(),
            row["errorMessage"].as_str().unwrap_or("?").to_string(),
        )
    };
    let expected = [
        ("tcp-open", "healthy"),
        ("tcp-closed", "unhealthy"),
        ("http-closed", "unhealthy"),
        ("redirect", "healthy"),
        ("not-found", "unhealthy"),
        ("server-error", "unhealthy"),
        ("no-content", "healthy"),
        ("split", "healthy"),
    ];
    let mut wrong = vec![];
    for (n, s) in expected {
        let (got, msg) = status(n);
        if got != s {
            wrong.push(format!("{n}: expected {s}, got {got} ({msg})"));
        }
        if s == "healthy" && !msg.is_empty() {
            wrong.push(format!(
                "{n}: healthy row must have errorMessage \"\", got {msg:?}"
            ));
        }
        if s == "unhealthy" && msg.is_empty() {
            wrong.push(format!("{n}: unhealthy row needs an errorMessage"));
        }
    }
    assert!(wrong.is_empty(), "probe results:\n{}", wrong.join("\n"));
    assert!(status("not-found").1.contains("404"));
    assert!(status("server-error").1.contains("500"));
    assert_eq!((p, hh, u), (8, 4, 4), "{}", r.text);
    assert_eq!(
        down.hits(),
        0,
        "redirects must not be followed and endpoint must not be probed"
    );
    assert!(ok.hits() >= 1);
    assert!(redirect.hits() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_registry_sweep() {
    let h = Handler::start().await;
    let r = h.sweep().await;
    let SweepReport {
        probed: p,
        healthy: hh,
        unhealthy: u,
        ..
    } = summary(&r);
    assert_eq!((p, hh, u), (0, 0, 0));
    assert!(h.tables().rows(&h.health_table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_concurrency_is_bounded() {
    // 4 silent targets with at most 2 probes in flight: two waves of one timeout each.
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_TIMEOUT_MS", "1000"),
        ("HEALTH_PROBE_CONCURRENCY", "2"),
    ])
    .await;
    let silent = SilentTarget::start();
    for i in 0..4 {
        register_target(&h, &format!("s{i}"), &silent.url).await;
    }
    let t0 = Instant::now();
    let r = h.sweep().await;
    let took = t0.elapsed();
    assert_eq!(summary(&r).probed, 4);
    // Not all four at once: a timeout cannot expire early, so two waves take two timeouts.
    assert!(
        took >= Duration::from_millis(1900),
        "with HEALTH_PROBE_CONCURRENCY=2, 4 silent probes need two 1 s waves; took {took:?}"
    );
    // Not one at a time (four waves): two were open together, as the server saw.
    assert!(
        silent.most_open_at_once().await >= 2,
        "with HEALTH_PROBE_CONCURRENCY=2 two probes run side by side"
    );
    assert_eq!(silent.connections().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_in_flight_reach_the_setting_and_never_exceed_it() {
    // 12 services held 400 ms each by the target, at most 3 in flight: the target counts what it
    // holds at once (before it answers, so no replacement can overlap), and must see exactly 3:
    // never more (the bound), and 3 rather than fewer (a probe starts as soon as one ends, no
    // waiting for a whole batch). Counts, not times, are asserted.
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_CONCURRENCY", "3"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
    ])
    .await;
    let target = HoldingTarget::start(Duration::from_millis(400));
    for i in 0..12 {
        register_target(&h, &format!("held-{i:02}"), &target.url).await;
    }
    let r = h.sweep().await;
    let report = summary(&r);
    assert_eq!(
        (report.probed, report.healthy, report.unhealthy),
        (12, 12, 0),
        "{}",
        r.text
    );
    assert_eq!(target.hits.load(std::sync::atomic::Ordering::SeqCst), 12);
    assert_eq!(
        target.most_held_at_once(),
        3,
        "HEALTH_PROBE_CONCURRENCY=3 means 3 probes in flight, never more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sweep_writes_every_row() {
    // 250 services in one partition (more than one entity-group transaction of 100).
    let h = Handler::start_with(&[("HEALTH_PROBE_TIMEOUT_MS", "3000")]).await;
    let ok = HttpTarget::status(200);
    let tcp = TcpTarget::start();
    let t = h.tables();
    t.create_table(&h.registry_table).await;
    // Seeded as the recipe's Node ServiceRegistrar would have written them (250 registrations
    // through the handler would only make the test slower).
    let rows: Vec<Value> = (0..250)
        .map(|i| {
            let url = if i % 2 == 0 { ok.url.clone() } else { tcp.url.clone() };
            json!({
                "PartitionKey": "bulk", "RowKey": format!("svc-{i:03}"),
                "serviceName": format!("svc-{i:03}"), "endpoint": url, "healthEndpoint": url,
                "serviceType": "bulk", "version": "1.0.0", "tags": "[]", "metadata": "{}",
                "registeredAt": "2026-11-25T05:00:00.000Z", "lastHeartbeat": "2026-11-25T05:00:00.000Z"
            })
        })
        .collect();
    t.upsert_batch(&h.registry_table, &rows).await;
    let r = h.sweep().await;
    let SweepReport {
        probed: p,
        healthy: hh,
        unhealthy: u,
        ..
    } = summary(&r);
    assert_eq!((p, hh, u), (250, 250, 0), "{}", r.text);
    let health = t.rows(&h.health_table).await;
    assert_eq!(health.len(), 250);
    assert!(health.iter().all(|r| r["status"] == "healthy"));
    assert!(ok.hits() >= 125);
    assert!(tcp.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 125);
    let v = h.discover_ok("healthyOnly=true").await;
    assert_eq!(v["count"], 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_stops_starting_probes_at_its_deadline_and_catches_up_next_time() {
    // One probe at a time, 2 s each; probes may start only in the first 1.5 s (deadline 3.5 s less
    // one probe timeout): the first starts, the other two are reported, not silently dropped.
    // The window leaves a loaded machine 1.5 s for the sweep's two reads before the first probe,
    // and the second could only start after the first's 2 s timeout, past the window.
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_TIMEOUT_MS", "2000"),
        ("HEALTH_SWEEP_DEADLINE_MS", "3500"),
        ("HEALTH_PROBE_CONCURRENCY", "1"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
    ])
    .await;
    let silent = SilentTarget::start();
    for name in ["a", "b", "c"] {
        register_target(&h, name, &silent.url).await;
    }
    let r = h.sweep().await;
    assert_eq!(
        summary(&r).probed,
        1,
        "one probe started before the deadline: {}",
        r.text
    );
    let logs = logs_of(&r.json());
    assert_eq!(
        sweep_report(&logs).map(|r| r.skipped_deadline),
        Some(2),
        "the summary must say what was skipped: {logs:?}"
    );
    // Past its deadline the sweep starts nothing: the two it skipped never reached the target
    // (counted by the target, not by how long the sweep took).
    assert_eq!(
        silent.connections().await,
        1,
        "the sweep ran past its deadline: probes started after it"
    );
    assert_eq!(h.tables().rows(&h.health_table).await.len(), 1);

    // Never-checked services go first next time, so the two skipped ones are not starved.
    let r = h.sweep().await;
    assert_eq!(summary(&r).probed, 1, "{}", r.text);
    assert_eq!(silent.connections().await, 2);
    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(
        rows.len(),
        2,
        "the next sweep starts with a never-checked service: {rows:?}"
    );
}
