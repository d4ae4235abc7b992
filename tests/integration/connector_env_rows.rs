//! Self-registration, continued from `connector_env`: the rows for Azure's public host names
//! (registered at start-up only and never swept, so none of these names is ever resolved or
//! contacted, in the suite's namespace or out of it), and a storage fault at start-up.

use crate::harness::*;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The row shape for Azure's own host names. Registered at start-up only: this test never sweeps,
/// so none of these names is ever resolved or contacted.
#[tokio::test]
async fn rows_for_public_host_names() {
    let vars = [
        ("AZURE_STORAGETABLE_RESOURCEENDPOINT", "https://acct1.table.core.windows.net/"),
        ("AZURE_STORAGEBLOB_CONNECTIONSTRING", "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=S3cretBlobKey==;EndpointSuffix=core.windows.net"),
        ("AZURE_STORAGEQUEUE_CONN2_RESOURCEENDPOINT", "https://acct2.queue.core.windows.net/"),
        ("AZURE_SQL_SERVER", "sql1.database.windows.net"),
        ("AZURE_SQL_PORT", "1433"),
        ("AZURE_SQL_DATABASE", "orders"),
        ("AZURE_REDIS_HOST", "cache1.redis.cache.windows.net"),
        ("AZURE_REDIS_CONN2_CONNECTIONSTRING", "cache2.redis.cache.windows.net:6380,password=S3cretRedisKey,ssl=True,defaultDatabase=0"),
        ("AZURE_SERVICEBUS_FULLYQUALIFIEDNAMESPACE", "bus1.servicebus.windows.net"),
        ("AZURE_EVENTHUB_CONNECTIONSTRING", "Endpoint=sb://hub1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=S3cretHubKey="),
        ("AZURE_KEYVAULT_RESOURCEENDPOINT", "https://vault1.vault.azure.net/"),
        ("AZURE_COSMOS_RESOURCEENDPOINT", "https://cosmos1.documents.azure.com:443/"),
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", "Server=pg1.postgres.database.azure.com;Database=app;Port=5432;Ssl Mode=Require;User Id=app@pg1;"),
        ("AZURE_MYSQL_HOST", "my1.mysql.database.azure.com"),
        ("AZURE_MYSQL_NAME", "shop"),
    ];
    let mut cfg =
        HandlerConfig::new(Mode::CustomHandler).env("SERVICE_CONNECTOR_SELF_REGISTER", "true");
    for (k, v) in vars {
        cfg = cfg.env(k, v);
    }
    let h = Handler::spawn(cfg).await;
    let logs = h
        .wait_for_log(SELF_REGISTERED, Duration::from_secs(30))
        .await;
    assert!(
        logs.contains("found 12, registered 12, skipped 0, kept 0"),
        "{logs}"
    );
    let expected: Map<String, Value> = [
        expected_row(
            "storage-table",
            "acct1",
            "https://acct1.table.core.windows.net",
            "identity",
            "AZURE_STORAGETABLE_RESOURCEENDPOINT",
        ),
        expected_row(
            "storage-blob",
            "acct1",
            "https://acct1.blob.core.windows.net",
            "secret",
            "AZURE_STORAGEBLOB_CONNECTIONSTRING",
        ),
        expected_row(
            "storage-queue",
            "acct2",
            "https://acct2.queue.core.windows.net",
            "identity",
            "AZURE_STORAGEQUEUE_CONN2_RESOURCEENDPOINT",
        ),
        expected_row(
            "sql",
            "sql1.orders",
            "tcp://sql1.database.windows.net:1433",
            "identity",
            "AZURE_SQL_SERVER",
        ),
        expected_row(
            "redis",
            "cache1",
            "tcp://cache1.redis.cache.windows.net:6380",
            "identity",
            "AZURE_REDIS_HOST",
        ),
        expected_row(
            "redis",
            "cache2",
            "tcp://cache2.redis.cache.windows.net:6380",
            "secret",
            "AZURE_REDIS_CONN2_CONNECTIONSTRING",
        ),
        expected_row(
            "servicebus",
            "bus1",
            "tcp://bus1.servicebus.windows.net:5671",
            "identity",
            "AZURE_SERVICEBUS_FULLYQUALIFIEDNAMESPACE",
        ),
        expected_row(
            "eventhubs",
            "hub1",
            "tcp://hub1.servicebus.windows.net:5671",
            "secret",
            "AZURE_EVENTHUB_CONNECTIONSTRING",
        ),
        expected_row(
            "keyvault",
            "vault1",
            "https://vault1.vault.azure.net",
            "identity",
            "AZURE_KEYVAULT_RESOURCEENDPOINT",
        ),
        expected_row(
            "cosmos",
            "cosmos1",
            "https://cosmos1.documents.azure.com",
            "identity",
            "AZURE_COSMOS_RESOURCEENDPOINT",
        ),
        expected_row(
            "postgresql",
            "pg1.app",
            "tcp://pg1.postgres.database.azure.com:5432",
            "identity",
            "AZURE_POSTGRESQL_CONNECTIONSTRING",
        ),
        expected_row(
            "mysql",
            "my1.shop",
            "tcp://my1.mysql.database.azure.com:3306",
            "identity",
            "AZURE_MYSQL_HOST",
        ),
    ]
    .into_iter()
    .collect();
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(Value::Object(rows_by_key(&rows)), Value::Object(expected));
    let everything = format!("{rows:?}");
    assert_no_secret(
        &everything,
        &["S3cretBlobKey", "S3cretRedisKey", "S3cretHubKey"],
        "a table row",
    );
    assert_no_secret(
        &h.logs(),
        &["S3cretBlobKey", "S3cretRedisKey", "S3cretHubKey"],
        "the handler's log",
    );
    // Nothing was probed: the health table holds no service's row.
    assert!(h.tables().rows(&h.health_table).await.is_empty());
}

