//! Every variable form docs/service-connector.md lists, read into the row the convention wants.

use super::*;
use serde_json::json;

fn one(vars: &[(&str, &str)]) -> Connection {
    let found = discover(vars.iter().copied());
    assert!(found.skipped.is_empty(), "{vars:?}: {:?}", found.skipped);
    assert_eq!(
        found.connections.len(),
        1,
        "{vars:?}: {:?}",
        found.connections
    );
    found.connections.into_iter().next().unwrap()
}

/// (serviceType, serviceName, endpoint, authType) of the one connection.
fn shape_of(vars: &[(&str, &str)]) -> (&'static str, String, String, &'static str) {
    let t = one(vars);
    (
        t.service.kind.service_type(),
        t.service.service_name,
        t.service.endpoint,
        t.auth.as_str(),
    )
}

fn skipped(vars: &[(&str, &str)]) -> Vec<Skipped> {
    let found = discover(vars.iter().copied());
    assert!(
        found.connections.is_empty(),
        "{vars:?}: {:?}",
        found.connections
    );
    found.skipped
}

fn s(a: &str, b: &str, c: &str, d: &'static str) -> (&'static str, String, String, &'static str) {
    let kind = ServiceKind::all().find(|k| k.service_type() == a).unwrap();
    (kind.service_type(), b.to_owned(), c.to_owned(), d)
}

#[test]
fn storage_endpoints_and_connection_strings() {
    for (kind, word) in [
        ("storage-table", "TABLE"),
        ("storage-blob", "BLOB"),
        ("storage-queue", "QUEUE"),
    ] {
        let lower = word.to_ascii_lowercase();
        let endpoint = format!("https://acct1.{lower}.core.windows.net/");
        let var = format!("AZURE_STORAGE{word}_RESOURCEENDPOINT");
        assert_eq!(
            shape_of(&[(&var, &endpoint)]),
            s(
                kind,
                "acct1",
                &format!("https://acct1.{lower}.core.windows.net"),
                "identity"
            )
        );
        let var = format!("AZURE_STORAGE{word}_CONNECTIONSTRING");
        let cs = "DefaultEndpointsProtocol=https;AccountName=Acct1;AccountKey=c2VjcmV0a2V5;EndpointSuffix=core.chinacloudapi.cn";
        assert_eq!(
            shape_of(&[(&var, cs)]),
            s(
                kind,
                "acct1",
                &format!("https://acct1.{lower}.core.chinacloudapi.cn"),
                "secret"
            )
        );
    }
    // An emulator's endpoint: the account is in the path, the port is kept, http stays http.
    let cs = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5a2V5a2V5;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;";
    assert_eq!(
        shape_of(&[("AZURE_STORAGETABLE_CONNECTIONSTRING", cs)]),
        s(
            "storage-table",
            "devstoreaccount1",
            "http://127.0.0.1:10002",
            "secret"
        )
    );
    // A SAS-only connection string.
    let cs = "BlobEndpoint=https://acct2.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=c2lnbmF0dXJl";
    assert_eq!(
        shape_of(&[("AZURE_STORAGEBLOB_CONNECTIONSTRING", cs)]),
        s(
            "storage-blob",
            "acct2",
            "https://acct2.blob.core.windows.net",
            "secret"
        )
    );
    let body = one(&[(
        "AZURE_STORAGEQUEUE_RESOURCEENDPOINT",
        "https://q.queue.core.windows.net:8443/",
    )])
    .registration_body();
    assert_eq!(body["endpoint"], "https://q.queue.core.windows.net:8443");
    assert_eq!(body["healthCheck"], json!({"kind": "tcp"}));
}

