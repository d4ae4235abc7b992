//! Service Connector self-registration: a handler started with
//! `SERVICE_CONNECTOR_SELF_REGISTER=true` and this app's Service Connector variables in every
//! documented form registers each connected service, as the shared convention shapes its row, and
//! the sweep probes them. The targets are local listeners on 127.0.0.1 and ::1 that count
//! accepts. `connector_env_rows` has the rows for public host names and a storage fault.

use crate::harness::*;
use serde_json::{json, Map, Value};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A listener on [::1] that counts accepts (the harness's `TcpTarget` is IPv4).
struct V6Target {
    port: u16,
    accepted: Arc<AtomicU64>,
}

impl V6Target {
    fn start() -> V6Target {
        let listener = TcpListener::bind("[::1]:0").expect("bind [::1]");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        V6Target { port, accepted }
    }
}

#[tokio::test]
async fn every_form_is_registered_probed_and_kept_idempotent() {
    let t = |_: &str| TcpTarget::start();
    let (sql1, sql2, sql3) = (t("sql"), t("sql"), t("sql"));
    let redis4 = t("redis");
    let (sb, eh) = (t("sb"), t("eh"));
    let (pg1, pg2, pg3) = (t("pg"), t("pg"), t("pg"));
    let (my1, my2, my3) = (t("my"), t("my"), t("my"));
    let (kv, cosmos, table, blob, manual) =
        (t("kv"), t("cosmos"), t("table"), t("blob"), t("manual"));
    let (redis6, pg6, queue6) = (V6Target::start(), V6Target::start(), V6Target::start());

    let secrets = [
        "S3cretSqlAdo",
        "S3cretSqlJdbc",
        "S3cretSqlVar",
        "S3cretRedisNet",
        "S3cretRedisUrl",
        "S3cretSbKey",
        "S3cretPgKw",
        "S3cretPgAdo",
        "S3cretPgJdbc",
        "S3cretMyGo",
        "S3cretMyJdbc",
        "S3cretCosmosKey",
        "S3cretTableKey",
        "S3cretQueueSas",
        "S3cretMalformed1",
        "S3cretMalformed2",
    ];
    let vars: Vec<(String, String)> = vec![
        ("AZURE_SQL_CONNECTIONSTRING", format!("Server=tcp:127.0.0.1,{};Database=orders;User ID=app;Password=S3cretSqlAdo!", sql1.port)),
        ("AZURE_SQL_CONN2_CONNECTIONSTRING", format!("jdbc:sqlserver://127.0.0.1:{};databaseName=reports;user=app;password=S3cretSqlJdbc!;", sql2.port)),
        ("AZURE_SQL_CONN3_SERVER", "127.0.0.1".into()),
        ("AZURE_SQL_CONN3_PORT", sql3.port.to_string()),
        ("AZURE_SQL_CONN3_DATABASE", "billing".into()),
        ("AZURE_SQL_CONN3_PASSWORD", "S3cretSqlVar!".into()),
        ("AZURE_REDIS_CONNECTIONSTRING", format!("127.0.0.1:{},password=S3cretRedisNet!,ssl=True,defaultDatabase=0", redis4.port)),
        ("AZURE_REDIS_CONN2_CONNECTIONSTRING", format!("rediss://:S3cretRedisUrl@[::1]:{}/0", redis6.port)),
        ("AZURE_SERVICEBUS_CONNECTIONSTRING", format!("Endpoint=sb://127.0.0.1:{}/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=S3cretSbKey=", sb.port)),
        ("AZURE_EVENTHUB_FULLYQUALIFIEDNAMESPACE", format!("127.0.0.1:{}", eh.port)),
        ("AZURE_POSTGRESQL_CONNECTIONSTRING", format!("host=127.0.0.1 port={} dbname=app1 sslmode=require user=app password=S3cretPgKw!", pg1.port)),
        ("AZURE_POSTGRESQL_CONN2_CONNECTIONSTRING", format!("Server=127.0.0.1;Database=app2;Port={};Ssl Mode=Require;User Id=app;Password=S3cretPgAdo!;", pg2.port)),
        ("AZURE_POSTGRESQL_CONN3_CONNECTIONSTRING", format!("jdbc:postgresql://127.0.0.1:{}/app3?sslmode=require&user=app&password=S3cretPgJdbc", pg3.port)),
        ("AZURE_POSTGRESQL_CONN4_HOST", "::1".into()),
        ("AZURE_POSTGRESQL_CONN4_PORT", pg6.port.to_string()),
        ("AZURE_POSTGRESQL_CONN4_DATABASE", "app4".into()),
        ("AZURE_MYSQL_CONNECTIONSTRING", format!("app:S3cretMyGo!@tcp(127.0.0.1:{})/shop1?tls=true", my1.port)),
        ("AZURE_MYSQL_CONN2_CONNECTIONSTRING", format!("jdbc:mysql://127.0.0.1:{}/shop2?sslmode=required&user=app&password=S3cretMyJdbc", my2.port)),
        ("AZURE_MYSQL_CONN3_HOST", "127.0.0.1".into()),
        ("AZURE_MYSQL_CONN3_PORT", my3.port.to_string()),
        ("AZURE_MYSQL_CONN3_DBNAME", "shop3".into()),
        ("AZURE_KEYVAULT_RESOURCEENDPOINT", format!("https://127.0.0.1:{}/", kv.port)),
        ("AZURE_COSMOS_CONNECTIONSTRING", format!("AccountEndpoint=https://127.0.0.1:{}/;AccountKey=S3cretCosmosKey==;", cosmos.port)),
        ("AZURE_STORAGETABLE_CONNECTIONSTRING", format!("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=S3cretTableKey==;TableEndpoint=http://127.0.0.1:{}/devstoreaccount1;", table.port)),
        ("AZURE_STORAGEBLOB_RESOURCEENDPOINT", format!("http://127.0.0.1:{}/blobacct", blob.port)),
        ("AZURE_STORAGEQUEUE_CONNECTIONSTRING", format!("QueueEndpoint=http://[::1]:{}/queueacct;SharedAccessSignature=sv=2022-11-02&sig=S3cretQueueSas", queue6.port)),
        // Malformed: each is skipped with its variable named, its value never.
        ("AZURE_MYSQL_CONN9_CONNECTIONSTRING", "app:S3cretMalformed1@tcp(127.0.0.1:99999)/x".into()),
        ("AZURE_REDIS_BAD_CONNECTIONSTRING", "password=S3cretMalformed2,ssl=True".into()),
        ("AZURE_SQL_BROKEN_SERVER", "127.0.0.1".into()),
        ("AZURE_SQL_BROKEN_PORT", "fourteen".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let mut cfg =
        HandlerConfig::new(Mode::CustomHandler).env("SERVICE_CONNECTOR_SELF_REGISTER", "true");
    for (k, v) in &vars {
        cfg = cfg.env(k, v);
    }
    // A person registered the Key Vault's key by hand before the handler started: it stays theirs.
    let tables = Azurite::shared().tables();
    tables.create_table(&cfg.registry_table).await;
    let manual_row = json!({
        "PartitionKey": "keyvault", "RowKey": "127.0.0.1", "serviceName": "127.0.0.1",
        "serviceType": "keyvault", "endpoint": format!("tcp://127.0.0.1:{}", manual.port),
        "healthEndpoint": format!("tcp://127.0.0.1:{}", manual.port), "version": "2.0.0", "tags": "[]",
        "metadata": json!({"owner": "platform-team"}).to_string(),
        "registeredAt": "2026-01-01T00:00:00.000Z", "lastHeartbeat": "2026-01-01T00:00:00.000Z",
    });
    tables.upsert(&cfg.registry_table, &manual_row).await;

    let h = Handler::spawn(cfg).await;
    let logs = h
        .wait_for_log(SELF_REGISTERED, Duration::from_secs(30))
        .await;
    assert!(
        logs.contains("found 19, registered 18, skipped 3, kept 1"),
        "{logs}"
    );
    for variable in [
        "AZURE_MYSQL_CONN9_CONNECTIONSTRING",
        "AZURE_REDIS_BAD_CONNECTIONSTRING",
        "AZURE_SQL_BROKEN_PORT",
    ] {
        assert!(
            logs.lines()
                .any(|l| l.contains("Service Connector variable skipped") && l.contains(variable)),
            "no skip line naming {variable}:\n{logs}"
        );
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("keyvault:127.0.0.1") && l.contains("someone else")),
        "the kept manual key is not named:\n{logs}"
    );

    let p = |target: &TcpTarget| target.port;
    let mut expected: Map<String, Value> = [
        expected_row(
            "sql",
            "127.0.0.1.orders",
            &format!("tcp://127.0.0.1:{}", p(&sql1)),
            "secret",
            "AZURE_SQL_CONNECTIONSTRING",
        ),
        expected_row(
            "sql",
            "127.0.0.1.reports",
            &format!("tcp://127.0.0.1:{}", p(&sql2)),
            "secret",
            "AZURE_SQL_CONN2_CONNECTIONSTRING",
        ),
        expected_row(
            "sql",
            "127.0.0.1.billing",
            &format!("tcp://127.0.0.1:{}", p(&sql3)),
            "secret",
            "AZURE_SQL_CONN3_SERVER",
        ),
        expected_row(
            "redis",
            "127.0.0.1",
            &format!("tcp://127.0.0.1:{}", p(&redis4)),
            "secret",
            "AZURE_REDIS_CONNECTIONSTRING",
        ),
        expected_row(
            "redis",
            "0-0-0-0-0-0-0-1",
            &format!("tcp://[::1]:{}", redis6.port),
            "secret",
            "AZURE_REDIS_CONN2_CONNECTIONSTRING",
        ),
        expected_row(
            "servicebus",
            "127.0.0.1",
            &format!("tcp://127.0.0.1:{}", p(&sb)),
            "secret",
            "AZURE_SERVICEBUS_CONNECTIONSTRING",
        ),
        expected_row(
            "eventhubs",
            "127.0.0.1",
            &format!("tcp://127.0.0.1:{}", p(&eh)),
            "identity",
            "AZURE_EVENTHUB_FULLYQUALIFIEDNAMESPACE",
        ),
        expected_row(
            "postgresql",
            "127.0.0.1.app1",
            &format!("tcp://127.0.0.1:{}", p(&pg1)),
            "secret",
            "AZURE_POSTGRESQL_CONNECTIONSTRING",
        ),
        expected_row(
            "postgresql",
            "127.0.0.1.app2",
            &format!("tcp://127.0.0.1:{}", p(&pg2)),
            "secret",
            "AZURE_POSTGRESQL_CONN2_CONNECTIONSTRING",
        ),
        expected_row(
            "postgresql",
            "127.0.0.1.app3",
            &format!("tcp://127.0.0.1:{}", p(&pg3)),
            "secret",
            "AZURE_POSTGRESQL_CONN3_CONNECTIONSTRING",
        ),
        expected_row(
            "postgresql",
            "0-0-0-0-0-0-0-1.app4",
            &format!("tcp://[::1]:{}", pg6.port),
            "identity",
            "AZURE_POSTGRESQL_CONN4_HOST",
        ),
        expected_row(
            "mysql",
            "127.0.0.1.shop1",
            &format!("tcp://127.0.0.1:{}", p(&my1)),
            "secret",
            "AZURE_MYSQL_CONNECTIONSTRING",
        ),
        expected_row(
            "mysql",
            "127.0.0.1.shop2",
            &format!("tcp://127.0.0.1:{}", p(&my2)),
            "secret",
            "AZURE_MYSQL_CONN2_CONNECTIONSTRING",
        ),
        expected_row(
            "mysql",
            "127.0.0.1.shop3",
            &format!("tcp://127.0.0.1:{}", p(&my3)),
            "identity",
            "AZURE_MYSQL_CONN3_HOST",
        ),
        expected_row(
            "cosmos",
            "127.0.0.1",
            &format!("https://127.0.0.1:{}", p(&cosmos)),
            "secret",
            "AZURE_COSMOS_CONNECTIONSTRING",
        ),
        expected_row(
            "storage-table",
            "devstoreaccount1",
            &format!("http://127.0.0.1:{}", p(&table)),
            "secret",
            "AZURE_STORAGETABLE_CONNECTIONSTRING",
        ),
        expected_row(
            "storage-blob",
            "blobacct",
            &format!("http://127.0.0.1:{}", p(&blob)),
            "identity",
            "AZURE_STORAGEBLOB_RESOURCEENDPOINT",
        ),
        expected_row(
            "storage-queue",
            "queueacct",
            &format!("http://[::1]:{}", queue6.port),
            "secret",
            "AZURE_STORAGEQUEUE_CONNECTIONSTRING",
        ),
    ]
    .into_iter()
    .collect();
    let mut manual_props = user_properties(&manual_row);
    manual_props.remove("registeredAt");
    manual_props.remove("lastHeartbeat");
    expected.insert("keyvault/127.0.0.1".into(), Value::Object(manual_props));

    let first = tables.rows(&h.registry_table).await;
    assert_eq!(
        Value::Object(rows_by_key(&first)),
        Value::Object(expected.clone())
    );
    let registered_at = |rows: &[Value]| -> Vec<(String, String)> {
        let mut times: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["RowKey"].as_str().unwrap().to_owned()
                        + "@"
                        + r["PartitionKey"].as_str().unwrap(),
                    r["registeredAt"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        times.sort();
        times
    };
    let manual_stored = tables
        .row(&h.registry_table, "keyvault", "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(manual_stored["lastHeartbeat"], "2026-01-01T00:00:00.000Z");

    // Two sweeps: each re-registers first (same rows, same registeredAt), then probes every row.
    for round in 0..2 {
        let res = h.sweep().await;
        assert_eq!(res.status, 200, "{}", res.text);
        let report = sweep_report(&logs_of(&res.json())).expect("a sweep summary");
        assert_eq!(
            (report.probed, report.healthy),
            (19, 19),
            "round {round}: {}",
            res.text
        );
        let rows = tables.rows(&h.registry_table).await;
        assert_eq!(
            Value::Object(rows_by_key(&rows)),
            Value::Object(expected.clone()),
            "round {round}"
        );
        assert_eq!(registered_at(&rows), registered_at(&first), "round {round}");
    }
    let counters: Vec<(&str, &Arc<AtomicU64>)> = vec![
        ("sql1", &sql1.accepted),
        ("sql2", &sql2.accepted),
        ("sql3", &sql3.accepted),
        ("redis4", &redis4.accepted),
        ("redis6", &redis6.accepted),
        ("sb", &sb.accepted),
        ("eh", &eh.accepted),
        ("pg1", &pg1.accepted),
        ("pg2", &pg2.accepted),
        ("pg3", &pg3.accepted),
        ("pg6", &pg6.accepted),
        ("my1", &my1.accepted),
        ("my2", &my2.accepted),
        ("my3", &my3.accepted),
        ("cosmos", &cosmos.accepted),
        ("table", &table.accepted),
        ("blob", &blob.accepted),
        ("queue6", &queue6.accepted),
        ("manual", &manual.accepted),
    ];
    for (name, counter) in counters {
        let seen = poll_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async { (counter.load(Ordering::SeqCst) >= 2).then_some(()) },
        )
        .await;
        assert!(
            seen.is_some(),
            "{name} was not probed by both sweeps: {}",
            counter.load(Ordering::SeqCst)
        );
    }
    // The key someone else holds is probed at their endpoint, never at the variable's.
    assert_eq!(kv.accepted.load(Ordering::SeqCst), 0);

    let health = tables.rows(&h.health_table).await;
    assert_eq!(health.len(), 19);
    assert!(
        health.iter().all(|r| r["status"] == "healthy"),
        "{health:?}"
    );
    let everything = format!(
        "{:?}{:?}",
        tables.all_rows(&h.registry_table).await,
        tables.all_rows(&h.health_table).await
    );
    assert_no_secret(&everything, &secrets, "a table row");
    assert_no_secret(&h.logs(), &secrets, "the handler's log");
}
