//! Checks of the harness itself (Azurite, direct table access, probe targets), independent
//! of the handler, so a broken harness is told apart from a broken handler.

use crate::harness::*;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_and_direct_table_access_work() {
    let t = Azurite::shared().tables();
    let table = unique_table("self");
    assert!(!t.table_exists(&table).await);
    t.create_table(&table).await;
    t.create_table(&table).await; // 409 tolerated
    assert!(t.table_exists(&table).await);
    t.upsert(
        &table,
        &json!({"PartitionKey": "p", "RowKey": "r", "s": "x", "n": 42,
                "big": "9007199254740993", "big@odata.type": "Edm.Int64"}),
    )
    .await;
    let row = t.row(&table, "p", "r").await.expect("row");
    assert_eq!(row["s"], "x");
    assert_eq!(row["n"], 42);
    assert!(
        row.get("n@odata.type").is_none() || row["n@odata.type"] == "Edm.Int32",
        "{row}"
    );
    assert_eq!(row["big@odata.type"], "Edm.Int64");
    assert!(t.row(&table, "p", "missing").await.is_none());

    let rows: Vec<_> = (0..250)
        .map(|i| json!({"PartitionKey": format!("p{}", i % 3), "RowKey": format!("r{i:03}"), "v": "y"}))
        .collect();
    t.upsert_batch(&table, &rows).await;
    assert_eq!(t.rows(&table).await.len(), 251);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_targets_behave() {
    let client = http_client();
    let ok = HttpTarget::status(200);
    let r = client.get(&ok.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bad = HttpTarget::status(503);
    let r = client.get(&bad.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let redirect = HttpTarget::redirect(&bad.url);
    let r = client.get(&redirect.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let silent = SilentTarget::start();
    let r = client
        .get(&silent.url)
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(r.is_err());
    let tcp = TcpTarget::start();
    assert!(std::net::TcpStream::connect(("127.0.0.1", tcp.port)).is_ok());
    let closed = closed_port();
    for _ in 0..3 {
        let refused = std::net::TcpStream::connect(("127.0.0.1", closed.port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    // Nobody else can take it while the guard lives.
    assert!(std::net::TcpListener::bind(("127.0.0.1", closed.port)).is_err());
}

#[test]
fn sweep_summary_parser() {
    let report = service_registry::health::SweepReport {
        probed: 3,
        healthy: 1,
        unhealthy: 2,
        duration_ms: 2051,
        ..Default::default()
    };
    let logs = vec!["something".to_string(), report.summary()];
    assert_eq!(
        sweep_report(&logs).map(|r| (r.probed, r.healthy, r.unhealthy, r.duration_ms)),
        Some((3, 1, 2, 2051))
    );
    assert_eq!(sweep_report(&logs), Some(report));
    assert_eq!(
        sweep_report(&["HealthMonitor sweep: probed 3".to_string()]),
        None
    );
}

/// Whatever the shell running the suite exports (`HEALTH_ALLOW_CIDRS`, `RUST_LOG`, `HTTP_PROXY`,
/// `HOSTNAME`...), a child sees only the basics it needs to start and what its test sets.
#[test]
fn children_start_from_an_empty_environment() {
    let out = clean_command("env")
        .env("SET_BY_THE_TEST", "yes")
        .output()
        .expect("run env");
    assert!(out.status.success(), "{out:?}");
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    let allowed: BTreeSet<String> = ["PATH", "HOME", "TMPDIR", "SET_BY_THE_TEST"]
        .map(String::from)
        .into();
    assert!(
        names.is_subset(&allowed),
        "a child inherited {:?}",
        names.difference(&allowed).collect::<Vec<_>>()
    );
    assert!(names.contains("SET_BY_THE_TEST"), "{names:?}");
}