#[test]
fn sql_in_each_client_form() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
    let cases: [Case; 8] = [
        (
            &[("AZURE_SQL_CONNECTIONSTRING", "Server=tcp:Srv1.database.windows.net,1433;Database=orders;Authentication=Active Directory Default")],
            "srv1.orders", "tcp://srv1.database.windows.net:1433", "identity",
        ),
        (
            &[("AZURE_SQL_CONNECTIONSTRING", "Data Source=srv1.database.windows.net,1433;Initial Catalog=orders;Password=hunter2hunter2")],
            "srv1.orders", "tcp://srv1.database.windows.net:1433", "secret",
        ),
        (
            &[("AZURE_SQL_CONNECTIONSTRING", "jdbc:sqlserver://srv1.database.windows.net:1433;databaseName=orders;authentication=ActiveDirectoryMSI;")],
            "srv1.orders", "tcp://srv1.database.windows.net:1433", "identity",
        ),
        (
            &[("AZURE_SQL_CONNECTIONSTRING", "jdbc:sqlserver://srv1.database.windows.net:1433;database=orders;user=u;password=hunter2hunter2;")],
            "srv1.orders", "tcp://srv1.database.windows.net:1433", "secret",
        ),
        (
            &[("AZURE_SQL_CONNECTIONSTRING", "server=srv1.database.windows.net;port=1433;database=orders;user id=u;password=hunter2hunter2;")],
            "srv1.orders", "tcp://srv1.database.windows.net:1433", "secret",
        ),
        (
            &[("AZURE_SQL_SERVER", "srv1.database.windows.net"), ("AZURE_SQL_PORT", "1433"), ("AZURE_SQL_DATABASE", "orders")],
            "srv1.orders", "tcp://srv1.database.windows.net:1433", "identity",
        ),
        (
            &[("AZURE_SQL_HOST", "srv1.database.windows.net"), ("AZURE_SQL_NAME", "orders"), ("AZURE_SQL_PASSWORD", "hunter2hunter2")],
            "srv1.orders", "tcp://srv1.database.windows.net:1433", "secret",
        ),
        (
            &[("AZURE_SQL_SERVER", "srv1.database.windows.net")],
            "srv1", "tcp://srv1.database.windows.net:1433", "identity",
        ),
    ];
    for (vars, name, endpoint, auth) in cases {
        assert_eq!(
            shape_of(vars),
            s(
                "sql",
                name,
                endpoint,
                if auth == "secret" {
                    "secret"
                } else {
                    "identity"
                }
            ),
            "{vars:?}"
        );
    }
    // Older pages spell the prefix `Azure_SQL_`; a custom port is kept.
    assert_eq!(
        shape_of(&[
            ("Azure_SQL_SERVER", "127.0.0.1"),
            ("Azure_SQL_PORT", "14330")
        ]),
        s("sql", "127.0.0.1", "tcp://127.0.0.1:14330", "identity")
    );
}

#[test]
fn postgresql_and_mysql_in_each_client_form() {
    let pg = "tcp://pg1.postgres.database.azure.com:5432";
    for (vars, auth) in [
        (vec![("AZURE_POSTGRESQL_CONNECTIONSTRING", "Server=pg1.postgres.database.azure.com;Database=app;Port=5432;Ssl Mode=Require;User Id=u@pg1;Password=hunter2hunter2;")], "secret"),
        (vec![("AZURE_POSTGRESQL_CONNECTIONSTRING", "jdbc:postgresql://pg1.postgres.database.azure.com:5432/app?sslmode=require&user=u%40pg1&password=hunter2hunter2")], "secret"),
        (vec![("AZURE_POSTGRESQL_CONNECTIONSTRING", "dbname=app host=pg1.postgres.database.azure.com port=5432 sslmode=require user=u@pg1 password=hunter2hunter2")], "secret"),
        (vec![("AZURE_POSTGRESQL_CONNECTIONSTRING", "host=pg1.postgres.database.azure.com dbname=app sslmode=require user=u@pg1")], "identity"),
        (vec![("AZURE_POSTGRESQL_HOST", "pg1.postgres.database.azure.com"), ("AZURE_POSTGRESQL_DATABASE", "app"), ("AZURE_POSTGRESQL_PORT", "5432")], "identity"),
        (vec![("AZURE_POSTGRESQL_HOST", "pg1.postgres.database.azure.com"), ("AZURE_POSTGRESQL_NAME", "app"), ("AZURE_POSTGRESQL_PASSWORD", "hunter2hunter2")], "secret"),
    ] {
        assert_eq!(shape_of(&vars), s("postgresql", "pg1.app", pg, auth), "{vars:?}");
    }
    let my = "tcp://my1.mysql.database.azure.com:3306";
    for (vars, auth) in [
        (vec![("AZURE_MYSQL_CONNECTIONSTRING", "Server=my1.mysql.database.azure.com;Database=app;Port=3306;User Id=u;Password=hunter2hunter2;SSL Mode=Required")], "secret"),
        (vec![("AZURE_MYSQL_CONNECTIONSTRING", "jdbc:mysql://my1.mysql.database.azure.com:3306/app?sslmode=required&user=u")], "identity"),
        (vec![("AZURE_MYSQL_CONNECTIONSTRING", "u:hunter2hunter2@tcp(my1.mysql.database.azure.com:3306)/app?tls=true")], "secret"),
        (vec![("AZURE_MYSQL_CONNECTIONSTRING", "u@tcp(my1.mysql.database.azure.com:3306)/app?tls=true")], "identity"),
        (vec![("AZURE_MYSQL_HOST", "my1.mysql.database.azure.com"), ("AZURE_MYSQL_DBNAME", "app"), ("AZURE_MYSQL_PORT", "3306")], "identity"),
        (vec![("AZURE_MYSQL_HOST", "my1.mysql.database.azure.com"), ("AZURE_MYSQL_NAME", "app")], "identity"),
        (vec![("AZURE_MYSQL_HOST", "my1.mysql.database.azure.com"), ("AZURE_MYSQL_DATABASE", "app"), ("AZURE_MYSQL_PASSWORD", "hunter2hunter2")], "secret"),
    ] {
        assert_eq!(shape_of(&vars), s("mysql", "my1.app", my, auth), "{vars:?}");
    }
}

