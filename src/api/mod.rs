//! The HTTP surface: one thin handler per function, each in its own file, plus the shared state.
//!
//! Handlers parse input into domain types, call the store, and shape the response; every failure is
//! an `ApiError` returned with `?`. These routes serve forwarded requests (`/api/<Function>`) directly
//! and invocation envelopes through `host`, which replays them here.

pub mod consul;
mod dashboard;
mod discovery;
mod heartbeat;
mod instance_view;
mod limits;
mod offload;
pub mod openapi;
mod registrar;
mod resolver;
mod sweep;

use crate::error::{ApiError, ApiResult};
use crate::health::Prober;
use crate::security::{self, Security};
use crate::serve::BodyTimedOut;
use crate::store::{ReadCache, Store};
use crate::sweep_job::SweepJob;
use axum::http::Method;
use axum::routing::{get, post};
use axum::Router;
use discovery::RenderedPage;
use serde_json::Value;
use std::sync::Arc;

pub use limits::refuse_oversized;

/// Largest registration body we read (the contract's 413 limit); far under Table Storage's limits.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The sweep's prober, whose SSRF policy registration applies up front. Sweeps are reached
    /// only through `sweep_job`, so none can skip Service Connector discovery.
    pub prober: Prober,
    /// What the timer and manual runs trigger: Service Connector discovery, then the sweep.
    pub sweep_job: SweepJob,
    /// Rendered discovery pages, invalidated with the store's read cache.
    pub pages: Arc<ReadCache<RenderedPage, ApiError>>,
    /// Who may call: every `/api` route admits its caller through it first.
    pub security: Arc<Security>,
    /// The OpenAPI document `GET /api/openapi.json` serves.
    pub openapi: Arc<OpenApiDocument>,
    /// The Consul-compatible API's settings and catalog snapshot (`/v1/...`).
    pub consul: Arc<consul::ConsulApi>,
}

impl AppState {
    /// `openapi` builds the document; whoever knows every route passes it
    /// (`host::openapi_document`).
    pub fn new(
        store: Store,
        prober: Prober,
        sweep_job: SweepJob,
        security: Security,
        consul: crate::configuration::ConsulSettings,
        openapi: fn() -> Vec<u8>,
    ) -> Self {
        AppState {
            pages: Arc::new(store.derived_cache()),
            consul: Arc::new(consul::ConsulApi::new(store.clone(), consul)),
            store,
            prober,
            sweep_job,
            security: Arc::new(security),
            openapi: Arc::new(OpenApiDocument {
                build: openapi,
                built: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Removes one registration (both APIs' deregistrations come here) and, when a row was
    /// there, keeps its `.deregistered` event for the next sweep to publish (best effort: the
    /// registration is gone either way). `false`: nothing was registered under the key.
    pub async fn deregister(&self, key: &crate::domain::InstanceKey) -> ApiResult<bool> {
        let removed = self.store.deregister(key).await?;
        if removed {
            let events = self.sweep_job.monitor().events();
            events.record_deregistration(&self.store, key).await;
        }
        Ok(removed)
    }
}

/// The OpenAPI document, built on the first request for it rather than at start-up: generating it
/// was the largest part of what the handler did before it could answer the host's first `GET /`
/// (docs/performance.md, "Cold start"), and most processes never serve it.
pub struct OpenApiDocument {
    build: fn() -> Vec<u8>,
    built: std::sync::OnceLock<axum::body::Bytes>,
}

impl OpenApiDocument {
    pub fn bytes(&self) -> axum::body::Bytes {
        self.built.get_or_init(|| (self.build)().into()).clone()
    }
}

/// The `/api/*` routes, each behind the authentication layer (an unknown route is a 404 for
/// anyone). Envelopes replayed through this router are authenticated by the headers inside them.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/ServiceRegistrar",
            post(registrar::register)
                .delete(registrar::deregister)
                .fallback(|method: Method| async move { not_allowed(method, "POST, DELETE") }),
        )
        .route(
            "/api/ServiceHeartbeat",
            post(heartbeat::heartbeat)
                .fallback(|method: Method| async move { not_allowed(method, "POST") }),
        )
        .route(
            "/api/ServiceResolver",
            get(resolver::resolve)
                .fallback(|method: Method| async move { not_allowed(method, "GET") }),
        )
        .route(
            "/api/ServiceDiscovery",
            get(discovery::discover)
                .fallback(|method: Method| async move { not_allowed(method, "GET") }),
        )
        .route(
            "/api/Sweep",
            get(sweep::last_sweep)
                .fallback(|method: Method| async move { not_allowed(method, "GET") }),
        )
        .route(
            "/api/openapi.json",
            get(openapi::openapi_json)
                .fallback(|method: Method| async move { not_allowed(method, "GET") }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::authenticate,
        ))
        // After the authentication layer, so outside it: the page holds no data (see dashboard.rs).
        .route(
            "/api/Dashboard",
            get(dashboard::page)
                .fallback(|method: Method| async move { not_allowed(method, "GET") }),
        )
        .merge(consul::router(state.clone()))
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        // Here as well as around the whole app: envelope replays come through this router only.
        .layer(axum::middleware::from_fn(refuse_oversized))
        .with_state(state)
}

/// Responses at least this long are compressed when the client accepts it; shorter ones cost more
/// to compress than they save.
const COMPRESS_FROM_BYTES: u16 = 1024;

/// gzip or brotli for the `/api` routes as clients call them (forwarded or standalone), when the
/// client's `Accept-Encoding` asks for one, with `Vary: Accept-Encoding`. Not for the envelope
/// routes: they carry the body as a JSON string, and replay requests through `router` without it.
/// Level 4 for both: brotli's default (11) spends seconds on a 10,000-service answer. A body of
/// unknown length (a large discovery page, streamed) is compressed; a 304 has none and is not.
pub fn compression(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Precise(4))
        .compress_when(SizeAbove::new(COMPRESS_FROM_BYTES).and(NotForContentType::IMAGES))
}

/// Reads at most `MAX_BODY_BYTES` of JSON; a longer body is a 413 whether or not it declared its
/// length. Any content type is accepted: `curl -d` without `-H 'Content-Type: application/json'`
/// must work.
async fn read_json_body(body: axum::body::Body) -> ApiResult<Value> {
    let bytes = read_body(body, MAX_BODY_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("body", format!("the request body is not valid JSON: {e}"))
    })
}

/// Reads at most `limit` bytes; a longer body is a 413 whether or not it declared its length.
pub async fn read_body(body: axum::body::Body, limit: usize) -> ApiResult<axum::body::Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // The cause sits a few wrappers down (axum's error, the limiter's box): walk the chain.
        let chain: Vec<_> =
            std::iter::successors(std::error::Error::source(&e), |s| s.source()).collect();
        if chain
            .iter()
            .any(|s| s.is::<http_body_util::LengthLimitError>())
        {
            ApiError::PayloadTooLarge { limit }
        } else if let Some(late) = chain.iter().find_map(|s| s.downcast_ref::<BodyTimedOut>()) {
            ApiError::BodyTimeout {
                limit_ms: late.0.as_millis(),
            }
        } else {
            ApiError::bad_request("body", format!("could not read the request body: {e}"))
        }
    })
}

pub fn not_allowed(method: Method, allowed: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allowed,
    }
}
