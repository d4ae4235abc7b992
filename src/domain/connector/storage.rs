//! Storage tables, blobs and queues: a resource endpoint (identity) or an account connection
//! string (`DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…`, or one
//! with its own `TableEndpoint=`/`BlobEndpoint=`/`QueueEndpoint=`).

use super::values::{self, get, pairs, secrets_of, Host, Located, Why};
use super::{Field, Group, Read};

/// `service`: which of the account's endpoints (`table`, `blob`, `queue`), from the kind's row.
pub(super) fn read<'a>(group: &Group<'a>, service: &str) -> Read<'a> {
    if let Some((name, value)) = group.get(Field::ResourceEndpoint) {
        return Read::from(name, values::http_url(value));
    }
    if let Some((name, value)) = group.get(Field::ConnectionString) {
        return Read::from(name, connection_string(service, value));
    }
    Read::Nothing
}

fn connection_string(service: &str, text: &str) -> Result<Located, Why> {
    let pairs = pairs(text, ';').ok_or("is not a connection string of key=value pairs")?;
    if get(&pairs, &["usedevelopmentstorage"]).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err("is a development-storage connection string, which names no account endpoint");
    }
    let mut located = match get(&pairs, &[&format!("{service}endpoint")]) {
        Some(endpoint) => values::http_url(endpoint)?,
        None => {
            let account = get(&pairs, &["accountname"])
                .ok_or("names neither an account nor an endpoint for this service")?;
            let suffix = get(&pairs, &["endpointsuffix"]).unwrap_or("core.windows.net");
            let host = Host::parse(&format!("{account}.{service}.{suffix}"))?;
            let mut located = Located::at(host, None);
            located.plain_http = get(&pairs, &["defaultendpointsprotocol"])
                .is_some_and(|p| p.eq_ignore_ascii_case("http"));
            located
        }
    };
    located.secrets.extend(secrets_of(&pairs));
    located.secret = !located.secrets.is_empty();
    Ok(located)
}