#[test]
fn redis_host_and_both_connection_string_forms() {
    let ep = "tcp://cache1.redis.cache.windows.net:6380";
    for (vars, auth) in [
        (vec![("AZURE_REDIS_HOST", "cache1.redis.cache.windows.net")], "identity"),
        (vec![("AZURE_REDIS_HOST", "cache1.redis.cache.windows.net"), ("AZURE_REDIS_PORT", "6380"), ("AZURE_REDIS_PASSWORD", "hunter2hunter2")], "secret"),
        (vec![("AZURE_REDIS_CONNECTIONSTRING", "cache1.redis.cache.windows.net:6380,password=hunter2hunter2,ssl=True,defaultDatabase=0")], "secret"),
        (vec![("AZURE_REDIS_CONNECTIONSTRING", "rediss://:hunter2hunter2@cache1.redis.cache.windows.net:6380/0")], "secret"),
    ] {
        assert_eq!(shape_of(&vars), s("redis", "cache1", ep, auth), "{vars:?}");
    }
    // Loopback in both families, ports given and defaulted.
    assert_eq!(
        shape_of(&[(
            "AZURE_REDIS_CONNECTIONSTRING",
            "[::1]:7000,password=hunter2hunter2,ssl=False"
        )]),
        s("redis", "0-0-0-0-0-0-0-1", "tcp://[::1]:7000", "secret")
    );
    assert_eq!(
        shape_of(&[("AZURE_REDIS_CONNECTIONSTRING", "rediss://127.0.0.1/0")]),
        s("redis", "127.0.0.1", "tcp://127.0.0.1:6380", "identity")
    );
    assert_eq!(
        shape_of(&[("AZURE_REDIS_HOST", "[::1]"), ("AZURE_REDIS_PORT", "7001")]),
        s("redis", "0-0-0-0-0-0-0-1", "tcp://[::1]:7001", "identity")
    );
}

