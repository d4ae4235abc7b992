//! A service registry that runs as an Azure Functions custom handler on Azure Table Storage.
//!
//! Services register (`ServiceRegistrar`), clients discover healthy instances (`ServiceDiscovery`),
//! and a timer sweeps health checks (`HealthMonitor`). The layers (`docs/architecture.md` has their
//! data flows, the tables and the key rules):
//!
//! - `host`: the Functions host protocol only (invocation envelopes ↔ plain requests);
//! - `api`: thin HTTP handlers, one file per function;
//! - `domain`: keys, registration rules, queries and health verdicts, pure and unit-tested;
//! - `health`: probes and the bounded-concurrency sweep;
//! - `store`: the three tables, the only module that knows the Tables crate;
//! - `identity`: the managed-identity credential the store's table client and the ARM client sign
//!   with when there is no secret;
//! - `connector`: Service Connector discovery: self-registration from this app's variables, and the
//!   sync from Azure Resource Manager's linkers;
//! - `sweep_job`: what a HealthMonitor trigger runs: Service Connector discovery, then the sweep;
//! - `security`: who is calling (API keys, Entra ID tokens, the platform's principal) and from
//!   which browser origin, in front of every function;
//! - `configuration`, `telemetry`, `scheduler`, `startup`, `serve` (the server loop and its
//!   connection limits): process concerns;
//! - `metrics`: the Prometheus counters, a leaf every layer counts into (it imports nothing of the
//!   crate; `startup` serves them);
//! - `error`: the one error type and its mapping to HTTP statuses.

pub mod api;
pub mod configuration;
pub mod connector;
pub mod domain;
pub mod error;
pub mod health;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod scheduler;
pub mod security;
pub mod serve;
pub mod startup;
pub mod store;
pub mod sweep_job;
pub mod telemetry;

/// Now, as the recipe's `new Date().toISOString()` writes it: UTC with milliseconds and `Z`.
pub fn now_iso() -> String {
    iso(chrono::Utc::now())
}

/// A time as the recipe writes them: UTC with milliseconds and `Z`.
pub fn iso(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses a stored time; rows from other clients may hold anything, so failure is `None`.
pub fn parse_iso(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}
