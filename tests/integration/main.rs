//! Integration tests for the `handler` binary: one test binary, one shared Azurite.
//!
//! Run with `cargo test --test integration` (needs `npm ci` for node_modules/.bin/azurite-table).

mod harness;
mod harness_selftest;

mod arm_sync;
mod auth;
mod auth_host;
mod circuit;
mod cli;
mod compression;
mod connector_env;
mod connector_env_rows;
mod consul_auth;
mod consul_faults;
mod consul_index;
mod consul_reads;
mod consul_revival;
mod consul_ttl_only;
mod consul_watermarks;
mod consul_writes;
mod contention;
mod cors;
mod dashboard;
mod deploy_contract;
mod discovery;
mod discovery_filters;
mod entra;
mod envelopes;
mod health_checks;
mod health_monitor;
mod instances;
mod interop;
mod invocation_logs;
mod json_errors;
mod lease;
mod managed_identity;
mod metrics;
mod openapi;
mod proxying;
mod rebinding;
mod recipe;
mod registrar;
mod resolver;
mod resources;
mod round_trips;
mod ssrf;
mod ssrf_identity;
mod standalone;
mod startup;
mod state_table;
mod storage_cap;
mod storage_faults;
mod sweep_status;
mod typed_rows;
mod why_and_when;
