//! The Service Connector sync against the ARM imitation (`harness::arm`) and the managed-identity
//! imitation, with the real handler and Azurite: what each sweep adds, keeps, skips and removes,
//! across paging, throttling and failures (docs/arm-sync.md).
//!
//! The rows name public Azure hosts (`c1.redis.cache.windows.net`); the sweep after each sync tries
//! to probe them, which fails at once in the loopback-only namespace `make test` runs the suite
//! in. Nothing here depends on those probes' results, and these tests must never run outside it.

use crate::harness::arm::{linker, Fault};
use crate::harness::arm_setup::{metadata, start};
use crate::harness::*;
use serde_json::json;
use std::time::Duration;

const SUB: &str = "00000000-0000-0000-0000-0000000000aa";

fn group() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-recipe")
}

fn site(name: &str) -> String {
    format!("{}/providers/Microsoft.Web/sites/{name}", group())
}

fn target(path: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-data/providers/{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkers_are_added_kept_and_removed_and_other_rows_are_never_touched() {
    let web = site("web");
    let s = start(&[&web], &[]).await;
    let redis = target("Microsoft.Cache/redis/C1/databases/0");
    let sql = target("Microsoft.Sql/servers/srv/databases/orders");
    let table = target("Microsoft.Storage/storageAccounts/acct1/tableServices/default");
    let vault = target("Microsoft.KeyVault/vaults/kv1");
    let mut confluent = linker(&web, "kafka", "", "secret");
    confluent["properties"]["targetService"] =
        json!({"type": "ConfluentBootstrapServer", "endpoint": "x:9092"});
    s.arm.set_linkers(
        &web,
        vec![
            linker(&web, "cache", &redis, "systemAssignedIdentity"),
            linker(&web, "database", &sql, "systemAssignedIdentity"),
            linker(&web, "tables", &table, "userAssignedIdentity"),
            linker(&web, "vault", &vault, "systemAssignedIdentity"),
            linker(
                &web,
                "config",
                &target("Microsoft.AppConfiguration/configurationStores/cfg"),
                "secret",
            ),
            confluent,
        ],
    );
    // Registered by people: one of the same type as a synced row, one with a synced row's key.
    s.h.register_ok(&json!({"serviceName": "manual-cache", "serviceType": "redis", "endpoint": "tcp://manual-cache.invalid:6380"})).await;
    s.h.register_ok(&json!({"serviceName": "kv1", "serviceType": "keyvault", "endpoint": "https://kv1.invalid", "metadata": {"owner": "ops"}})).await;

    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 3, updated 0, unchanged 0, removed 0, skipped 3"
    );
    assert_eq!(
        s.keys().await,
        [
            "keyvault/kv1",
            "redis/c1",
            "redis/manual-cache",
            "sql/srv.orders",
            "storage-table/acct1"
        ]
    );
    let row = s.row("redis", "c1").await.unwrap();
    assert_eq!(row["serviceName"], "c1");
    assert_eq!(row["endpoint"], "tcp://c1.redis.cache.windows.net:6380");
    assert_eq!(
        row["healthEndpoint"],
        "tcp://c1.redis.cache.windows.net:6380"
    );
    assert_eq!(
        metadata(&row),
        json!({"source": "service-connector", "authType": "systemAssignedIdentity",
               "linkerId": format!("{web}/providers/Microsoft.ServiceLinker/linkers/cache"),
               "sourceResourceId": web, "syncedBy": "arm"})
    );
    let row = s.row("storage-table", "acct1").await.unwrap();
    assert_eq!(row["endpoint"], "https://acct1.table.core.windows.net");
    assert_eq!(row["healthCheck"], r#"{"kind":"tcp"}"#);
    assert_eq!(metadata(&row)["authType"], "userAssignedIdentity");
    assert_eq!(
        s.row("sql", "srv.orders").await.unwrap()["endpoint"],
        "tcp://srv.database.windows.net:1433"
    );
    // The person's row with a linked key is left exactly as registered.
    let manual = s.row("keyvault", "kv1").await.unwrap();
    assert_eq!(
        (manual["endpoint"].as_str(), metadata(&manual)),
        (Some("https://kv1.invalid"), json!({"owner": "ops"}))
    );
    // One counted line for the source's skipped linkers; each is a debug line of its own.
    assert_eq!(
        s.lines_after("Service Connector sync: skipped "),
        [format!("Service Connector sync: skipped 3 linkers of {web} (1 target not an Azure resource, 1 target type not mapped, 1 key registered by a person or client)")]
    );
    let logs = s.h.logs();
    for skipped in ["linkers/config", "linkers/kafka", "keyvault/kv1"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("DEBUG") && l.contains("skipped") && l.contains(skipped)),
            "{skipped}:\n{logs}"
        );
    }

    // Unchanged: nothing rewritten, no duplicate, registeredAt and lastHeartbeat as they were.
    let before = s.row("redis", "c1").await.unwrap();
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 0, updated 0, unchanged 3, removed 0, skipped 3"
    );
    let after = s.row("redis", "c1").await.unwrap();
    assert_eq!(s.rows().await.len(), 5);
    for property in ["registeredAt", "lastHeartbeat", "Timestamp"] {
        assert_eq!(after[property], before[property], "{property}");
    }

    // A changed linker (new auth type) is rewritten and keeps registeredAt; a gone one is removed,
    // with its health row; the people's rows stay.
    s.arm.set_linkers(
        &web,
        vec![
            linker(&web, "database", &sql, "secret"),
            linker(&web, "tables", &table, "userAssignedIdentity"),
        ],
    );
    let sql_before = s.row("sql", "srv.orders").await.unwrap();
    assert!(
        s.h.tables()
            .row(&s.h.health_table, "redis", "c1")
            .await
            .is_some(),
        "probed by the first sweep"
    );
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 0, updated 1, unchanged 1, removed 1, skipped 0"
    );
    assert_eq!(
        s.keys().await,
        [
            "keyvault/kv1",
            "redis/manual-cache",
            "sql/srv.orders",
            "storage-table/acct1"
        ]
    );
    let sql_after = s.row("sql", "srv.orders").await.unwrap();
    assert_eq!(sql_after["registeredAt"], sql_before["registeredAt"]);
    assert_eq!(metadata(&sql_after)["authType"], "secret");
    assert!(s
        .h
        .tables()
        .row(&s.h.health_table, "redis", "c1")
        .await
        .is_none());
    s.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_followed() {
    let web = site("paged");
    let s = start(&[&web], &[]).await;
    s.arm.set_page_size(2);
    s.arm.set_linkers(
        &web,
        vec![
            linker(&web, "a", &target("Microsoft.Cache/redis/p1"), "secret"),
            linker(&web, "b", &target("Microsoft.Cache/redis/p2"), "secret"),
            linker(&web, "c", &target("Microsoft.Cache/redis/p3"), "secret"),
        ],
    );
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 3, updated 0, unchanged 0, removed 0, skipped 0"
    );
    assert_eq!(s.keys().await, ["redis/p1", "redis/p2", "redis/p3"]);
    let requests = s.arm.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[1].ends_with("&$skiptoken=2"), "{requests:?}");
    s.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_within_the_budget_and_otherwise_gives_up_the_round() {
    let web = site("throttled");
    let s = start(&[&web], &[]).await;
    s.arm.set_linkers(
        &web,
        vec![linker(
            &web,
            "a",
            &target("Microsoft.Cache/redis/t1"),
            "secret",
        )],
    );
    s.arm.fault(&web, Fault::Throttle(1), 1);
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 1, updated 0, unchanged 0, removed 0, skipped 0"
    );
    assert_eq!(s.arm.requests().len(), 2, "the 429, then the retry");
    assert!(s.h.logs().contains("waiting as Retry-After asks"));

    // Asked to wait longer than the sync allows: the round gives up and deletes nothing.
    s.arm.set_linkers(&web, vec![]);
    s.arm.fault(&web, Fault::Throttle(3600), 1);
    assert_eq!(s.sync().await, "Service Connector sync: added 0, updated 0, unchanged 0, removed 0, skipped 0; a source failed to list, so nothing was removed");
    assert_eq!(s.keys().await, ["redis/t1"]);
    assert!(
        s.h.logs()
            .contains("asked to wait 3600000 ms (Retry-After), beyond this round's budget"),
        "{}",
        s.h.logs()
    );
    s.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_malformed_listing_deletes_nothing() {
    let (a, b) = (site("app-a"), site("app-b"));
    let s = start(&[&a, &b], &[]).await;
    s.arm.set_linkers(
        &a,
        vec![linker(
            &a,
            "x",
            &target("Microsoft.Cache/redis/from-a"),
            "secret",
        )],
    );
    s.arm.set_linkers(
        &b,
        vec![linker(
            &b,
            "y",
            &target("Microsoft.ServiceBus/namespaces/from-b"),
            "secret",
        )],
    );
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 2, updated 0, unchanged 0, removed 0, skipped 0"
    );

    // a's linker is gone, but b answers 500: a partial listing removes nothing.
    s.arm.set_linkers(&a, vec![]);
    s.arm.fault(&b, Fault::Status(500), 1);
    assert!(s
        .sync()
        .await
        .ends_with("removed 0, skipped 0; a source failed to list, so nothing was removed"));
    assert_eq!(s.keys().await, ["redis/from-a", "servicebus/from-b"]);
    assert!(
        s.h.logs().contains("answered 500: InternalServerError"),
        "{}",
        s.h.logs()
    );

    // The same with a body that is not a list.
    s.arm.fault(&b, Fault::Malformed, 1);
    assert!(s
        .sync()
        .await
        .ends_with("a source failed to list, so nothing was removed"));
    assert_eq!(s.keys().await, ["redis/from-a", "servicebus/from-b"]);
    assert!(s.h.logs().contains("the answer has no value array"));

    // Both list again: now a's row goes.
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 0, updated 0, unchanged 1, removed 1, skipped 0"
    );
    assert_eq!(s.keys().await, ["servicebus/from-b"]);
    s.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_group_source_syncs_its_sites_and_container_apps() {
    let rg = group();
    let web = site("web");
    let worker = format!("{rg}/providers/Microsoft.App/containerApps/worker");
    let s = start(&[&rg], &[]).await;
    s.arm.set_group(&rg, &[&web], &[&worker]);
    s.arm.set_linkers(
        &web,
        vec![linker(
            &web,
            "db",
            &target("Microsoft.DBforPostgreSQL/flexibleServers/pg/databases/app"),
            "secret",
        )],
    );
    s.arm.set_linkers(
        &worker,
        vec![linker(
            &worker,
            "hub",
            &target("Microsoft.EventHub/namespaces/events"),
            "systemAssignedIdentity",
        )],
    );
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 2, updated 0, unchanged 0, removed 0, skipped 0"
    );
    assert_eq!(s.keys().await, ["eventhubs/events", "postgresql/pg.app"]);
    assert_eq!(
        metadata(&s.row("eventhubs", "events").await.unwrap())["sourceResourceId"],
        worker
    );
    assert_eq!(
        s.row("postgresql", "pg.app").await.unwrap()["endpoint"],
        "tcp://pg.postgres.database.azure.com:5432"
    );
    s.assert_clean();
}

