//! `ServiceRegistrar`: POST a registration, upsert it, answer with the recipe's message.

use super::{AppState, MAX_BODY_BYTES};
use crate::domain::{Endpoint, Registration};
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    message: &'static str,
    service_id: String,
}

pub async fn register(State(state): State<AppState>, body: Body) -> ApiResult<Json<Registered>> {
    let bytes = read_body(body).await?;
    // Any content type is accepted: `curl -d` without `-H 'Content-Type: application/json'` must work.
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("body", format!("the request body is not valid JSON: {e}"))
    })?;
    let registration = Registration::parse(&json)?;
    refuse_forbidden_target(&state, &registration)?;
    state
        .store
        .register(&registration, &crate::now_iso())
        .await?;
    let service_id = registration.service_id();
    tracing::info!(service_id = %service_id, "service registered");
    Ok(Json(Registered {
        message: "Service registered successfully",
        service_id,
    }))
}

/// Says no up front to a health endpoint whose literal address the SSRF guard would refuse anyway
/// (names are judged at probe time, after resolution).
fn refuse_forbidden_target(state: &AppState, registration: &Registration) -> ApiResult<()> {
    let field = if registration.health_endpoint == registration.endpoint {
        "endpoint"
    } else {
        "healthEndpoint"
    };
    let endpoint = Endpoint::parse(field, &registration.health_endpoint)?;
    state.prober.check_literal(&endpoint).map_err(|refused| {
        ApiError::bad_request(field, format!("{field} is not allowed: {refused}"))
    })
}

/// Reads at most `MAX_BODY_BYTES`; a longer body is a 413 whether or not it declared its length.
async fn read_body(body: Body) -> ApiResult<axum::body::Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::bad_request("body", format!("could not read the request body: {e}"))
            }
        })
}
