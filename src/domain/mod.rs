//! Domain rules, free of HTTP and storage: what a valid name, endpoint, registration and query is, and
//! how a probe outcome becomes a health verdict. Everything here is a plain function or a
//! parse-don't-validate newtype, unit-tested beside its code.

mod access;
mod balance;
mod check;
mod circuit;
mod cloud_event;
pub mod connector;
pub mod consul;
mod dependencies;
mod describes;
mod eligibility;
mod endpoint;
pub mod events;
mod expiry;
mod fields;
mod health;
mod http_expect;
mod keys;
mod query;
mod queue_name;
mod registration;
mod resolve_query;
mod revision;
mod shard;

pub use access::{Grants, Role, Scope};
pub use balance::{choose, Candidate};
pub use check::{probe_target, CheckKind, HealthCheck, MAX_CHECK_TIMEOUT};
pub use circuit::{Circuit, CircuitPolicy, CircuitState};
pub use cloud_event::{cloud_event, recent_entry, DATA_CONTENT_TYPE, SPEC_VERSION};
pub use dependencies::{
    evaluate, from_stored as depends_on_from_stored, parse_depends_on,
    stored_text as depends_on_text, Dependency, DependencyState, EffectiveStatus, InstanceFacts,
    Judgement, MAX_CHAIN, MAX_DEPENDENCIES,
};
pub use describes::verdict_describes_registration;
pub use eligibility::{eligible, healthy_only, Standing};
pub use endpoint::Endpoint;
pub use expiry::{critical_too_long, expires_at, is_expired};
pub use health::{certificate_warning, HealthState, HealthVerdict};
pub use http_expect::{body_contains, judge_http, ExpectedStatus, EXPECT_BODY_WINDOW};
pub use keys::{InstanceId, InstanceKey, ServiceName, ServiceType};
pub use query::{continuation_token, AttributeFilter, DiscoveryQuery, KeySelection};
pub use queue_name::QueueName;
pub use registration::{Registration, DEFAULT_WEIGHT};
pub use resolve_query::{ResolveQuery, ServiceSelection};
pub use revision::{index_of, micros, next_revision, row_revision, RevisionClock};
pub use shard::{
    cut_shards, KeyRange, ShardFate, ShardMessage, SweepId, DEFAULT_SHARD_SIZE, MAX_RANGES,
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
