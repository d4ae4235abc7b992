//! Standalone replicas share one schedule: exactly one sweeps each tick (the lease row in the
//! state table), whichever fires first, and no tick goes unswept.
//!
//! Everything is judged from the replicas' JSON logs (one line per tick handled: swept, or stood
//! aside), never from how long the test waited, so a loaded machine changes how many ticks the
//! test sees, not whether it passes.

use crate::harness::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// The read cache's lifetime in both replicas: a replica that did not take the registration itself
/// may sweep from a registry read up to this old.
const CACHE_TTL_MS: i64 = 1000;
/// Ticks, after the registration is visible everywhere, that must be swept by exactly one replica
/// before the test stops looking.
const COVERED_TICKS: usize = 3;

const SWEPT: &str = "health sweep finished";
const STOOD_ASIDE: &str = "sweep lease held elsewhere; this replica skips the tick";

fn replica(name: &str, tables: Option<(&str, &str, &str)>) -> HandlerConfig {
    let mut cfg = HandlerConfig::new(Mode::Standalone)
        .env("HEALTH_MONITOR_SCHEDULE", "* * * * * *")
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .env("DISCOVERY_CACHE_TTL_MS", &CACHE_TTL_MS.to_string())
        // What the lease row's holder is asserted to be.
        .env("HOSTNAME", name)
        .env("RUST_LOG_FORMAT", "json");
    if let Some((registry, health, state)) = tables {
        cfg.registry_table = registry.to_owned();
        cfg.health_table = health.to_owned();
        cfg.state_table = state.to_owned();
    }
    cfg
}

/// One scheduled tick as one replica handled it.
#[derive(Debug, Clone)]
struct Handled {
    tick: DateTime<Utc>,
    /// `Some(probes)` if this replica swept the tick, `None` if it stood aside.
    probed: Option<u64>,
    /// When the line was logged: the replica was busy with this tick until then.
    logged_at: DateTime<Utc>,
}

/// The scheduled ticks this replica handled, in log order (manual invocations have no tick).
fn handled(h: &Handler) -> Vec<Handled> {
    h.stdout()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|event| {
            let probed = match event["message"].as_str()? {
                SWEPT => Some(event["probed"].as_u64().expect("probed count")),
                STOOD_ASIDE => None,
                _ => return None,
            };
            let tick = chrono::DateTime::parse_from_rfc3339(event["tick"].as_str()?).ok()?;
            Some(Handled {
                tick: tick.with_timezone(&Utc),
                probed,
                logged_at: parse_iso(event["timestamp"].as_str().expect("timestamp")),
            })
        })
        .collect()
}

/// Both replicas' logs, read at one moment.
struct Ledger {
    a: Vec<Handled>,
    b: Vec<Handled>,
}

impl Ledger {
    fn read(a: &Handler, b: &Handler) -> Ledger {
        Ledger {
            a: handled(a),
            b: handled(b),
        }
    }

    fn all(&self) -> impl Iterator<Item = &Handled> {
        self.a.iter().chain(&self.b)
    }

    fn swept(events: &[Handled]) -> BTreeSet<DateTime<Utc>> {
        events
            .iter()
            .filter(|e| e.probed.is_some())
            .map(|e| e.tick)
            .collect()
    }

    fn stood_aside(events: &[Handled]) -> BTreeSet<DateTime<Utc>> {
        events
            .iter()
            .filter(|e| e.probed.is_none())
            .map(|e| e.tick)
            .collect()
    }

    /// The ticks both replicas were running their schedules for: from the later first tick either
    /// logged to the earlier last one. Ticks before are one replica's alone (the other was still
    /// starting); ticks after may still be in progress in the replica that has not logged them.
    fn window(&self) -> Vec<DateTime<Utc>> {
        let (Some(a0), Some(b0), Some(a1), Some(b1)) =
            (self.a.first(), self.b.first(), self.a.last(), self.b.last())
        else {
            return vec![];
        };
        let mut tick = a0.tick.max(b0.tick);
        let last = a1.tick.min(b1.tick);
        let mut ticks = vec![];
        // The schedule fires every second.
        while tick <= last {
            ticks.push(tick);
            tick += chrono::Duration::seconds(1);
        }
        ticks
    }

    /// How many replicas swept `tick`.
    fn sweeps_of(&self, tick: DateTime<Utc>) -> usize {
        self.all()
            .filter(|e| e.tick == tick && e.probed.is_some())
            .count()
    }

    /// A tick nobody swept is by design only when it fell while an earlier tick was still being
    /// handled (the schedule skips occurrences missed during a long sweep, as the host's timer
    /// does, and the lease makes the other replica stand aside for a sweep still running).
    fn busy_at(&self, tick: DateTime<Utc>) -> bool {
        self.all().any(|e| e.tick < tick && e.logged_at >= tick)
    }

    /// Ticks in the window that nobody swept although no sweep was running.
    fn unswept(&self) -> Vec<DateTime<Utc>> {
        self.window()
            .into_iter()
            .filter(|tick| self.sweeps_of(*tick) == 0 && !self.busy_at(*tick))
            .collect()
    }

