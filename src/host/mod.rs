//! The Azure Functions custom-handler protocol, and nothing else (see
//! `docs/functions-host-protocol.md`).
//!
//! The host reaches us two ways. Forwarded HTTP (`enableForwardingHttpRequest`) arrives as the caller's
//! own request on its public path (`/api/<Function>`, `/v1/...` for `ConsulApi`: host.json's
//! `routePrefix` is empty and each function.json names its whole route) and needs nothing from this
//! module. Everything else arrives as an
//! invocation envelope, `POST /<Function>` with `{"Data": {...}, "Metadata": {...}}`, and must be
//! answered with `{"Outputs": {...}, "Logs": [...], "ReturnValue": null}`. For HTTP functions we unwrap
//! the envelope into an ordinary request, replay it through the same `/api` router, and wrap the
//! response into `Outputs.res`, so both modes run exactly the same handler code.
//!
//! Envelopes are the host's protocol, so a standalone handler does not serve them (they are 404s
//! there, like any unknown route), except `POST /HealthMonitor`: the manual sweep, for admins.

mod envelope;
mod openapi;
mod queue_trigger;

use crate::api::{self, AppState};
use crate::error::ApiError;
use crate::health::SweepTrigger;
use crate::metrics::{counting_invocation, InvocationCounts};
use crate::security::{self, AuthRecord, Caller};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use envelope::{HttpRequestData, InvocationReply, TimerInfo};
use serde_json::Value;
use tower::ServiceExt;

pub use openapi::document as openapi_document;

/// The HTTP functions: each one's name (its folder, and its envelope route `POST /<name>`) and its
/// route template, exactly the `route` of its function.json (host.json's `routePrefix` is empty, so
/// that is the whole public path; the integration test `host_routes` checks the two agree).
const HTTP_FUNCTIONS: [(&str, &str); 8] = [
    ("ServiceRegistrar", "api/ServiceRegistrar"),
    ("ServiceDiscovery", "api/ServiceDiscovery"),
    ("ServiceHeartbeat", "api/ServiceHeartbeat"),
    ("ServiceResolver", "api/ServiceResolver"),
    ("Sweep", "api/Sweep"),
    ("OpenApi", "api/openapi.json"),
    ("Dashboard", "api/Dashboard"),
    ("ConsulApi", CONSUL_ROUTE),
];

/// The Consul-compatible API's route: everything under `/v1/`.
const CONSUL_ROUTE: &str = "v1/{*path}";

/// The function a request path belongs to, for metrics: its public path (forwarded) or `/<name>`
/// (an envelope), the timer's envelope, the readiness probe; anything else is `other`, so unknown
/// paths cannot add series.
pub fn function_name(path: &str) -> &'static str {
    if path == "/" {
        return "readiness";
    }
    if path == "/HealthMonitor" {
        return "HealthMonitor";
    }
    if path == "/ProbeShard" {
        return "ProbeShard";
    }
    if path.starts_with("/v1/") {
        return "ConsulApi";
    }
    let Some(path) = path.strip_prefix('/') else {
        return "other";
    };
    HTTP_FUNCTIONS
        .iter()
        .find(|(function, route)| path == *route || path == *function)
        .map_or("other", |(function, _)| function)
}

/// The largest envelope read. It wraps a body of at most `api::MAX_BODY_BYTES` as escaped JSON
/// text (up to six bytes a byte), the headers, and the host's copies of query and body fields in
/// `Metadata`; anything larger is no envelope the host sends for a body we would accept.
pub const MAX_ENVELOPE_BYTES: usize = 2 * 1024 * 1024;

