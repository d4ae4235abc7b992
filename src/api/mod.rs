//! The HTTP surface: one thin handler per function, each in its own file, plus the shared state.
//!
//! Handlers parse input into domain types, call the store, and shape the response; every failure is
//! an `ApiError` returned with `?`. These routes serve forwarded requests (`/api/<Function>`) directly
//! and invocation envelopes through `functions`, which replays them here.

mod discovery;
mod health_monitor;
mod registrar;

pub use health_monitor::sweep_once;

use crate::error::ApiError;
use crate::health::{Prober, SweepSettings};
use crate::store::Store;
use axum::http::Method;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Largest registration body we read (the contract's 413 limit); far under Table Storage's limits.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub prober: Prober,
    pub sweep: SweepSettings,
    /// One sweep at a time in this process (a manual run must not overlap the schedule).
    pub sweep_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The `/api/*` routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/ServiceRegistrar",
            post(registrar::register)
                .fallback(|method: Method| async move { not_allowed(method, "POST") }),
        )
        .route(
            "/api/ServiceDiscovery",
            get(discovery::discover)
                .fallback(|method: Method| async move { not_allowed(method, "GET") }),
        )
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .with_state(state)
}

fn not_allowed(method: Method, allowed: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allowed,
    }
}
