//! Service Connector's variable names: `AZURE_<TYPE>_<FIELD>`, or `AZURE_<TYPE>_<CONNECTION>_<FIELD>`
//! for a further connection to the same kind of target (the naming convention in "Service
//! Connector internals", docs/service-connector.md). Which types and fields there are, what each
//! kind registers as (`serviceType`, default port, https or tcp), and how a name is classified.

/// The kinds of target self-registration knows, with their `serviceType` (the shared convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
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

impl TargetKind {
    pub const ALL: [TargetKind; 11] = [
        TargetKind::StorageTable,
        TargetKind::StorageBlob,
        TargetKind::StorageQueue,
        TargetKind::Sql,
        TargetKind::Redis,
        TargetKind::ServiceBus,
        TargetKind::EventHubs,
        TargetKind::KeyVault,
        TargetKind::Cosmos,
        TargetKind::PostgreSql,
        TargetKind::MySql,
    ];

    pub fn service_type(self) -> &'static str {
        match self {
            TargetKind::StorageTable => "storage-table",
            TargetKind::StorageBlob => "storage-blob",
            TargetKind::StorageQueue => "storage-queue",
            TargetKind::Sql => "sql",
            TargetKind::Redis => "redis",
            TargetKind::ServiceBus => "servicebus",
            TargetKind::EventHubs => "eventhubs",
            TargetKind::KeyVault => "keyvault",
            TargetKind::Cosmos => "cosmos",
            TargetKind::PostgreSql => "postgresql",
            TargetKind::MySql => "mysql",
        }
    }

    /// The `<TYPE>` of `AZURE_<TYPE>_…`.
    pub(super) fn variable_type(self) -> &'static str {
        match self {
            TargetKind::StorageTable => "STORAGETABLE",
            TargetKind::StorageBlob => "STORAGEBLOB",
            TargetKind::StorageQueue => "STORAGEQUEUE",
            TargetKind::Sql => "SQL",
            TargetKind::Redis => "REDIS",
            TargetKind::ServiceBus => "SERVICEBUS",
            TargetKind::EventHubs => "EVENTHUB",
            TargetKind::KeyVault => "KEYVAULT",
            TargetKind::Cosmos => "COSMOS",
            TargetKind::PostgreSql => "POSTGRESQL",
            TargetKind::MySql => "MYSQL",
        }
    }

    /// The fields of this kind that say where the target is (the rest, client ids and scopes,
    /// are none of our business).
    pub(super) fn fields(self) -> &'static [Field] {
        use Field::*;
        match self {
            TargetKind::StorageTable | TargetKind::StorageBlob | TargetKind::StorageQueue => {
                &[ResourceEndpoint, ConnectionString]
            }
            TargetKind::KeyVault => &[ResourceEndpoint],
            TargetKind::Cosmos => &[ResourceEndpoint, ConnectionString],
            TargetKind::ServiceBus | TargetKind::EventHubs => {
                &[FullyQualifiedNamespace, ConnectionString]
            }
            TargetKind::Redis => &[Host, Port, Password, ConnectionString],
            TargetKind::Sql => &[
                Server,
                Host,
                Port,
                Database,
                Name,
                Password,
                ConnectionString,
            ],
            TargetKind::PostgreSql => &[Host, Port, Database, Name, Password, ConnectionString],
            TargetKind::MySql => &[
                Host,
                Port,
                Database,
                Name,
                DbName,
                Password,
                ConnectionString,
            ],
        }
    }

    /// The port a value without one means.
    pub(super) fn default_port(self) -> u16 {
        match self {
            TargetKind::Sql => 1433,
            TargetKind::Redis => 6380,
            TargetKind::ServiceBus | TargetKind::EventHubs => 5671,
            TargetKind::PostgreSql => 5432,
            TargetKind::MySql => 3306,
            _ => 443,
        }
    }

    /// https endpoints (checked with a TCP connect); the others are `tcp://host:port`.
    pub(super) fn is_https(self) -> bool {
        matches!(
            self,
            TargetKind::StorageTable
                | TargetKind::StorageBlob
                | TargetKind::StorageQueue
                | TargetKind::KeyVault
                | TargetKind::Cosmos
        )
    }
}

/// The `<FIELD>` of a variable's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Field {
    ResourceEndpoint,
    FullyQualifiedNamespace,
    ConnectionString,
    Server,
    Host,
    Port,
    Database,
    Name,
    DbName,
    Password,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::ResourceEndpoint => "RESOURCEENDPOINT",
            Field::FullyQualifiedNamespace => "FULLYQUALIFIEDNAMESPACE",
            Field::ConnectionString => "CONNECTIONSTRING",
            Field::Server => "SERVER",
            Field::Host => "HOST",
            Field::Port => "PORT",
            Field::Database => "DATABASE",
            Field::Name => "NAME",
            Field::DbName => "DBNAME",
            Field::Password => "PASSWORD",
        }
    }
}

/// The kind and field a variable name stands for, and its connection name (empty for the first
/// connection). Case is ignored: older pages spell the prefix `Azure_SQL_`.
pub(super) fn classify(name: &str) -> Option<(TargetKind, String, Field)> {
    let upper = name.to_ascii_uppercase();
    let rest = upper.strip_prefix("AZURE_")?;
    TargetKind::ALL.iter().find_map(|&kind| {
        let rest = rest.strip_prefix(kind.variable_type())?.strip_prefix('_')?;
        kind.fields().iter().find_map(|&field| {
            if rest == field.as_str() {
                return Some((kind, String::new(), field));
            }
            let connection = rest.strip_suffix(field.as_str())?.strip_suffix('_')?;
            (!connection.is_empty()).then(|| (kind, connection.to_owned(), field))
        })
    })
}

/// Whether self-registration reads this variable (what configuration captures).
pub fn is_candidate(name: &str) -> bool {
    classify(name).is_some()
}

/// The first connection's variable names, in the spelling the current pages use: what
/// configuration looks up when it cannot list the environment.
pub fn default_variable_names() -> Vec<String> {
    TargetKind::ALL
        .iter()
        .flat_map(|kind| {
            kind.fields()
                .iter()
                .map(move |field| format!("AZURE_{}_{}", kind.variable_type(), field.as_str()))
        })
        .collect()
}
