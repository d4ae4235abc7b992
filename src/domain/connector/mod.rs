//! Service Connector's pure half: the one table of the kinds of backing service it connects an
//! app to (`kinds.rs`), the row each becomes (`service.rs`), and the two ways of finding them:
//!
//! - self-registration: which of this app's environment variables Service Connector set, and which
//!   backing service each one points at (docs/service-connector.md has the variables, their forms
//!   and the learn.microsoft.com pages they come from); this file, `names.rs` and one reader per
//!   family of kinds;
//! - the ARM sync: which backing service a linker's target resource ID names (`resource_id.rs`,
//!   docs/arm-sync.md); ARM's wire shapes are `connector::arm`'s.
//!
//! Service Connector names a connection's variables `AZURE_<TYPE>_<FIELD>`, and a second
//! connection to the same kind of target `AZURE_<TYPE>_<CONNECTION>_<FIELD>`; the variables of one
//! connection are read together (a host beside its port and database). Each connection becomes one
//! `Connection` (a `BackingService` and how the app signs in to it), or one `Skipped` that names
//! the variable and never its value. The values are read for host, port and database only; the
//! secrets some of them carry are used for nothing but the check that none reached a registration.

mod databases;
mod endpoints;
mod kinds;
mod messaging;
mod names;
mod redis;
mod resource_id;
mod service;
mod storage;
mod values;

use kinds::Reader;
pub use kinds::ServiceKind;
use names::classify;
use names::Field;
pub use names::{default_variable_names, is_candidate};
pub use resource_id::service_of;
use serde_json::Value;
pub use service::{is_service_connector, is_synced, BackingService, SOURCE, SYNCED_BY};
use values::{Located, Why};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// The variables carry a password, key or SAS.
    Secret,
    /// Only where the service is: the app signs in with an identity.
    Identity,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Secret => "secret",
            AuthType::Identity => "identity",
        }
    }
}

/// One connection read from the variables: the service, and how the app signs in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub service: BackingService,
    pub auth: AuthType,
    /// The variable it was read from (its name only).
    pub variable: String,
}

impl Connection {
    /// The registration a client would POST for it.
    pub fn registration_body(&self) -> Value {
        self.service
            .registration_body(self.auth.as_str(), &[("variable", &self.variable)])
    }
}

/// A variable that did not become a connection, and why (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub variable: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub connections: Vec<Connection>,
    pub skipped: Vec<Skipped>,
}

/// The variables of one connection, by field: (name, value).
struct Group<'a> {
    kind: ServiceKind,
    fields: Vec<(Field, &'a str, &'a str)>,
}

impl<'a> Group<'a> {
    fn get(&self, field: Field) -> Option<(&'a str, &'a str)> {
        self.fields
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|(_, name, value)| (*name, *value))
    }

    /// The first of `fields` present.
    fn first(&self, fields: &[Field]) -> Option<(&'a str, &'a str)> {
        fields.iter().find_map(|f| self.get(*f))
    }
}

/// Reads every connection among `variables` (name, value) into a `Connection` or a skip.
pub fn discover<'a>(variables: impl IntoIterator<Item = (&'a str, &'a str)>) -> Discovery {
    let mut groups: Vec<((ServiceKind, String), Group)> = Vec::new();
    let mut sorted: Vec<(&str, &str)> = variables
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .collect();
    sorted.sort();
    for (name, value) in sorted {
        let Some((kind, connection, field)) = classify(name) else {
            continue;
        };
        let key = (kind, connection);
        let index = match groups.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                groups.push((
                    key,
                    Group {
                        kind,
                        fields: Vec::new(),
                    },
                ));
                groups.len() - 1
            }
        };
        // The first spelling of a field wins (`AZURE_SQL_…` sorts before `Azure_SQL_…`).
        if groups[index].1.get(field).is_none() {
            groups[index].1.fields.push((field, name, value));
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));

    let mut discovery = Discovery::default();
    for (_, group) in &groups {
        match read_group(group) {
            Ok(connection) => {
                let duplicate = discovery.connections.iter().find(|c| {
                    c.service.kind == connection.service.kind
                        && c.service.service_name == connection.service.service_name
                });
                match duplicate {
                    Some(first) => discovery.skipped.push(Skipped {
                        variable: connection.variable,
                        reason: format!("names the same service as {}", first.variable),
                    }),
                    None => discovery.connections.push(connection),
                }
            }
            Err(skipped) => discovery.skipped.push(skipped),
        }
    }
    discovery
}