#[test]
fn messaging_key_vault_and_cosmos() {
    for (prefix, kind) in [("SERVICEBUS", "servicebus"), ("EVENTHUB", "eventhubs")] {
        let ep = "tcp://ns1.servicebus.windows.net:5671";
        let fq = format!("AZURE_{prefix}_FULLYQUALIFIEDNAMESPACE");
        assert_eq!(
            shape_of(&[(&fq, "ns1.servicebus.windows.net")]),
            s(kind, "ns1", ep, "identity")
        );
        let cs = format!("AZURE_{prefix}_CONNECTIONSTRING");
        let value = "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=a2V5a2V5a2V5;EntityPath=hub";
        assert_eq!(shape_of(&[(&cs, value)]), s(kind, "ns1", ep, "secret"));
    }
    assert_eq!(
        shape_of(&[(
            "AZURE_KEYVAULT_RESOURCEENDPOINT",
            "https://Vault1.vault.azure.net/"
        )]),
        s(
            "keyvault",
            "vault1",
            "https://vault1.vault.azure.net",
            "identity"
        )
    );
    assert_eq!(
        shape_of(&[
            (
                "AZURE_COSMOS_RESOURCEENDPOINT",
                "https://db1.documents.azure.com:443/"
            ),
            (
                "AZURE_COSMOS_LISTCONNECTIONSTRINGURL",
                "https://management.azure.com/subscriptions/x/listConnectionStrings"
            ),
            (
                "AZURE_COSMOS_SCOPE",
                "https://management.azure.com/.default"
            ),
        ]),
        s(
            "cosmos",
            "db1",
            "https://db1.documents.azure.com",
            "identity"
        )
    );
    assert_eq!(
        shape_of(&[(
            "AZURE_COSMOS_CONNECTIONSTRING",
            "AccountEndpoint=https://db1.documents.azure.com:443/;AccountKey=a2V5a2V5a2V5;"
        )]),
        s("cosmos", "db1", "https://db1.documents.azure.com", "secret")
    );
}

#[test]
fn a_second_connection_has_its_name_in_the_variable() {
    let found = discover([
        (
            "AZURE_STORAGEBLOB_RESOURCEENDPOINT",
            "https://first.blob.core.windows.net/",
        ),
        (
            "AZURE_STORAGEBLOB_CONN2_RESOURCEENDPOINT",
            "https://second.blob.core.windows.net/",
        ),
        ("AZURE_SQL_REPORTS_SERVER", "rep.database.windows.net"),
        ("AZURE_SQL_REPORTS_DATABASE", "r"),
        ("AZURE_SQL_SERVER", "main.database.windows.net"),
    ]);
    assert!(found.skipped.is_empty(), "{:?}", found.skipped);
    let rows: Vec<(&str, &str, &str)> = found
        .connections
        .iter()
        .map(|t| {
            (
                t.service.kind.service_type(),
                t.service.service_name.as_str(),
                t.variable.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "storage-blob",
                "first",
                "AZURE_STORAGEBLOB_RESOURCEENDPOINT"
            ),
            (
                "storage-blob",
                "second",
                "AZURE_STORAGEBLOB_CONN2_RESOURCEENDPOINT"
            ),
            ("sql", "main", "AZURE_SQL_SERVER"),
            ("sql", "rep.r", "AZURE_SQL_REPORTS_SERVER"),
        ]
    );
}

#[test]
fn the_body_is_what_the_convention_says() {
    let t = one(&[("AZURE_REDIS_HOST", "cache1.redis.cache.windows.net")]);
    assert_eq!(
        t.registration_body(),
        json!({
            "serviceName": "cache1", "serviceType": "redis",
            "endpoint": "tcp://cache1.redis.cache.windows.net:6380",
            "metadata": {"source": "service-connector", "authType": "identity", "variable": "AZURE_REDIS_HOST"},
        })
    );
    assert!(crate::domain::Registration::parse(&t.registration_body()).is_ok());
}

#[test]
fn malformed_values_are_skipped_naming_the_variable_only() {
    let secret = "Sup3rSecretValue";
    let cases: [(&str, String); 9] = [
        (
            "AZURE_REDIS_CONNECTIONSTRING",
            format!("password={secret},ssl=True"),
        ),
        (
            "AZURE_SQL_CONNECTIONSTRING",
            format!("Database=orders;Password={secret}"),
        ),
        (
            "AZURE_SQL_CONNECTIONSTRING",
            format!("no pairs here {secret}"),
        ),
        (
            "AZURE_STORAGETABLE_CONNECTIONSTRING",
            "UseDevelopmentStorage=true".to_owned(),
        ),
        ("AZURE_KEYVAULT_RESOURCEENDPOINT", format!("vault {secret}")),
        (
            "AZURE_COSMOS_CONNECTIONSTRING",
            format!("mongodb://u:{secret}@db1.mongo.cosmos.azure.com:10255/?ssl=true"),
        ),
        (
            "AZURE_SERVICEBUS_CONNECTIONSTRING",
            format!("SharedAccessKey={secret}"),
        ),
        ("AZURE_POSTGRESQL_HOST", format!("{secret} host")),
        (
            "AZURE_MYSQL_CONNECTIONSTRING",
            format!("u:{secret}@tcp(my1:99999)/app"),
        ),
    ];
    for (name, value) in &cases {
        let skips = skipped(&[(name, value)]);
        assert_eq!(skips.len(), 1, "{name}");
        assert_eq!(skips[0].variable, *name);
        assert!(!skips[0].reason.contains(secret), "{skips:?}");
    }
    let skips = skipped(&[
        ("AZURE_REDIS_HOST", "cache1.redis.cache.windows.net"),
        ("AZURE_REDIS_PORT", "six"),
    ]);
    assert_eq!(skips[0].variable, "AZURE_REDIS_PORT");
    let skips = skipped(&[("AZURE_SQL_PASSWORD", secret)]);
    assert_eq!(skips[0].variable, "AZURE_SQL_PASSWORD");
    assert!(!format!("{skips:?}").contains(secret));
}

