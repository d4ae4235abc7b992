//! The handler's own store client, built from the settings a test names, for tests that assert
//! what the library itself does against Azurite (queues, state rows) rather than through HTTP.

use service_registry::configuration::Settings;
use service_registry::store::{StorageQueue, Store};

/// The store for `connection_string`, with a storage timeout of 5 s and the given extra settings
/// (`STATE_TABLE`, say).
pub fn library_store(connection_string: &str, extra: &[(&str, &str)]) -> Store {
    let settings = Settings::from_lookup(|var| match var {
        "STORAGE_CONNECTION_STRING" => Some(connection_string.to_owned()),
        "STORAGE_TIMEOUT_MS" => Some("5000".to_owned()),
        _ => extra
            .iter()
            .find(|(name, _)| *name == var)
            .map(|(_, value)| (*value).to_owned()),
    })
    .expect("settings");
    Store::connect(&settings.storage).expect("store")
}

/// A Storage Queue of the tests' Azurite, through the handler's own client.
pub fn storage_queue(connection_string: &str, name: &str) -> StorageQueue {
    library_store(connection_string, &[])
        .queue(name)
        .expect("a queue endpoint")
}