/// The envelope routes. `api` is the router the HTTP envelopes are replayed through (`/api/*`, and
/// `/v1/*` for `ConsulApi`).
/// Standalone, only the manual sweep, behind authentication.
pub fn router(state: AppState, api: Router, standalone: bool) -> Router {
    let wrong_method = |method: Method| async move { api::not_allowed(method, "POST") };
    if standalone {
        return Router::new()
            .route("/HealthMonitor", post(manual_sweep).fallback(wrong_method))
            .route_layer(axum::middleware::from_fn_with_state(
                state.security.clone(),
                security::authenticate,
            ))
            .with_state(state);
    }
    let mut router = Router::new()
        .route(
            "/HealthMonitor",
            post(timer_invocation).fallback(wrong_method),
        )
        .route("/ProbeShard", post(shard_invocation).fallback(wrong_method));
    for (function, route) in HTTP_FUNCTIONS {
        let api = api.clone();
        // The whole-server guard sees `/ConsulApi`, not `/v1/...`: the envelope asks it itself.
        let security = (route == CONSUL_ROUTE).then(|| state.security.clone());
        router = router.route(
            &format!("/{function}"),
            post(move |headers: HeaderMap, body: Body| {
                let refusal = security.and_then(|s| s.consul_refusal());
                http_invocation(api, function, route, refusal, headers, body)
            })
            .fallback(wrong_method),
        );
    }
    router.with_state(state)
}

/// Parses the envelope body; a malformed one is the host's (or an impostor's) bug: a JSON error.
fn parse_envelope(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("Data", format!("the invocation envelope is not JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "Data",
            "the invocation envelope must be a JSON object",
        ));
    }
    Ok(value)
}

/// The invocation's own counters, as `, name N` pairs for its `Logs` line (the sweep summary's
/// form, so one parser reads both) and as fields of one structured log line.
fn invocation_counters(
    function: &'static str,
    headers: &HeaderMap,
    counts: InvocationCounts,
    probes: bool,
) -> String {
    // As the request log line reads it: the proxy's header, else the envelope's.
    let invocation_id = ["x-ms-invocation-id", "x-azure-functions-invocationid"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    tracing::info!(
        function,
        invocation_id,
        cache_hits = counts.cache_hits,
        cache_misses = counts.cache_misses,
        probes_in_flight_peak = probes.then_some(counts.probes_in_flight_peak),
        "invocation counters"
    );
    let probes = if probes {
        format!(", probes_in_flight_peak {}", counts.probes_in_flight_peak)
    } else {
        String::new()
    };
    format!(
        "{probes}, cache_hits {}, cache_misses {}",
        counts.cache_hits, counts.cache_misses
    )
}

async fn http_invocation(
    api: Router,
    function: &'static str,
    route: &'static str,
    refusal: Option<ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = api::read_body(body, MAX_ENVELOPE_BYTES)
        .await
        .and_then(|body| parse_envelope(&body))
        .and_then(|envelope| HttpRequestData::from_envelope(&envelope))
        .and_then(|request| request.into_http_request(route))
        .and_then(|request| refusal.map_or(Ok(request), Err));
    let (response, counts) = counting_invocation(async {
        match request {
            Ok(request) => match api.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            // A broken envelope is still answered in the envelope's shape, so the host relays our 400 and
            // its message to the caller instead of turning a bare error into its own 500.
            Err(e) => e.into_response(),
        }
    })
    .await;
    // Who the inner request's caller was belongs on this request's log line.
    let auth = response.extensions().get::<AuthRecord>().cloned();
    let counters = invocation_counters(function, &headers, counts, false);
    let reply = InvocationReply::from_http_response(function, response, &counters).await;
    // The envelope itself always succeeds: the caller's status travels in Outputs.res.statusCode,
    // because a non-2xx reply would make the host drop our outputs and answer 500.
    let mut response = (StatusCode::OK, Json(reply)).into_response();
    if let Some(auth) = auth {
        response.extensions_mut().insert(auth);
    }
    response
}

/// Standalone `POST /HealthMonitor`: one sweep now, for an admin (anyone on the anonymous
/// loopback dev loop), answered like the host's timer invocation.
async fn manual_sweep(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = caller.may_administer() {
        return e.into_response();
    }
    timer_invocation(state, headers, body).await
}

async fn timer_invocation(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let envelope = api::read_body(body, MAX_ENVELOPE_BYTES)
        .await
        .and_then(|body| parse_envelope(&body));
    let timer = match envelope {
        Ok(envelope) => TimerInfo::from_envelope(&envelope),
        Err(e) => return e.into_response(),
    };
    if timer.is_past_due {
        tracing::info!(
            function = "HealthMonitor",
            "timer is past due; sweeping now"
        );
    }
    let (result, counts) = counting_invocation(state.sweep_job.run(SweepTrigger::Invocation)).await;
    // A line of its own, after the summary: the summary's reader takes exactly the sweep's
    // counters, and after a failure the first line holds exactly the reason `GET /api/Sweep` shows.
    let counters = format!(
        "HealthMonitor invocation: {}",
        invocation_counters("HealthMonitor", &headers, counts, true).trim_start_matches(", ")
    );
    match result {
        Ok(outcome) => (
            StatusCode::OK,
            Json(InvocationReply::logs(vec![outcome.summary(), counters])),
        )
            .into_response(),
        // A non-2xx reply marks the invocation failed in the host's history; the Logs still say why.
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(InvocationReply::logs(vec![
                format!("HealthMonitor sweep failed: {e}"),
                counters,
            ])),
        )
            .into_response(),
    }
}