#[test]
fn no_secret_reaches_any_field_of_a_registration() {
    let secret = "Zm9vYmFyU2VjcmV0S2V5";
    let vars: Vec<(String, String)> = vec![
        ("AZURE_STORAGETABLE_CONNECTIONSTRING".into(), format!("DefaultEndpointsProtocol=https;AccountName=a1;AccountKey={secret};EndpointSuffix=core.windows.net")),
        ("AZURE_STORAGEBLOB_CONNECTIONSTRING".into(), format!("BlobEndpoint=https://a1.blob.core.windows.net/?sv=1&sig={secret};SharedAccessSignature=sv=1&sig={secret}")),
        ("AZURE_SQL_CONNECTIONSTRING".into(), format!("Server=tcp:s1.database.windows.net,1433;Database=d;Password=\"{secret}\"")),
        ("AZURE_SQL_CONN2_CONNECTIONSTRING".into(), format!("jdbc:sqlserver://s2.database.windows.net:1433;database=d;password={secret};")),
        ("AZURE_REDIS_CONNECTIONSTRING".into(), format!("c1.redis.cache.windows.net:6380,password={secret},ssl=True")),
        ("AZURE_REDIS_CONN2_CONNECTIONSTRING".into(), format!("rediss://:{secret}@c2.redis.cache.windows.net:6380/0")),
        ("AZURE_SERVICEBUS_CONNECTIONSTRING".into(), format!("Endpoint=sb://n1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey={secret}")),
        ("AZURE_EVENTHUB_CONNECTIONSTRING".into(), format!("Endpoint=sb://n2.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey={secret}")),
        ("AZURE_COSMOS_CONNECTIONSTRING".into(), format!("AccountEndpoint=https://c1.documents.azure.com:443/;AccountKey={secret};")),
        ("AZURE_POSTGRESQL_CONNECTIONSTRING".into(), format!("host=p1.postgres.database.azure.com dbname=d password='{secret}'")),
        ("AZURE_MYSQL_CONNECTIONSTRING".into(), format!("u:{secret}@tcp(m1.mysql.database.azure.com:3306)/d")),
        ("AZURE_MYSQL_CONN2_HOST".into(), "m2.mysql.database.azure.com".into()),
        ("AZURE_MYSQL_CONN2_PASSWORD".into(), secret.into()),
    ];
    let found = discover(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert!(found.skipped.is_empty(), "{:?}", found.skipped);
    assert_eq!(found.connections.len(), 12);
    for target in &found.connections {
        let text = target.registration_body().to_string();
        assert!(!text.contains(secret), "{text}");
        assert_eq!(target.auth, AuthType::Secret, "{text}");
        let parsed = crate::domain::Registration::parse(&target.registration_body()).unwrap();
        assert!(!format!("{parsed:?}").contains(secret));
    }
}

#[test]
fn candidates_are_recognised_by_name() {
    assert!(is_candidate("AZURE_REDIS_HOST"));
    assert!(is_candidate("azure_redis_conn2_host"));
    assert!(!is_candidate("AZURE_REDIS_CLIENTID"));
    assert!(!is_candidate("AZURE_CLIENT_ID"));
    assert!(!is_candidate("AZURE_REDIS__HOST"));
    assert!(default_variable_names().contains(&"AZURE_EVENTHUB_FULLYQUALIFIEDNAMESPACE".to_owned()));
}
