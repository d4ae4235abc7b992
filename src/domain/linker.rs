//! What a Service Connector linker (as Azure Resource Manager lists it) registers: the target
//! resource ID mapped to the row the convention of docs/arm-sync.md names, built as the JSON body a
//! client would POST so that it passes the API's own validation (`Registration::parse`).
//!
//! Pure: no I/O, so every resource type and every malformed answer is unit-tested. Resource IDs are
//! matched case-insensitively (ARM's provider and type names are); resource names are lower-cased
//! because they are DNS labels, so the same account always yields the same key (database names,
//! which are not, keep their case).

use super::connector::SOURCE;
use super::{Registration, ValidationError};
use serde_json::{json, Map, Value};

/// The mark (`metadata.syncedBy`, beside `source`) of rows this sync created.
pub const SYNCED_BY: &str = "arm";

/// A linker that names a target this sync can register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linker {
    pub id: String,
    pub target_id: String,
    /// `properties.authInfo.authType` as ARM spells it (`unknown` when absent).
    pub auth_type: String,
}

/// Why a linker registers nothing (logged with its ID; never an error of the sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The list item is not a linker at all: the answer is malformed.
    Malformed(&'static str),
    /// A valid linker whose target this registry does not map.
    Unsupported { linker_id: String, reason: String },
}

/// One list item of `GET …/providers/Microsoft.ServiceLinker/linkers`.
pub fn parse_linker(item: &Value) -> Result<Linker, Skip> {
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or(Skip::Malformed("a linker without an id"))?;
    let properties = item
        .get("properties")
        .and_then(Value::as_object)
        .ok_or(Skip::Malformed("a linker without properties"))?;
    let target = properties
        .get("targetService")
        .and_then(Value::as_object)
        .ok_or(Skip::Malformed("a linker without properties.targetService"))?;
    let unsupported = |reason: String| Skip::Unsupported {
        linker_id: id.to_owned(),
        reason,
    };
    let kind = target.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "AzureResource" {
        return Err(unsupported(format!(
            "its target is of type {:?}, not an Azure resource",
            kind.chars().take(40).collect::<String>()
        )));
    }
    let target_id = target
        .get("id")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unsupported("its target has no resource id".to_owned()))?;
    let auth_type = properties
        .get("authInfo")
        .and_then(|a| a.get("authType"))
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .unwrap_or("unknown");
    Ok(Linker {
        id: id.to_owned(),
        target_id: target_id.to_owned(),
        auth_type: auth_type.chars().take(64).collect(),
    })
}

/// The row a target becomes: the convention's `serviceType`, `serviceName`, endpoint and check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service_type: &'static str,
    pub service_name: String,
    pub endpoint: String,
    /// https endpoints get a TCP check on 443: these services answer no anonymous GET with a 2xx.
    pub tcp_check: bool,
}