#[test]
fn a_bad_source_stops_start_up_naming_the_variable_and_the_entry() {
    let cfg = HandlerConfig::new(Mode::CustomHandler).env(
        "SERVICE_CONNECTOR_SYNC_SOURCES",
        &format!("{},AccountKey=SECRETKEY", group()),
    );
    let (status, _, out, err) = run_handler_to_exit(&cfg, Duration::from_secs(20));
    assert!(status.is_some_and(|s| !s.success()), "{out}{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("SERVICE_CONNECTOR_SYNC_SOURCES is invalid: entry 2 is not the resource ID"),
        "{text}"
    );
    assert!(!text.contains("SECRETKEY"), "{text}");
}

/// The recipe's topology (infra/modules/topology.bicep) as ARM would list it: the function app
/// linked to the registry's tables, the web app to the tables, the SQL database and Redis. With
/// both apps as sources, discovery lists the three services without a manual registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipes_connections_appear_in_discovery_on_their_own() {
    let (func, web) = (site("svcreg-func-abc"), site("svcreg-web-abc"));
    let s = start(&[&func, &web], &[]).await;
    let tables = format!(
        "{}/providers/Microsoft.Storage/storageAccounts/svcregabc/tableServices/default",
        group()
    );
    let sql = format!(
        "{}/providers/Microsoft.Sql/servers/svcreg-sql-abc/databases/ServiceRegistry",
        group()
    );
    let redis = format!(
        "{}/providers/Microsoft.Cache/redis/svcreg-redis-abc/databases/0",
        group()
    );
    s.arm.set_linkers(
        &func,
        vec![linker(
            &func,
            "registrytables",
            &tables,
            "systemAssignedIdentity",
        )],
    );
    s.arm.set_linkers(
        &web,
        vec![
            linker(&web, "registrytables", &tables, "systemAssignedIdentity"),
            linker(&web, "database", &sql, "systemAssignedIdentity"),
            linker(&web, "cache", &redis, "systemAssignedIdentity"),
        ],
    );
    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 3, updated 0, unchanged 0, removed 0, skipped 0"
    );
    let found = s.h.discover_ok("").await;
    let mut services: Vec<(String, String, String)> = found["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["serviceType"].as_str().unwrap().to_owned(),
                v["serviceName"].as_str().unwrap().to_owned(),
                v["endpoint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    services.sort();
    assert_eq!(
        services,
        [
            (
                "redis".into(),
                "svcreg-redis-abc".into(),
                "tcp://svcreg-redis-abc.redis.cache.windows.net:6380".into()
            ),
            (
                "sql".into(),
                "svcreg-sql-abc.ServiceRegistry".into(),
                "tcp://svcreg-sql-abc.database.windows.net:1433".into()
            ),
            (
                "storage-table".into(),
                "svcregabc".into(),
                "https://svcregabc.table.core.windows.net".into()
            ),
        ]
    );
    // Both apps link the tables: one row, written by the first source in ID order.
    let table_row = s.row("storage-table", "svcregabc").await.unwrap();
    assert_eq!(metadata(&table_row)["sourceResourceId"], func);
    s.assert_clean();
}

/// Self-registration and the sync both see one Redis cache: the sync's row (with its linker) is the
/// one kept, and neither rewrites the other's row on later sweeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_self_registration_and_the_sync_see_one_service_the_syncs_row_stays() {
    let web = site("web");
    let s = start(
        &[&web],
        &[
            ("SERVICE_CONNECTOR_SELF_REGISTER", "true"),
            ("AZURE_REDIS_HOST", "c1.redis.cache.windows.net"),
            ("AZURE_REDIS_PORT", "6380"),
        ],
    )
    .await;
    s.arm.set_linkers(
        &web,
        vec![linker(
            &web,
            "cache",
            &target("Microsoft.Cache/redis/c1"),
            "systemAssignedIdentity",
        )],
    );
    // Start-up's self-registration comes first and writes its own row.
    s.h.wait_for_log(SELF_REGISTERED, Duration::from_secs(30))
        .await;
    let first = s.row("redis", "c1").await.expect("self-registered row");
    assert_eq!(metadata(&first)["variable"], "AZURE_REDIS_HOST");

    assert_eq!(
        s.sync().await,
        "Service Connector sync: added 0, updated 1, unchanged 0, removed 0, skipped 0"
    );
    let synced = s.row("redis", "c1").await.unwrap();
    assert_eq!(metadata(&synced)["syncedBy"], "arm");
    assert_eq!(synced["registeredAt"], first["registeredAt"]);
    for _ in 0..2 {
        assert_eq!(
            s.sync().await,
            "Service Connector sync: added 0, updated 0, unchanged 1, removed 0, skipped 0"
        );
        let row = s.row("redis", "c1").await.unwrap();
        assert_eq!(metadata(&row), metadata(&synced));
        assert_eq!(
            row["Timestamp"], synced["Timestamp"],
            "the row was rewritten"
        );
    }
    assert_eq!(s.keys().await, ["redis/c1"]);
    s.assert_clean();
}
