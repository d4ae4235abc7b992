//! The ARM sync's convention (docs/arm-sync.md): which backing service an Azure resource ID names,
//! read from each kind's `Resource` row in `kinds.rs`.
//!
//! Resource IDs are matched case-insensitively (ARM's provider and type names are); resource names
//! are lower-cased because they are DNS labels, so the same account always yields the same key
//! (database names, which are not, keep their case).

use super::kinds::KINDS;
use super::service::BackingService;

/// The backing service `resource_id` names; `Err` says why it is not supported (for the log line).
pub fn service_of(resource_id: &str) -> Result<BackingService, String> {
    let parts: Vec<&str> = resource_id.trim_matches('/').split('/').collect();
    let Some(at) = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("providers"))
    else {
        return Err("its target is not a resource ID (no providers segment)".to_owned());
    };
    let rest = &parts[at + 1..];
    let word = |i: usize| rest.get(i).map(|w| w.to_ascii_lowercase());
    let (provider, resource_type) = (word(0).unwrap_or_default(), word(1).unwrap_or_default());
    let Some(name) = rest
        .get(2)
        .filter(|n| !n.is_empty())
        .map(|n| n.to_ascii_lowercase())
    else {
        return Err("its target resource ID names no resource".to_owned());
    };
    let child = word(3);
    let mut of_type = KINDS
        .iter()
        .filter(|row| {
            row.resource.provider == provider && row.resource.resource_type == resource_type
        })
        .peekable();
    if of_type.peek().is_none() {
        let shown = format!(
            "{}/{}",
            rest.first().unwrap_or(&""),
            rest.get(1).unwrap_or(&"")
        );
        return Err(format!(
            "its target type {:?} is not mapped",
            shown.chars().take(80).collect::<String>()
        ));
    }
    let found = of_type.find(|row| {
        row.resource
            .service
            .is_none_or(|service| child.as_deref() == Some(service))
    });
    // Only storage accounts have services a row must name (…/blobServices/default): an account
    // alone does not say which of four endpoints the app uses.
    let Some(row) = found else {
        return Err(match child {
            Some(other) => {
                format!("its target is the storage service {other:?}, which is not mapped")
            }
            None => {
                "its target is a whole storage account, not one of its table, blob or queue services"
                    .to_owned()
            }
        });
    };
    // `<server>.<database>` when the ID names a database, else the server. The database keeps its
    // case: it is no DNS label, and the environment's AZURE_SQL_DATABASE spells it as created.
    let database = rest.get(4).filter(|d| !d.is_empty());
    let service_name = match (row.resource.database, database) {
        (Some(databases), Some(db)) if child.as_deref() == Some(databases) => {
            format!("{name}.{db}")
        }
        _ => name.clone(),
    };
    let host = format!("{name}.{}", row.resource.host_suffix);
    Ok(BackingService {
        kind: row.kind,
        service_name,
        endpoint: row.kind.endpoint(&host, None, false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg";

    fn service(path: &str) -> BackingService {
        service_of(&format!("{RG}/providers/{path}")).unwrap()
    }

    /// The row's serviceType, serviceName, endpoint, and whether it gets a TCP check.
    fn row(s: &BackingService) -> (&str, &str, &str, bool) {
        (
            s.kind.service_type(),
            &s.service_name,
            &s.endpoint,
            s.kind.is_https(),
        )
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
            assert_eq!(row(&service(path)), expected, "{path}");
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
            let e = service_of(&id).unwrap_err();
            assert!(e.contains(reason), "{id}: {e}");
        }
    }
}
