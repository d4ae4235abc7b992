//! The Consul-compatible API at `/v1/...` (docs/consul.md): the same rows as `/api/*`, in Consul's
//! model and shapes, so tools that ship a Consul client discover through the registry unchanged.
//!
//! One file per concern:
//!
//! - `mod.rs` (this file): the router, the shared state, the token carriers, the headers every read
//!   carries, and plain-text errors;
//! - `entry`: one row in Consul's terms; `snapshot`: the whole catalog, built once per change and
//!   shared; `hold`: blocking reads; `render`: Consul's JSON shapes as typed structs;
//! - `catalog`, `health`, `agent`, `kv`: the reads, by Consul's endpoint groups;
//! - `writes`: registration, deregistration and check updates (agent and catalog forms).
//!
//! The routes sit behind the same authentication layer and `Host` check as `/api/*`. A token may
//! come as `X-Consul-Token`, `?token=` or `Authorization: Bearer` (Consul's carriers); the first two
//! are handed to the layer as a bearer credential, so keys, Entra tokens, roles and scopes are the
//! native API's. Errors are plain text, as Consul's are.

mod agent;
mod catalog;
mod entry;
mod filters;
mod health;
mod hold;
mod kv;
mod render;
mod snapshot;
mod writes;

pub use snapshot::ConsulCatalog;

use super::{not_allowed, AppState};
use crate::configuration::{ConsulSettings, UncheckedStatus};
use crate::domain::consul::{CheckStatus, ConsulQuery};
use crate::error::{ApiError, ApiResult};
use crate::security::{self, Caller};
use crate::store::Store;
use axum::body::Body;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put, MethodRouter};
use axum::Router;
use entry::Entry;
use serde::Serialize;
use std::sync::Arc;

/// What the Consul routes share: their settings and the catalog snapshot.
pub struct ConsulApi {
    pub settings: ConsulSettings,
    pub catalog: ConsulCatalog,
}

impl ConsulApi {
    pub fn new(store: Store, settings: ConsulSettings) -> Self {
        let never_checked = match settings.unchecked_status {
            UncheckedStatus::Passing => CheckStatus::Passing,
            UncheckedStatus::Warning => CheckStatus::Warning,
            UncheckedStatus::Critical => CheckStatus::Critical,
        };
        ConsulApi {
            catalog: ConsulCatalog::new(store, never_checked),
            settings,
        }
    }
}

/// The `/v1` routes, each behind the authentication layer, with Consul's token carriers.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/agent/self", reads(agent::self_info))
        .route("/v1/agent/services", reads(agent::services))
        .route("/v1/agent/service/{id}", reads(agent::service))
        .route("/v1/agent/checks", reads(agent::checks))
        .route("/v1/status/leader", reads(agent::leader))
        .route("/v1/status/peers", reads(agent::peers))
        .route("/v1/catalog/datacenters", reads(catalog::datacenters))
        .route("/v1/catalog/services", reads(catalog::services))
        .route("/v1/catalog/service/{name}", reads(catalog::service))
        .route("/v1/catalog/nodes", reads(catalog::nodes))
        .route("/v1/health/service/{name}", reads(health::service))
        .route("/v1/health/checks/{name}", reads(health::checks))
        .route("/v1/health/state/{state}", reads(health::state))
        .route("/v1/kv/{*key}", reads(kv::get))
        .route("/v1/agent/service/register", writes(writes::register))
        .route(
            "/v1/agent/service/deregister/{id}",
            writes(writes::deregister),
        )
        .route("/v1/agent/check/pass/{id}", writes(writes::check_pass))
        .route("/v1/agent/check/warn/{id}", writes(writes::check_warn))
        .route("/v1/agent/check/fail/{id}", writes(writes::check_fail))
        .route("/v1/agent/check/update/{id}", writes(writes::check_update))
        .route("/v1/catalog/register", writes(writes::catalog_register))
        .route("/v1/catalog/deregister", writes(writes::catalog_deregister))
        .route_layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::authenticate,
        ))
        .route_layer(axum::middleware::from_fn(token_as_bearer))
        .layer(axum::middleware::from_fn(plain_text_errors))
}