fn read_group(group: &Group) -> Result<Connection, Skipped> {
    let skip = |variable: &str, why: Why| Skipped {
        variable: variable.to_owned(),
        reason: why.to_owned(),
    };
    let located = match group.kind.row().reader {
        Reader::Storage { service } => storage::read(group, service),
        Reader::Endpoint => endpoints::read(group),
        Reader::Messaging => messaging::read(group),
        Reader::Redis => redis::read(group),
        Reader::Database => databases::read(group),
    };
    let (variable, mut located) = match located {
        Read::Found(variable, located) => (variable, located),
        Read::Malformed(variable, why) => return Err(skip(variable, why)),
        Read::Nothing => {
            let (_, name, _) = group.fields[0];
            return Err(skip(
                name,
                "has no host, endpoint or connection string beside it",
            ));
        }
    };
    // A password given in a variable of its own (`AZURE_SQL_PASSWORD`) makes a secret connection.
    if let Some((_, password)) = group.get(Field::Password) {
        located.secret = true;
        located.secrets.push(password.to_owned());
    }
    let connection = shape(group.kind, variable, &located);
    // Belt and braces: a secret found anywhere in what goes to the table means the value was
    // misread, so nothing of it is registered. Short secrets are not judged (they would match by
    // chance), but a short secret is also no host: `Host::parse` sees to the rest.
    let text = connection.registration_body().to_string();
    if located
        .secrets
        .iter()
        .any(|secret| secret.len() >= 6 && text.contains(secret.as_str()))
    {
        return Err(skip(variable, "could not be read without its secret"));
    }
    Ok(connection)
}

/// What a family's reader made of a connection.
enum Read<'a> {
    /// Where the service is, and the variable that said so.
    Found(&'a str, Located),
    Malformed(&'a str, Why),
    /// None of the variables that say where a service is.
    Nothing,
}

impl<'a> Read<'a> {
    fn from(variable: &'a str, result: Result<Located, Why>) -> Self {
        match result {
            Ok(located) => Read::Found(variable, located),
            Err(why) => Read::Malformed(variable, why),
        }
    }
}

/// The shared convention: name, endpoint and auth from where the service is.
fn shape(kind: ServiceKind, variable: &str, located: &Located) -> Connection {
    let storage = matches!(kind.row().reader, Reader::Storage { .. });
    // Only a storage emulator's path names the account; Redis's `/0` is a database index.
    let hinted = located
        .name_hint
        .as_deref()
        .filter(|_| storage && located.host.is_local_or_address())
        .filter(|hint| crate::domain::ServiceName::parse(hint).is_ok());
    let server = hinted
        .map(str::to_owned)
        .unwrap_or_else(|| located.host.resource_name());
    let service_name = located
        .database
        .as_deref()
        .map(|db| format!("{server}.{db}"))
        .filter(|name| crate::domain::ServiceName::parse(name).is_ok())
        .unwrap_or(server);
    let endpoint = kind.endpoint(
        &located.host.to_url_text(),
        located.port,
        located.plain_http,
    );
    Connection {
        service: BackingService {
            kind,
            service_name,
            endpoint,
        },
        auth: if located.secret {
            AuthType::Secret
        } else {
            AuthType::Identity
        },
        variable: variable.to_owned(),
    }
}

#[cfg(test)]
mod tests;
