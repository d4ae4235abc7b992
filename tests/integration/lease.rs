//! Standalone replicas share one schedule: exactly one sweeps each tick (the lease row in the
//! HealthStatus table), whichever fires first.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

fn replica(name: &str, tables: Option<(&str, &str)>) -> HandlerConfig {
    let mut cfg = HandlerConfig::new(Mode::Standalone)
        .env("HEALTH_MONITOR_SCHEDULE", "* * * * * *")
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .env("HOSTNAME", name)
        .env("RUST_LOG_FORMAT", "json");
    if let Some((registry, health)) = tables {
        cfg.registry_table = registry.to_owned();
        cfg.health_table = health.to_owned();
    }
    cfg
}

/// The ticks this replica swept, the ticks it stood aside for, and the probes its sweeps made.
fn ticks(h: &Handler) -> (BTreeSet<String>, BTreeSet<String>, u64) {
    let (mut swept, mut skipped, mut probed) = (BTreeSet::new(), BTreeSet::new(), 0);
    for line in h.stdout().lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let tick = event["tick"].as_str().unwrap_or_default().to_owned();
        match event["message"].as_str() {
            Some("health sweep finished") => {
                swept.insert(tick);
                probed += event["probed"].as_u64().expect("probed count");
            }
            Some("sweep lease held elsewhere; this replica skips the tick") => {
                skipped.insert(tick);
            }
            _ => {}
        }
    }
    (swept, skipped, probed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sweep_each_tick_exactly_once() {
    let a = Handler::spawn(replica("replica-a", None)).await;
    let b = Handler::spawn(replica(
        "replica-b",
        Some((&a.registry_table, &a.health_table)),
    ))
    .await;
    let target = HttpTarget::status(200);
    a.register_ok(&json!({"serviceName": "watched", "endpoint": target.url}))
        .await;

    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (swept_a, skipped_a, probed_a) = ticks(&a);
    let (swept_b, skipped_b, probed_b) = ticks(&b);
    let both: Vec<_> = swept_a.intersection(&swept_b).collect();
    assert!(both.is_empty(), "ticks swept twice: {both:?}");
    let swept: BTreeSet<_> = swept_a.union(&swept_b).cloned().collect();
    assert!(swept.len() >= 3, "expected a sweep per second: {swept:?}");
    // Whoever stood aside did so for a tick the other swept.
    for tick in skipped_a.iter() {
        assert!(swept_b.contains(tick) || !swept.contains(tick), "{tick}");
    }
    for tick in skipped_b.iter() {
        assert!(swept_a.contains(tick) || !swept.contains(tick), "{tick}");
    }
    assert!(
        !skipped_a.is_empty() || !skipped_b.is_empty(),
        "both replicas fire every tick, so one must have stood aside"
    );
    // The target saw exactly the probes the two replicas' sweeps report (a sweep that ran before the
    // registration probed nothing), give or take the sweep running at the moment we read.
    let hits = target.hits();
    let probed = probed_a + probed_b;
    assert!(
        hits == probed || hits == probed + 1,
        "{hits} requests for {probed} probes reported by {} sweeps",
        swept.len()
    );
    // One service: each sweep probes it once, except the (at most two) that ran before it was
    // registered while the second replica was starting.
    let sweeps = swept.len() as u64;
    assert!(
        probed <= sweeps && probed + 2 >= sweeps,
        "{probed} probes in {sweeps} sweeps"
    );

    let lease = a
        .tables()
        .row(&a.health_table, "~lease", "HealthMonitor")
        .await
        .expect("the lease row");
    let holder = lease["holder"].as_str().unwrap();
    assert!(holder == "replica-a" || holder == "replica-b", "{lease}");
    // The lease row never shows up as a service.
    let v = a.discover_ok("").await;
    assert_eq!(v["count"], 1, "{v}");
}
