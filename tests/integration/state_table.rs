//! The handler's own rows (the sweep lease, the last sweep's summary) live in the state table
//! (`STATE_TABLE`), so HealthStatus holds service health rows only; and the copies of those rows an
//! older version left in HealthStatus change nothing: the sweep, its orphan deletion and discovery
//! ignore them, and the lease they hold binds no one.

use crate::harness::*;
use serde_json::{json, Value};
use service_registry::health::SweepReport;
use std::time::Duration;

fn keys(rows: &[Value]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["PartitionKey"].as_str().unwrap().to_owned(),
                r["RowKey"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    keys
}

fn pair(pk: &str, rk: &str) -> (String, String) {
    (pk.to_owned(), rk.to_owned())
}

/// Polls `GET /api/Sweep` until a scheduled sweep by `holder` probed exactly `probed` services.
async fn scheduled_sweep_that_probed(h: &Handler, holder: &str, probed: u64) -> Value {
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let shown = h.last_sweep().await;
            (shown["checkedBy"] == holder
                && shown["trigger"] == "schedule"
                && shown["counters"]["probed"] == probed)
                .then_some(shown)
        },
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "no scheduled sweep by {holder} probed {probed}:\n{}",
            h.logs()
        )
    })
}

fn standalone(holder: &str) -> HandlerConfig {
    HandlerConfig::new(Mode::Standalone)
        .env("HEALTH_MONITOR_SCHEDULE", "* * * * * *")
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .env("HEALTH_PROBE_TIMEOUT_MS", "1000")
        .env("HOSTNAME", holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sweep_health_holds_services_only_and_the_state_table_the_rest() {
    let h = Handler::spawn(standalone("replica-s")).await;
    let up = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "up", "serviceType": "api", "endpoint": up.url}))
        .await;
    let shown = scheduled_sweep_that_probed(&h, "replica-s", 1).await;
    assert!(up.hits() >= 1);

    let tables = h.tables();
    assert_eq!(
        keys(&tables.all_rows(&h.health_table).await),
        vec![pair("api", "up")],
        "HealthStatus holds the service's health row and nothing else"
    );
    assert_eq!(
        keys(&tables.all_rows(&h.state_table).await),
        vec![
            pair("~events", "recent"),
            pair("~lease", "HealthMonitor"),
            pair("~sweep", "last")
        ]
    );
    let lease = tables
        .row(&h.state_table, "~lease", "HealthMonitor")
        .await
        .unwrap();
    assert_eq!(lease["holder"], "replica-s", "{lease}");
    assert_iso_utc(lease["tick"].as_str().unwrap());
    assert_iso_utc(lease["expiresAt"].as_str().unwrap());

    // `GET /api/Sweep` answers as it always did, from the row in the state table.
    assert_eq!(shown["outcome"], "succeeded", "{shown}");
    let counters: Vec<&String> = shown["counters"].as_object().unwrap().keys().collect();
    let mut expected: Vec<&str> = SweepReport::COUNTERS.to_vec();
    expected.sort_unstable();
    let mut counters: Vec<&str> = counters.iter().map(|s| s.as_str()).collect();
    counters.sort_unstable();
    assert_eq!(counters, expected, "{shown}");
    for time in ["startedAt", "finishedAt", "tick"] {
        assert_iso_utc(
            shown[time]
                .as_str()
                .unwrap_or_else(|| panic!("{time}: {shown}")),
        );
    }
    let row = tables.row(&h.state_table, "~sweep", "last").await.unwrap();
    assert_eq!(
        (&row["checkedBy"], &row["trigger"], &row["outcome"]),
        (&json!("replica-s"), &json!("schedule"), &json!("succeeded")),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_an_older_version_left_in_health_status_change_nothing() {
    let cfg = standalone("replica-new");
    let tables = Azurite::shared().tables();
    tables.create_table(&cfg.health_table).await;
    // What an older version left: its lease, held by a replica that is gone and unexpired for an
    // hour (read by this version, it would make every replica stand aside), and its summary.
    let far = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let old_lease = json!({"PartitionKey": "~lease", "RowKey": "HealthMonitor",
        "holder": "replica-old", "tick": far, "expiresAt": far});
    let old_sweep = json!({"PartitionKey": "~sweep", "RowKey": "last", "outcome": "succeeded",
        "startedAt": "2026-01-01T00:00:00.000Z", "finishedAt": "2026-01-01T00:00:01.000Z",
        "checkedBy": "replica-old", "trigger": "schedule", "tick": "2026-01-01T00:00:00.000Z",
        "probed": "99", "probed@odata.type": "Edm.Int64"});
    // And a health row whose registration is gone: the sweep's orphan deletion must still run.
    let ghost = json!({"PartitionKey": "api", "RowKey": "ghost", "serviceName": "ghost",
        "status": "healthy", "lastChecked": "2026-01-01T00:00:00.000Z", "responseTime": 3,
        "errorMessage": ""});
    for row in [&old_lease, &old_sweep, &ghost] {
        tables.upsert(&cfg.health_table, row).await;
    }
    let leftovers = |rows: &[Value]| -> Vec<Value> {
        let mut kept: Vec<&Value> = rows
            .iter()
            .filter(|r| r["PartitionKey"].as_str().unwrap().starts_with('~'))
            .collect();
        kept.sort_by_key(|r| r["PartitionKey"].as_str().unwrap().to_owned());
        kept.into_iter()
            .map(|r| Value::Object(user_properties(r)))
            .collect()
    };
    let before = leftovers(&tables.all_rows(&cfg.health_table).await);
    assert_eq!(before.len(), 2);

    let h = Handler::spawn(cfg).await;
    let up = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": "up", "serviceType": "api", "endpoint": up.url}))
        .await;
    // The old lease binds no one: this replica sweeps its ticks, and records them where it reads.
    let shown = scheduled_sweep_that_probed(&h, "replica-new", 1).await;
    assert_eq!(shown["counters"]["invalid_rows"], 0, "{shown}");
    assert_eq!(
        tables
            .row(&h.state_table, "~lease", "HealthMonitor")
            .await
            .unwrap()["holder"],
        "replica-new"
    );
    // The orphan went (in this sweep or an earlier one); the leftovers stayed, untouched.
    let health = tables.all_rows(&h.health_table).await;
    assert_eq!(
        keys(&health),
        vec![
            pair("api", "up"),
            pair("~lease", "HealthMonitor"),
            pair("~sweep", "last")
        ],
        "{health:?}"
    );
    assert_eq!(leftovers(&health), before);

    // Discovery joins the service's health row and never shows the leftovers.
    for query in ["", "healthyOnly=true"] {
        let v = h.discover_ok(query).await;
        assert_eq!(v["count"], 1, "{query}: {v}");
        assert_eq!(v["services"][0]["serviceName"], "up", "{query}: {v}");
        assert_eq!(
            v["services"][0]["healthStatus"]["status"], "healthy",
            "{query}: {v}"
        );
    }
}