/// Maps a target resource ID; `Err` says why it is not supported (for the log line).
pub fn target_of(resource_id: &str) -> Result<Target, String> {
    let parts: Vec<&str> = resource_id.trim_matches('/').split('/').collect();
    let Some(at) = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("providers"))
    else {
        return Err("its target is not a resource ID (no providers segment)".to_owned());
    };
    let rest = &parts[at + 1..];
    let word = |i: usize| rest.get(i).map(|w| w.to_ascii_lowercase());
    let name = |i: usize| {
        rest.get(i)
            .filter(|n| !n.is_empty())
            .map(|n| n.to_ascii_lowercase())
    };
    let (provider, kind) = (word(0).unwrap_or_default(), word(1).unwrap_or_default());
    let Some(first) = name(2) else {
        return Err("its target resource ID names no resource".to_owned());
    };
    let https = |service_type, host: String| Target {
        service_type,
        service_name: first.clone(),
        endpoint: format!("https://{host}"),
        tcp_check: true,
    };
    let tcp = |service_type, service_name: String, host: String, port: u16| Target {
        service_type,
        service_name,
        endpoint: format!("tcp://{host}:{port}"),
        tcp_check: false,
    };
    // `<server>.<database>` when the ID names a database, else the server. The database keeps its
    // case: it is no DNS label, and the environment's AZURE_SQL_DATABASE spells it as created.
    let database = rest.get(4).filter(|d| !d.is_empty());
    let with_database = |child: &str| match (word(3).as_deref() == Some(child), database) {
        (true, Some(db)) => format!("{first}.{db}"),
        _ => first.clone(),
    };
    let target = match (provider.as_str(), kind.as_str()) {
        ("microsoft.storage", "storageaccounts") => match word(3).as_deref() {
            Some("tableservices") => https("storage-table", format!("{first}.table.core.windows.net")),
            Some("blobservices") => https("storage-blob", format!("{first}.blob.core.windows.net")),
            Some("queueservices") => https("storage-queue", format!("{first}.queue.core.windows.net")),
            Some(other) => {
                return Err(format!("its target is the storage service {other:?}, which is not mapped"))
            }
            // Service Connector's storage targets name the service (…/blobServices/default); an
            // account alone does not say which of four endpoints the app uses.
            None => {
                return Err(
                    "its target is a whole storage account, not one of its table, blob or queue services"
                        .to_owned(),
                )
            }
        },
        ("microsoft.sql", "servers") => tcp(
            "sql",
            with_database("databases"),
            format!("{first}.database.windows.net"),
            1433,
        ),
        ("microsoft.cache", "redis") => tcp(
            "redis",
            first.clone(),
            format!("{first}.redis.cache.windows.net"),
            6380,
        ),
        ("microsoft.servicebus", "namespaces") => tcp(
            "servicebus",
            first.clone(),
            format!("{first}.servicebus.windows.net"),
            5671,
        ),
        ("microsoft.eventhub", "namespaces") => tcp(
            "eventhubs",
            first.clone(),
            format!("{first}.servicebus.windows.net"),
            5671,
        ),
        ("microsoft.keyvault", "vaults") => https("keyvault", format!("{first}.vault.azure.net")),
        ("microsoft.documentdb", "databaseaccounts") => {
            https("cosmos", format!("{first}.documents.azure.com"))
        }
        ("microsoft.dbforpostgresql", "flexibleservers") => tcp(
            "postgresql",
            with_database("databases"),
            format!("{first}.postgres.database.azure.com"),
            5432,
        ),
        ("microsoft.dbformysql", "flexibleservers") => tcp(
            "mysql",
            with_database("databases"),
            format!("{first}.mysql.database.azure.com"),
            3306,
        ),
        _ => {
            let shown: String = format!("{}/{}", rest.first().unwrap_or(&""), rest.get(1).unwrap_or(&""));
            return Err(format!(
                "its target type {:?} is not mapped",
                shown.chars().take(80).collect::<String>()
            ));
        }
    };
    Ok(target)
}

/// The registration a linker of `source_id` makes: the POST body, validated as the API would.
pub fn registration(linker: &Linker, source_id: &str) -> Result<Registration, String> {
    let target = target_of(&linker.target_id)?;
    let mut metadata = Map::new();
    metadata.insert("source".into(), json!(SOURCE));
    metadata.insert("authType".into(), json!(linker.auth_type));
    metadata.insert("linkerId".into(), json!(linker.id));
    metadata.insert("sourceResourceId".into(), json!(source_id));
    metadata.insert("syncedBy".into(), json!(SYNCED_BY));
    let mut body = json!({
        "serviceName": target.service_name,
        "serviceType": target.service_type,
        "endpoint": target.endpoint,
        "metadata": metadata,
    });
    if target.tcp_check {
        body["healthCheck"] = json!({"kind": "tcp"});
    }
    Registration::parse(&body).map_err(|e: ValidationError| {
        format!("its target makes no valid registration ({}: {e})", e.field)
    })
}

