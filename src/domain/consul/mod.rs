//! The pure half of the Consul-compatible API: what a Consul client's query string, `filter`
//! expression and register body mean, and which check status an instance shows. No I/O and no
//! clock; the endpoints (`api::consul`) parse with these and answer from the store.
//!
//! - `query`: `ConsulQuery`, the query string of every read (blocking `index`/`wait`, `tag`,
//!   `passing`, `node-meta`, `filter`, `?token=`, the consistency flags).
//! - `filter`: `Filter`, the `filter` expression (go-bexpr's grammar, a schema per endpoint).
//! - `register`: `ConsulRegistration`, a register body (agent or catalog) read into the native
//!   `Registration` plus its Consul-only parts (checks, `DeregisterCriticalServiceAfter`).
//! - `status`: `CheckStatus` and the one mapping from recorded health to it; `/v1/health/state/<state>`;
//!   the body of a check update.
//!
//! Sources followed are cited in each file's docs; where Consul's behaviour was unclear, the strict,
//! documented choice was taken.

mod duration;
mod filter;
mod query;
mod register;
mod status;

pub use filter::{
    FieldValue, Filter, FilterSchema, FilterSubject, MAX_FILTER_DEPTH, MAX_FILTER_LEN,
};
pub use query::{ConsulQuery, DEFAULT_WAIT, MAX_WAIT};
pub use register::{ConsulCheck, ConsulCheckKind, ConsulDefaults, ConsulRegistration};
pub use status::{
    check_status, CheckStatus, CheckUpdate, HealthFacts, StateFilter, MAX_CHECK_OUTPUT,
};
