//! Domain rules, free of HTTP and storage: what a valid name, endpoint, registration and query is, and
//! how a probe outcome becomes a health verdict. Everything here is a plain function or a
//! parse-don't-validate newtype, unit-tested beside its code.

mod balance;
mod check;
mod circuit;
mod endpoint;
mod expiry;
mod fields;
mod health;
mod keys;
mod query;
mod registration;

pub use balance::{choose, Candidate};
pub use check::{CheckKind, HealthCheck, MAX_CHECK_TIMEOUT};
pub use circuit::{Circuit, CircuitPolicy, CircuitState};
pub use endpoint::{Endpoint, MAX_ENDPOINT_LEN};
pub use expiry::{expires_at, is_expired};
pub use health::{HealthState, HealthVerdict};
pub use keys::{InstanceId, InstanceKey, ServiceName, ServiceType, MAX_KEY_LEN};
pub use query::{continuation_token, DiscoveryQuery, KeySelection, MAX_PAGE_SIZE};
pub use registration::{
    Registration, DEFAULT_WEIGHT, MAX_METADATA_BYTES, MAX_METADATA_KEYS, MAX_TAGS, MAX_TAG_LEN,
    MAX_VERSION_LEN,
};

/// An input the caller got wrong: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// True when the text holds a control character (which Table keys and our stored strings refuse).
fn has_control_char(text: &str) -> bool {
    text.chars().any(char::is_control)
}
