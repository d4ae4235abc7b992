//! The one table of the kinds of backing service Service Connector connects an app to. A row says
//! everything both halves need to know about a kind: the `serviceType` it registers as, how its
//! endpoint is written (https, or tcp with a default port), the `AZURE_<TYPE>_<FIELD>` variables
//! self-registration reads and which reader reads them, and where Azure Resource Manager's resource
//! IDs name it and under which DNS suffix (the ARM sync's convention, docs/arm-sync.md).
//!
//! Adding a kind is a variant of `ServiceKind` and its row in `KINDS`, and nothing else.

use super::names::Field;

/// The kinds of backing service, in the order their rows are registered (`discover` sorts by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServiceKind {
    StorageTable,
    StorageBlob,
    StorageQueue,
    Sql,
    Redis,
    ServiceBus,
    EventHubs,
    KeyVault,
    Cosmos,
    PostgreSql,
    MySql,
}

/// How a kind's endpoint is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    /// `https://host` (checked with a TCP connect: these services answer no anonymous GET with a
    /// 2xx).
    Https,
    /// `tcp://host:port`, with this port when the value names none.
    Tcp { default_port: u16 },
}

/// Which of the variable readers (one file each beside this one) reads a kind's variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reader {
    /// `storage.rs`: the account's `<service>` endpoint (`table`, `blob`, `queue`).
    Storage { service: &'static str },
    /// `endpoints.rs`: an https resource endpoint.
    Endpoint,
    /// `messaging.rs`: an AMQP namespace.
    Messaging,
    /// `redis.rs`.
    Redis,
    /// `databases.rs`: a server, maybe with a database.
    Database,
}

/// Where an ARM resource ID names a kind: `…/providers/<provider>/<type>/<name>[/<child>/<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resource {
    /// `<provider>` and `<type>`, lower case (ARM matches them case-insensitively).
    pub provider: &'static str,
    pub resource_type: &'static str,
    /// The child the ID must name to say which service of the resource is meant (a storage account
    /// has four: `…/tableServices/default`), lower case.
    pub service: Option<&'static str>,
    /// The child whose name joins the resource's as `<server>.<database>`, lower case.
    pub database: Option<&'static str>,
    /// The host is `<name>.<host_suffix>`.
    pub host_suffix: &'static str,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    pub kind: ServiceKind,
    /// `serviceType` of its rows (the shared convention).
    pub service_type: &'static str,
    pub scheme: Scheme,
    /// The `<TYPE>` of `AZURE_<TYPE>_…`.
    pub variable_type: &'static str,
    /// The fields of this kind that say where the service is (the rest, client ids and scopes,
    /// are none of our business).
    pub fields: &'static [Field],
    pub reader: Reader,
    pub resource: Resource,
}

const HTTPS: Scheme = Scheme::Https;

const fn tcp(default_port: u16) -> Scheme {
    Scheme::Tcp { default_port }
}

const fn resource(
    provider: &'static str,
    resource_type: &'static str,
    host_suffix: &'static str,
) -> Resource {
    Resource {
        provider,
        resource_type,
        service: None,
        database: None,
        host_suffix,
    }
}

const STORAGE_FIELDS: &[Field] = &[Field::ResourceEndpoint, Field::ConnectionString];
const MESSAGING_FIELDS: &[Field] = &[Field::FullyQualifiedNamespace, Field::ConnectionString];

/// Storage's three kinds: one account, one service each.
const fn storage(
    kind: ServiceKind,
    service_type: &'static str,
    variable_type: &'static str,
    service: &'static str,
    child: &'static str,
    host_suffix: &'static str,
) -> Kind {
    Kind {
        kind,
        service_type,
        scheme: HTTPS,
        variable_type,
        fields: STORAGE_FIELDS,
        reader: Reader::Storage { service },
        resource: Resource {
            service: Some(child),
            ..resource("microsoft.storage", "storageaccounts", host_suffix)
        },
    }
}

/// A database server whose ID may name one of its databases.
const fn with_databases(resource: Resource) -> Resource {
    Resource {
        database: Some("databases"),
        ..resource
    }
}