/// A read route: `GET`, any other method a 405.
fn reads<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    get(handler).fallback(|m: Method| async move { not_allowed(m, "GET") })
}

/// A write route: `PUT` (Consul's clients send every write as one), any other method a 405.
fn writes<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    put(handler).fallback(|m: Method| async move { not_allowed(m, "PUT") })
}

/// Hands `X-Consul-Token` or `?token=` to the authentication layer as `Authorization: Bearer`,
/// unless the request carries a bearer token already (Consul reads `?token=` first, then
/// `X-Consul-Token`, then the bearer header; here an explicit bearer token wins). Any other
/// `Authorization` (a proxy's `Basic` credential) says nothing to this registry and is replaced.
async fn token_as_bearer(mut request: Request, next: Next) -> Response {
    if !has_bearer(&request) {
        let from_query = request.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, v)| k == "token" && !v.is_empty())
                .map(|(_, v)| v.into_owned())
        });
        let from_header = request
            .headers()
            .get("x-consul-token")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if let Some(token) = from_query.or(from_header) {
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                request.headers_mut().insert(header::AUTHORIZATION, value);
            }
        }
    }
    next.run(request).await
}

/// Whether the request carries `Authorization: Bearer …` (the scheme in any case).
fn has_bearer(request: &Request) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().get(..7))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
}

/// Consul answers errors in plain text, and its clients put that text in their exceptions: the
/// JSON error every `ApiError` becomes (`error.rs`) is rewritten here to its message, prefixed
/// with the field it names when the message does not already name it. Status and headers
/// (`Retry-After`, `Allow`, `WWW-Authenticate`) stay.
async fn plain_text_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status().as_u16() < 400 || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, "error").into_response();
    };
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let message = json["error"].as_str().unwrap_or("error").to_owned();
    let text = match json["field"].as_str() {
        Some(field) if !message.contains(field) => format!("{field}: {message}"),
        _ => message,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(text))
}

/// The query string, parsed; a `dc` other than ours is Consul's own error.
fn parse_query(uri: &Uri, settings: &ConsulSettings) -> ApiResult<ConsulQuery> {
    let pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let query = ConsulQuery::parse(&pairs)?;
    if query
        .dc
        .as_ref()
        .is_some_and(|dc| *dc != settings.datacenter)
    {
        return Err(ApiError::NoPathToDatacenter);
    }
    Ok(query)
}

/// A read's answer: the body as JSON with Consul's headers. The index is never below 1.
fn answer<T: Serialize>(index: u64, body: &T) -> ApiResult<Response> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::Internal(format!("rendering a Consul answer: {e}")))?;
    Ok(with_index(StatusCode::OK, index, bytes))
}

fn with_index(status: StatusCode, index: u64, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        HeaderName::from_static("x-consul-index"),
        HeaderValue::from(index.max(1)),
    );
    headers.insert(
        HeaderName::from_static("x-consul-knownleader"),
        HeaderValue::from_static("true"),
    );
    headers.insert(
        HeaderName::from_static("x-consul-lastcontact"),
        HeaderValue::from_static("0"),
    );
    response
}

/// Whether the caller may see this entry (the native read scope, by type and name).
fn visible(caller: &Caller, entry: &Entry) -> bool {
    caller
        .read_scope()
        .covers(&entry.partition_key, &entry.name)
}

/// Where every catalog and health read starts: the entries the caller may read, or none when
/// `node-meta` asks for metadata the nodes do not carry (every node carries the same, so it is
/// judged once per request, not per entry).
fn readable<'a>(
    entries: &'a [Entry],
    caller: &'a Caller,
    query: &ConsulQuery,
) -> impl Iterator<Item = &'a Entry> + 'a {
    let entries = if filters::node_meta_matches(query) {
        entries
    } else {
        &[]
    };
    entries.iter().filter(move |e| visible(caller, e))
}

/// The shared state's Consul half.
fn consul(state: &AppState) -> &Arc<ConsulApi> {
    &state.consul
}