    /// Ticks in the window swept by exactly one replica, from `from` on.
    fn covered_from(&self, from: DateTime<Utc>) -> usize {
        self.window()
            .into_iter()
            .filter(|t| *t >= from && self.sweeps_of(*t) == 1)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sweep_each_tick_exactly_once() {
    let mut a = Handler::spawn(replica("replica-a", None)).await;
    let mut b = Handler::spawn(replica(
        "replica-b",
        Some((&a.registry_table, &a.health_table, &a.state_table)),
    ))
    .await;
    let target = HttpTarget::status(200);
    a.register_ok(&json!({"serviceName": "watched", "endpoint": target.url}))
        .await;
    // From this tick on, both replicas' sweeps read a registry that holds the service.
    let visible = Utc::now() + chrono::Duration::milliseconds(CACHE_TTL_MS);

    let covered = poll_until(Duration::from_secs(60), Duration::from_millis(200), || {
        let ledger = Ledger::read(&a, &b);
        async move { (ledger.covered_from(visible) >= COVERED_TICKS).then_some(()) }
    })
    .await;
    assert!(
        covered.is_some(),
        "not {COVERED_TICKS} ticks swept by one replica within 60 s:\n{}\n{}",
        a.logs(),
        b.logs()
    );
    // The lease row never shows up as a service.
    let v = a.discover_ok("").await;
    assert_eq!(v["count"], 1, "{v}");
    // Stopped, neither can sweep between reading the logs and counting the target's requests.
    a.kill();
    b.kill();

    let ledger = Ledger::read(&a, &b);
    let (swept_a, swept_b) = (Ledger::swept(&ledger.a), Ledger::swept(&ledger.b));
    let (skipped_a, skipped_b) = (
        Ledger::stood_aside(&ledger.a),
        Ledger::stood_aside(&ledger.b),
    );
    let both: Vec<_> = swept_a.intersection(&swept_b).collect();
    assert!(both.is_empty(), "ticks swept twice: {both:?}");
    let swept: BTreeSet<_> = swept_a.union(&swept_b).cloned().collect();
    assert!(swept.len() >= 3, "expected a sweep per second: {swept:?}");
    // No tick went unswept: every tick both replicas were scheduling was swept by one of them,
    // except those that fell while an earlier sweep was still running.
    let window = ledger.window();
    let unswept = ledger.unswept();
    assert!(
        unswept.is_empty(),
        "ticks nobody swept although no sweep was running: {unswept:?} (window {:?} to {:?})\nreplica a: {:?}\nreplica b: {:?}",
        window.first(),
        window.last(),
        ledger.a,
        ledger.b
    );
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
    // The target saw exactly the probes the two replicas' sweeps report, give or take the one
    // sweep (there is never more than one at a time) that was running when they were stopped.
    let hits = target.hits();
    let probed: u64 = ledger.all().filter_map(|e| e.probed).sum();
    assert!(
        hits == probed || hits == probed + 1,
        "{hits} requests for {probed} probes reported by {} sweeps",
        swept.len()
    );
    // One service: a sweep probes it at most once, and exactly once from the moment every
    // replica's registry read holds it (before, a sweep may not see it yet).
    for e in ledger.all() {
        if let Some(probes) = e.probed {
            let expected = if e.tick >= visible { 1..=1 } else { 0..=1 };
            assert!(
                expected.contains(&probes),
                "the sweep of {} probed {probes} (registered before {visible})",
                e.tick
            );
        }
    }

    let lease = a
        .tables()
        .row(&a.state_table, "~lease", "HealthMonitor")
        .await
        .expect("the lease row");
    let holder = lease["holder"].as_str().unwrap();
    assert!(holder == "replica-a" || holder == "replica-b", "{lease}");
}

/// The ledger's rules on made-up logs, so a reader can check what the test above accepts.
#[test]
fn the_ledger_accepts_only_gaps_a_running_sweep_explains() {
    let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
    let at = |s: i64, ms: i64| t(s) + chrono::Duration::milliseconds(ms);
    let swept = |s: i64, done_ms: i64| Handled {
        tick: t(s),
        probed: Some(1),
        logged_at: at(s, done_ms),
    };
    let aside = |s: i64| Handled {
        tick: t(s),
        probed: None,
        logged_at: at(s, 5),
    };
    // Tick 2 swept by nobody, with nothing running: flagged.
    let gap = Ledger {
        a: vec![swept(0, 20), aside(1), swept(3, 20)],
        b: vec![aside(0), swept(1, 20), aside(3)],
    };
    assert_eq!(gap.unswept(), vec![t(2)]);
    // Tick 2 fell while a's sweep of tick 1 ran for 1.5 s (b stood aside for it): by design.
    let long_sweep = Ledger {
        a: vec![swept(0, 20), swept(1, 1500), swept(3, 20)],
        b: vec![aside(0), aside(1), aside(2), aside(3)],
    };
    assert!(long_sweep.unswept().is_empty());
    assert_eq!(long_sweep.covered_from(t(0)), 3);
    // The window starts at the later replica's first tick and ends at the earlier last one.
    let partial = Ledger {
        a: vec![swept(0, 20), swept(1, 20), swept(2, 20), aside(3)],
        b: vec![aside(2), swept(3, 20), swept(4, 20)],
    };
    assert_eq!(partial.window(), vec![t(2), t(3)]);
}