/// `POST /ProbeShard`: the host's queue trigger, one shard of a fanned-out sweep. Answered 200
/// *with a body* when the shard ran or was dropped (the host then deletes the message; an empty
/// 2xx body can hang the invocation until `functionTimeout`), non-2xx when it could not run (the
/// host makes the message visible again, and after `maxDequeueCount` tries moves it to
/// `<queue>-poison`).
async fn shard_invocation(State(state): State<AppState>, body: Body) -> Response {
    let message = api::read_body(body, MAX_ENVELOPE_BYTES)
        .await
        .and_then(|body| parse_envelope(&body))
        .and_then(|envelope| queue_trigger::QueueMessage::from_envelope(&envelope));
    let failed = |status: StatusCode, line: String| {
        (status, Json(InvocationReply::logs(vec![line]))).into_response()
    };
    let message = match message {
        Ok(message) => message,
        Err(e) => return failed(StatusCode::BAD_REQUEST, format!("ProbeShard: {e}")),
    };
    let shard = match crate::domain::ShardMessage::parse(&message.text) {
        Ok(shard) => shard,
        Err(e) => {
            return failed(
                StatusCode::BAD_REQUEST,
                format!("ProbeShard: not a shard ({}): {e}", e.field),
            )
        }
    };
    let tries = message
        .dequeue_count
        .map_or_else(String::new, |n| format!(" (delivery {n})"));
    match state.sweep_job.probe_shard(&shard).await {
        Ok(outcome) => (
            StatusCode::OK,
            Json(InvocationReply::logs(vec![format!(
                "{}{tries}",
                outcome.summary(&shard)
            )])),
        )
            .into_response(),
        Err(e) => failed(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("ProbeShard failed{tries}: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn paths_map_to_their_function_and_nothing_else_adds_a_name() {
        assert_eq!(function_name("/api/ServiceDiscovery"), "ServiceDiscovery");
        assert_eq!(function_name("/api/openapi.json"), "OpenApi");
        assert_eq!(function_name("/OpenApi"), "OpenApi");
        assert_eq!(function_name("/ServiceRegistrar"), "ServiceRegistrar");
        assert_eq!(function_name("/HealthMonitor"), "HealthMonitor");
        assert_eq!(function_name("/ProbeShard"), "ProbeShard");
        assert_eq!(function_name("/"), "readiness");
        assert_eq!(function_name("/api/OpenApi"), "other");
        assert_eq!(function_name("/api/nope"), "other");
        assert_eq!(function_name("/api/ServiceDiscovery/x"), "other");
        assert_eq!(function_name("/v1/agent/self"), "ConsulApi");
        assert_eq!(function_name("/ConsulApi"), "ConsulApi");
        assert_eq!(function_name("/v1"), "other");
        assert_eq!(function_name("ServiceDiscovery"), "other");
    }
}
