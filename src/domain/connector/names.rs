//! Service Connector's variable names: `AZURE_<TYPE>_<FIELD>`, or `AZURE_<TYPE>_<CONNECTION>_<FIELD>`
//! for a further connection to the same kind of target (the naming convention in "Service
//! Connector internals", docs/service-connector.md): the fields there are, and how a name is
//! classified. Which `<TYPE>` each kind is spelled as, and which fields it has, is its row in
//! `kinds.rs`.

use super::kinds::ServiceKind;

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
pub(super) fn classify(name: &str) -> Option<(ServiceKind, String, Field)> {
    let upper = name.to_ascii_uppercase();
    let rest = upper.strip_prefix("AZURE_")?;
    ServiceKind::all().find_map(|kind| {
        let row = kind.row();
        let rest = rest.strip_prefix(row.variable_type)?.strip_prefix('_')?;
        row.fields.iter().find_map(|&field| {
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
    ServiceKind::all()
        .flat_map(|kind| {
            let row = kind.row();
            row.fields
                .iter()
                .map(move |field| format!("AZURE_{}_{}", row.variable_type, field.as_str()))
        })
        .collect()
}