/// The table, in `ServiceKind`'s order.
pub(super) const KINDS: [Kind; 11] = {
    use Field::*;
    [
        storage(
            ServiceKind::StorageTable,
            "storage-table",
            "STORAGETABLE",
            "table",
            "tableservices",
            "table.core.windows.net",
        ),
        storage(
            ServiceKind::StorageBlob,
            "storage-blob",
            "STORAGEBLOB",
            "blob",
            "blobservices",
            "blob.core.windows.net",
        ),
        storage(
            ServiceKind::StorageQueue,
            "storage-queue",
            "STORAGEQUEUE",
            "queue",
            "queueservices",
            "queue.core.windows.net",
        ),
        Kind {
            kind: ServiceKind::Sql,
            service_type: "sql",
            scheme: tcp(1433),
            variable_type: "SQL",
            fields: &[
                Server,
                Host,
                Port,
                Database,
                Name,
                Password,
                ConnectionString,
            ],
            reader: Reader::Database,
            resource: with_databases(resource("microsoft.sql", "servers", "database.windows.net")),
        },
        Kind {
            kind: ServiceKind::Redis,
            service_type: "redis",
            scheme: tcp(6380),
            variable_type: "REDIS",
            fields: &[Host, Port, Password, ConnectionString],
            reader: Reader::Redis,
            resource: resource("microsoft.cache", "redis", "redis.cache.windows.net"),
        },
        Kind {
            kind: ServiceKind::ServiceBus,
            service_type: "servicebus",
            scheme: tcp(5671),
            variable_type: "SERVICEBUS",
            fields: MESSAGING_FIELDS,
            reader: Reader::Messaging,
            resource: resource(
                "microsoft.servicebus",
                "namespaces",
                "servicebus.windows.net",
            ),
        },
        Kind {
            kind: ServiceKind::EventHubs,
            service_type: "eventhubs",
            scheme: tcp(5671),
            variable_type: "EVENTHUB",
            fields: MESSAGING_FIELDS,
            reader: Reader::Messaging,
            resource: resource("microsoft.eventhub", "namespaces", "servicebus.windows.net"),
        },
        Kind {
            kind: ServiceKind::KeyVault,
            service_type: "keyvault",
            scheme: HTTPS,
            variable_type: "KEYVAULT",
            fields: &[ResourceEndpoint],
            reader: Reader::Endpoint,
            resource: resource("microsoft.keyvault", "vaults", "vault.azure.net"),
        },
        Kind {
            kind: ServiceKind::Cosmos,
            service_type: "cosmos",
            scheme: HTTPS,
            variable_type: "COSMOS",
            fields: &[ResourceEndpoint, ConnectionString],
            reader: Reader::Endpoint,
            resource: resource(
                "microsoft.documentdb",
                "databaseaccounts",
                "documents.azure.com",
            ),
        },
        Kind {
            kind: ServiceKind::PostgreSql,
            service_type: "postgresql",
            scheme: tcp(5432),
            variable_type: "POSTGRESQL",
            fields: &[Host, Port, Database, Name, Password, ConnectionString],
            reader: Reader::Database,
            resource: with_databases(resource(
                "microsoft.dbforpostgresql",
                "flexibleservers",
                "postgres.database.azure.com",
            )),
        },
        Kind {
            kind: ServiceKind::MySql,
            service_type: "mysql",
            scheme: tcp(3306),
            variable_type: "MYSQL",
            fields: &[
                Host,
                Port,
                Database,
                Name,
                DbName,
                Password,
                ConnectionString,
            ],
            reader: Reader::Database,
            resource: with_databases(resource(
                "microsoft.dbformysql",
                "flexibleservers",
                "mysql.database.azure.com",
            )),
        },
    ]
};

// Every row sits at its kind's place, so `ServiceKind::row` is an index.
const _: () = {
    let mut i = 0;
    while i < KINDS.len() {
        assert!(
            KINDS[i].kind as usize == i,
            "KINDS is out of ServiceKind's order"
        );
        i += 1;
    }
};

impl ServiceKind {
    /// Every kind, in the table's order.
    pub fn all() -> impl Iterator<Item = ServiceKind> {
        KINDS.iter().map(|row| row.kind)
    }

    pub(super) fn row(self) -> &'static Kind {
        &KINDS[self as usize]
    }

    pub fn service_type(self) -> &'static str {
        self.row().service_type
    }

    /// https endpoints (checked with a TCP connect); the others are `tcp://host:port`.
    pub fn is_https(self) -> bool {
        self.row().scheme == Scheme::Https
    }

    /// The endpoint the convention writes for a service of this kind at `host` (as a URL spells
    /// it): an https kind's port only when it is not the scheme's own (`plain_http`: an
    /// emulator's `http://`), a tcp kind's always, its default when `port` is `None`.
    pub fn endpoint(self, host: &str, port: Option<u16>, plain_http: bool) -> String {
        match self.row().scheme {
            Scheme::Https => {
                let (scheme, default) = if plain_http {
                    ("http", 80)
                } else {
                    ("https", 443)
                };
                match port.filter(|p| *p != default) {
                    Some(port) => format!("{scheme}://{host}:{port}"),
                    None => format!("{scheme}://{host}"),
                }
            }
            Scheme::Tcp { default_port } => {
                format!("tcp://{host}:{}", port.unwrap_or(default_port))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_its_own_service_type() {
        let kinds: Vec<ServiceKind> = ServiceKind::all().collect();
        assert_eq!(kinds.len(), KINDS.len());
        for (i, kind) in kinds.iter().enumerate() {
            assert_eq!(*kind as usize, i);
            assert!(kinds[..i]
                .iter()
                .all(|k| k.service_type() != kind.service_type()));
        }
        assert_eq!(ServiceKind::MySql.row().service_type, "mysql");
    }

    #[test]
    fn endpoints_by_scheme() {
        let redis = ServiceKind::Redis;
        assert_eq!(redis.endpoint("c1", None, false), "tcp://c1:6380");
        assert_eq!(redis.endpoint("c1", Some(6379), false), "tcp://c1:6379");
        let table = ServiceKind::StorageTable;
        assert_eq!(table.endpoint("a", Some(443), false), "https://a");
        assert_eq!(table.endpoint("a", Some(8443), false), "https://a:8443");
        assert_eq!(
            table.endpoint("127.0.0.1", Some(10002), true),
            "http://127.0.0.1:10002"
        );
        assert!(table.is_https() && !redis.is_https());
    }
}
