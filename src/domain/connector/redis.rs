//! Azure Cache for Redis: `AZURE_REDIS_HOST` (and `_PORT`, `_PASSWORD` for the "other" client
//! type), or a connection string in StackExchange.Redis's form (`<host>:6380,password=…,ssl=True`)
//! or as a URL (`rediss://:<key>@<host>:6380/0`, what Java, Python, Go and Node.js get).

use super::databases::host_with_port_variable;
use super::values::{self, host_port, pairs, secrets_of, Located, Why};
use super::{Field, Group, Read};

pub(super) fn read<'a>(group: &Group<'a>) -> Read<'a> {
    if group.get(Field::Host).is_some() {
        return host_with_port_variable(group, &[Field::Host]);
    }
    if let Some((name, value)) = group.get(Field::ConnectionString) {
        return Read::from(name, connection_string(value));
    }
    Read::Nothing
}

fn connection_string(text: &str) -> Result<Located, Why> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("redis://") || lower.starts_with("rediss://") {
        return values::url(text);
    }
    // StackExchange.Redis: endpoints first, then options, comma-separated.
    let (endpoint, options) = text.split_once(',').unwrap_or((text, ""));
    if endpoint.contains('=') {
        return Err("is neither a redis(s):// URL nor host:port,options");
    }
    let (host, port) = host_port(endpoint)?;
    let mut located = Located::at(host, port);
    let options = pairs(options, ',').ok_or("has an option that is not key=value")?;
    located.secrets = secrets_of(&options);
    located.secret = !located.secrets.is_empty();
    Ok(located)
}
