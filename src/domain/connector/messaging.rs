//! Service Bus and Event Hubs: a fully qualified namespace (identity) or a namespace connection
//! string (`Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…`).
//! Both speak AMQP over TLS on 5671 unless the value says otherwise.

use super::values::{self, get, host_port, pairs, secrets_of, Located, Why};
use super::{Field, Group, Read};

pub(super) fn read<'a>(group: &Group<'a>) -> Read<'a> {
    if let Some((name, value)) = group.get(Field::FullyQualifiedNamespace) {
        return Read::from(name, namespace(value));
    }
    if let Some((name, value)) = group.get(Field::ConnectionString) {
        return Read::from(name, connection_string(value));
    }
    Read::Nothing
}

/// `<ns>.servicebus.windows.net`, with a port or an `sb://` scheme if someone wrote one.
fn namespace(text: &str) -> Result<Located, Why> {
    if text.contains("://") {
        return values::url(text);
    }
    let (host, port) = host_port(text.trim_end_matches('/'))?;
    Ok(Located::at(host, port))
}

fn connection_string(text: &str) -> Result<Located, Why> {
    let pairs = pairs(text, ';').ok_or("is not a connection string of key=value pairs")?;
    let endpoint = get(&pairs, &["endpoint"]).ok_or("has no Endpoint=sb://…")?;
    let mut located = namespace(endpoint)?;
    located.secrets.extend(secrets_of(&pairs));
    located.secret = !located.secrets.is_empty();
    Ok(located)
}
