//! Azure SQL, PostgreSQL and MySQL: host, port and database variables (Node.js, Python, Django,
//! PHP, Ruby), or a connection string in the client's own form: ADO.NET (`Server=tcp:x,1433;
//! Database=…`, `Data Source=x,1433;Initial Catalog=…`), JDBC (`jdbc:sqlserver://x:1433;database=…`,
//! `jdbc:postgresql://x:5432/db?…`, `jdbc:mysql://x:3306/db?…`), Go (`server=x;port=1433;…`,
//! `user@tcp(x:3306)/db?…`), and libpq's keywords (`host=x port=5432 dbname=…`).

use super::values::{self, get, host_port, pairs, port, secrets_of, Host, Located, Why};
use super::{Field, Group, Read, ServiceKind};

pub(super) fn read<'a>(group: &Group<'a>) -> Read<'a> {
    if group.first(&[Field::Server, Field::Host]).is_some() {
        return host_with_port_variable(group, &[Field::Server, Field::Host]);
    }
    if let Some((name, value)) = group.get(Field::ConnectionString) {
        return Read::from(name, connection_string(group.kind, value));
    }
    Read::Nothing
}

/// A host variable with its port and database variables beside it (shared with Redis).
pub(super) fn host_with_port_variable<'a>(group: &Group<'a>, hosts: &[Field]) -> Read<'a> {
    let (name, value) = group.first(hosts).expect("caller checked");
    let (host, inline_port) = match host_port(value) {
        Ok(found) => found,
        Err(why) => return Read::Malformed(name, why),
    };
    let mut located = Located::at(host, inline_port);
    if let Some((port_name, port_value)) = group.get(Field::Port) {
        match port(port_value) {
            Ok(p) => located.port = Some(p),
            Err(why) => return Read::Malformed(port_name, why),
        }
    }
    if group.kind != ServiceKind::Redis {
        located.database = group
            .first(&[Field::Database, Field::Name, Field::DbName])
            .map(|(_, db)| db.trim().to_owned());
    }
    Read::Found(name, located)
}

fn connection_string(kind: ServiceKind, text: &str) -> Result<Located, Why> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if let Some(rest) = lower
        .starts_with("jdbc:sqlserver://")
        .then(|| &text["jdbc:sqlserver://".len()..])
    {
        return jdbc_sqlserver(rest);
    }
    if let Some(rest) = lower.starts_with("jdbc:").then(|| &text["jdbc:".len()..]) {
        return url_form(rest);
    }
    if lower.starts_with("postgres://")
        || lower.starts_with("postgresql://")
        || lower.starts_with("mysql://")
    {
        return url_form(text);
    }
    if kind == ServiceKind::MySql && lower.contains("tcp(") {
        return go_mysql(text);
    }
    if !text.contains(';') && lower.contains("host=") {
        return libpq_keywords(text);
    }
    ado_net(text)
}

/// `x:1433;databaseName=d;user=…;password=…;`
fn jdbc_sqlserver(rest: &str) -> Result<Located, Why> {
    let (address, properties) = rest.split_once(';').unwrap_or((rest, ""));
    let (host, port) = host_port(address.trim_end_matches('/'))?;
    let properties = pairs(properties, ';').ok_or("has a property that is not key=value")?;
    let mut located = Located::at(host, port);
    located.database = get(&properties, &["databasename", "database"]).map(str::to_owned);
    with_secrets(located, secrets_of(&properties))
}

/// `postgresql://x:5432/db?sslmode=require&user=…&password=…` (and MySQL's alike).
fn url_form(text: &str) -> Result<Located, Why> {
    let mut located = values::url(text)?;
    located.database = located.name_hint.take();
    Ok(located)
}

/// `user[:password]@tcp(host:port)/db?tls=true`
fn go_mysql(text: &str) -> Result<Located, Why> {
    const BAD: Why = "is not a Go MySQL DSN (user@tcp(host:port)/database)";
    let start = text.to_ascii_lowercase().find("tcp(").ok_or(BAD)?;
    let user_info = text[..start].trim_end_matches('@');
    let after = &text[start + 4..];
    let (address, rest) = after.split_once(')').ok_or(BAD)?;
    let (host, port) = host_port(address)?;
    let mut located = Located::at(host, port);
    located.database = rest
        .strip_prefix('/')
        .map(|db| db.split('?').next().unwrap_or_default().to_owned())
        .filter(|db| !db.is_empty());
    let password = user_info.split_once(':').map(|(_, p)| p.to_owned());
    with_secrets(located, password.into_iter().collect())
}

/// `host=x port=5432 dbname=d sslmode=require user=… password=…`
fn libpq_keywords(text: &str) -> Result<Located, Why> {
    let pairs = pairs(text, ' ').ok_or("is not a list of keyword=value settings")?;
    let (host, inline_port) = host_port(get(&pairs, &["host"]).ok_or("names no host")?)?;
    let mut located = Located::at(host, inline_port);
    if let Some(p) = get(&pairs, &["port"]) {
        located.port = Some(port(p)?);
    }
    located.database = get(&pairs, &["dbname"]).map(str::to_owned);
    with_secrets(located, secrets_of(&pairs))
}

/// `Server=tcp:x,1433;Database=d;…`, `Data Source=x,1433;Initial Catalog=d;…`, `server=x;port=…`.
fn ado_net(text: &str) -> Result<Located, Why> {
    let pairs = pairs(text, ';').ok_or("is not a connection string of key=value pairs")?;
    let server = get(
        &pairs,
        &[
            "server",
            "data source",
            "host",
            "address",
            "addr",
            "network address",
        ],
    )
    .ok_or("names no server")?;
    let server = strip_prefix_ignoring_case(server, "tcp:");
    let (address, comma_port) = match server.split_once(',') {
        Some((address, p)) => (address, Some(port(p)?)),
        None => (server, None),
    };
    let (host, inline_port): (Host, Option<u16>) = host_port(address)?;
    let mut located = Located::at(host, comma_port.or(inline_port));
    if let Some(p) = get(&pairs, &["port"]) {
        located.port = Some(port(p)?);
    }
    located.database = get(&pairs, &["database", "initial catalog", "dbname"]).map(str::to_owned);
    with_secrets(located, secrets_of(&pairs))
}

fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

fn with_secrets(mut located: Located, secrets: Vec<String>) -> Result<Located, Why> {
    located
        .secrets
        .extend(secrets.into_iter().filter(|s| !s.is_empty()));
    located.secret = !located.secrets.is_empty();
    Ok(located)
}