/// Storage down at start-up: the run is logged as stopped and the handler keeps serving; once
/// storage is back, the next sweep registers the target and probes it in the same sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_fault_is_logged_and_the_next_sweep_registers() {
    let az = Azurite::private();
    let redis = TcpTarget::start();
    let cfg = HandlerConfig::with_storage(Mode::CustomHandler, &az.connection_string())
        .env("SERVICE_CONNECTOR_SELF_REGISTER", "true")
        .env("STORAGE_TIMEOUT_MS", "1000")
        .env("AZURE_REDIS_HOST", "127.0.0.1")
        .env("AZURE_REDIS_PORT", &redis.port.to_string());
    az.stop();
    let mut h = Handler::spawn(cfg).await;
    h.wait_for_log("stopped by a storage fault", Duration::from_secs(30))
        .await;
    let logs = h
        .wait_for_log(SELF_REGISTERED, Duration::from_secs(30))
        .await;
    assert!(logs.contains("found 1, registered 0"), "{logs}");
    assert!(
        h.try_exit_status().is_none(),
        "a storage fault must not stop the handler"
    );

    az.restart();
    let report = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let res = h.sweep().await;
            (res.status == 200)
                .then(|| sweep_report(&logs_of(&res.json())))
                .flatten()
        },
    )
    .await
    .unwrap_or_else(|| panic!("no sweep succeeded after storage returned:\n{}", h.logs()));
    assert_eq!((report.probed, report.healthy), (1, 1));
    let rows = az.tables().rows(&h.registry_table).await;
    let expected: Map<String, Value> = [expected_row(
        "redis",
        "127.0.0.1",
        &format!("tcp://127.0.0.1:{}", redis.port),
        "identity",
        "AZURE_REDIS_HOST",
    )]
    .into_iter()
    .collect();
    assert_eq!(Value::Object(rows_by_key(&rows)), Value::Object(expected));
    let probed = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { (redis.accepted.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    assert!(probed.is_some(), "the listener saw no probe");
}
