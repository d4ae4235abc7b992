//! The rows of ServiceRegistry and HealthStatus: decoded once, here, into domain types.
//!
//! Writing: property names and types are exactly the recipe's (every property a string except
//! `responseTime`, an Int32), so the Node functions and this handler can share a table. Every
//! number is written with its `@odata.type` (see `properties`): the service would otherwise type it
//! by its value, and a whole `responseTimeEwma` would become an Int32.
//! Reading: rows may come from other clients, so every property is read tolerantly: a missing string
//! falls back to something sensible, numbers may come in any numeric shape, malformed `tags`/`metadata`
//! text yields `[]`/`{}` rather than failing the whole listing, and a time, status or circuit this
//! handler cannot read is kept as text (`Stored`) and counts as absent for every rule: an unknown
//! status as never checked, an unreadable `lastHeartbeat` as fresh (never expired).
//!
//! `from_entity` and `to_entity` are the only code that knows property names and spellings; every
//! consumer (discovery, the resolver, the sweep, expiry) reads the typed fields and methods. One
//! file per table: `service.rs` (ServiceRegistry), `status.rs` (HealthStatus).

mod service;
mod status;

pub use service::{ConsulFields, ServiceRecord};
pub use status::{HealthByKey, HealthRecord};

/// The bytes of a cached row's texts, for its cache weight.
fn text_weight<'a>(texts: impl IntoIterator<Item = &'a str>) -> usize {
    texts.into_iter().map(str::len).sum()
}

/// An entity as the Tables crate hands it over, from a JSON object: what the codecs' tests read.
#[cfg(test)]
fn entity(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().expect("a JSON object").clone()
}