/// Whether a stored row's metadata says this sync created it (the only rows it may delete).
pub fn is_synced(metadata: &Value) -> bool {
    metadata.get("source").and_then(Value::as_str) == Some(SOURCE)
        && metadata.get("syncedBy").and_then(Value::as_str) == Some(SYNCED_BY)
}

/// Whether a stored row came from Service Connector at all (either mode): the only rows the sync
/// may overwrite.
pub fn is_service_connector(metadata: &Value) -> bool {
    metadata.get("source").and_then(Value::as_str) == Some(SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg";

    fn target(path: &str) -> Target {
        target_of(&format!("{RG}/providers/{path}")).unwrap()
    }

    fn row(t: &Target) -> (&str, &str, &str, bool) {
        (t.service_type, &t.service_name, &t.endpoint, t.tcp_check)
    }

    #[test]
    fn every_mapped_type_gives_the_conventions_row() {
        let cases = [
            (
                "Microsoft.Storage/storageAccounts/Acct1/tableServices/default",
                (
                    "storage-table",
                    "acct1",
                    "https://acct1.table.core.windows.net",
                    true,
                ),
            ),
            (
                "microsoft.storage/STORAGEACCOUNTS/acct1/blobServices/default",
                (
                    "storage-blob",
                    "acct1",
                    "https://acct1.blob.core.windows.net",
                    true,
                ),
            ),
            (
                "Microsoft.Storage/storageAccounts/acct1/queueServices/default",
                (
                    "storage-queue",
                    "acct1",
                    "https://acct1.queue.core.windows.net",
                    true,
                ),
            ),
            (
                "Microsoft.Sql/servers/Srv/databases/Orders",
                (
                    "sql",
                    "srv.Orders",
                    "tcp://srv.database.windows.net:1433",
                    false,
                ),
            ),
            (
                "Microsoft.Sql/servers/srv",
                ("sql", "srv", "tcp://srv.database.windows.net:1433", false),
            ),
            (
                "Microsoft.Cache/Redis/cache1/databases/0",
                (
                    "redis",
                    "cache1",
                    "tcp://cache1.redis.cache.windows.net:6380",
                    false,
                ),
            ),
            (
                "Microsoft.ServiceBus/namespaces/bus1",
                (
                    "servicebus",
                    "bus1",
                    "tcp://bus1.servicebus.windows.net:5671",
                    false,
                ),
            ),
            (
                "Microsoft.EventHub/namespaces/hub1",
                (
                    "eventhubs",
                    "hub1",
                    "tcp://hub1.servicebus.windows.net:5671",
                    false,
                ),
            ),
            (
                "Microsoft.KeyVault/vaults/Vault1",
                ("keyvault", "vault1", "https://vault1.vault.azure.net", true),
            ),
            (
                "Microsoft.DocumentDb/databaseAccounts/cosmo/mongodbDatabases/test-db",
                ("cosmos", "cosmo", "https://cosmo.documents.azure.com", true),
            ),
            (
                "Microsoft.DBforPostgreSQL/flexibleServers/pg/databases/app",
                (
                    "postgresql",
                    "pg.app",
                    "tcp://pg.postgres.database.azure.com:5432",
                    false,
                ),
            ),
            (
                "Microsoft.DBforMySQL/flexibleServers/my",
                (
                    "mysql",
                    "my",
                    "tcp://my.mysql.database.azure.com:3306",
                    false,
                ),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(row(&target(path)), expected, "{path}");
        }
    }

    #[test]
    fn unmapped_targets_say_why() {
        for (id, reason) in [
            (
                format!("{RG}/providers/Microsoft.Storage/storageAccounts/acct1"),
                "a whole storage account",
            ),
            (
                format!(
                    "{RG}/providers/Microsoft.Storage/storageAccounts/acct1/fileServices/default"
                ),
                "\"fileservices\"",
            ),
            (
                format!("{RG}/providers/Microsoft.AppConfiguration/configurationStores/c"),
                "\"Microsoft.AppConfiguration/configurationStores\"",
            ),
            (
                format!("{RG}/providers/Microsoft.Sql/servers"),
                "names no resource",
            ),
            ("not-an-id".to_owned(), "no providers segment"),
        ] {
            let e = target_of(&id).unwrap_err();
            assert!(e.contains(reason), "{id}: {e}");
        }
    }

    fn linker(target: Value) -> Value {
        json!({
            "id": format!("{RG}/providers/Microsoft.Web/sites/app/providers/Microsoft.ServiceLinker/linkers/db"),
            "name": "db",
            "properties": {"targetService": target, "authInfo": {"authType": "systemAssignedIdentity"}, "clientType": "dotnet"}
        })
    }

    #[test]
    fn a_linker_becomes_a_valid_registration_with_the_conventions_metadata() {
        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.Cache/redis/c1")}),
        );
        let l = parse_linker(&item).unwrap();
        assert_eq!(l.auth_type, "systemAssignedIdentity");
        let source = format!("{RG}/providers/Microsoft.Web/sites/app");
        let r = registration(&l, &source).unwrap();
        assert_eq!(r.key.service_type.to_string(), "redis");
        assert_eq!(r.key.service_name.to_string(), "c1");
        assert_eq!(r.endpoint, "tcp://c1.redis.cache.windows.net:6380");
        assert_eq!(r.health_check, None);
        assert_eq!(
            Value::Object(r.metadata.clone()),
            json!({"source": "service-connector", "authType": "systemAssignedIdentity",
                   "linkerId": l.id, "sourceResourceId": source, "syncedBy": "arm"})
        );
        assert!(is_synced(&Value::Object(r.metadata)));

        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.KeyVault/vaults/v")}),
        );
        let r = registration(&parse_linker(&item).unwrap(), &source).unwrap();
        assert_eq!(r.endpoint, "https://v.vault.azure.net");
        assert_eq!(
            r.health_check.unwrap().kind,
            Some(crate::domain::CheckKind::Tcp)
        );
    }

    #[test]
    fn non_resource_and_malformed_linkers_are_skipped() {
        let e = parse_linker(&linker(
            json!({"type": "ConfluentBootstrapServer", "endpoint": "x:9092"}),
        ))
        .unwrap_err();
        assert!(
            matches!(&e, Skip::Unsupported { linker_id, reason } if linker_id.ends_with("/linkers/db") && reason.contains("not an Azure resource")),
            "{e:?}"
        );
        let mut no_auth = linker(json!({"type": "AzureResource", "id": "x"}));
        no_auth["properties"]
            .as_object_mut()
            .unwrap()
            .remove("authInfo");
        assert_eq!(parse_linker(&no_auth).unwrap().auth_type, "unknown");
        for bad in [
            json!("text"),
            json!({"id": "x"}),
            json!({"id": "", "properties": {}}),
            json!({"id": "x", "properties": {}}),
        ] {
            assert!(
                matches!(parse_linker(&bad), Err(Skip::Malformed(_))),
                "{bad}"
            );
        }
        // A database name the key rule refuses: skipped, with the field named.
        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.Sql/servers/s/databases/my db")}),
        );
        let e = registration(&parse_linker(&item).unwrap(), "src").unwrap_err();
        assert!(e.contains("serviceName"), "{e}");
    }

    #[test]
    fn only_rows_this_sync_marked_count_as_its_own() {
        assert!(is_synced(
            &json!({"source": "service-connector", "syncedBy": "arm"})
        ));
        assert!(!is_synced(
            &json!({"source": "service-connector", "variable": "AZURE_REDIS_HOST"})
        ));
        assert!(!is_synced(&json!({"syncedBy": "arm"})));
        assert!(is_service_connector(
            &json!({"source": "service-connector"})
        ));
        assert!(!is_service_connector(&json!({"source": "manual"})));
        assert!(!is_service_connector(&json!({})));
    }
}
