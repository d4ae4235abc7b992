//! Key Vault and Cosmos DB for NoSQL: https endpoints. Key Vault has only its resource endpoint
//! (no secret form); Cosmos DB also `AccountEndpoint=https://…:443/;AccountKey=…`. Its other APIs
//! (MongoDB, Cassandra, Gremlin, Table) use the same `AZURE_COSMOS_CONNECTIONSTRING` for strings
//! of their own shape, which name other hosts: those are skipped, not guessed at.

use super::values::{self, get, pairs, secrets_of, Located, Why};
use super::{Field, Group, Read};

pub(super) fn read<'a>(group: &Group<'a>) -> Read<'a> {
    if let Some((name, value)) = group.get(Field::ResourceEndpoint) {
        return Read::from(name, values::http_url(value));
    }
    if let Some((name, value)) = group.get(Field::ConnectionString) {
        return Read::from(name, cosmos_connection_string(value));
    }
    Read::Nothing
}

fn cosmos_connection_string(text: &str) -> Result<Located, Why> {
    const NOT_NOSQL: Why =
        "is not a Cosmos DB for NoSQL connection string (AccountEndpoint=…;AccountKey=…)";
    let pairs = pairs(text, ';').ok_or(NOT_NOSQL)?;
    let endpoint = get(&pairs, &["accountendpoint"]).ok_or(NOT_NOSQL)?;
    let mut located = values::http_url(endpoint)?;
    located.secrets.extend(secrets_of(&pairs));
    located.secret = !located.secrets.is_empty();
    Ok(located)
}
