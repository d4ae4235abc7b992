//! `ServiceRegistrar`: POST a registration, upsert it, answer with the recipe's message.

use super::{AppState, MAX_BODY_BYTES};
use crate::domain::Registration;
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

/// Reads at most `MAX_BODY_BYTES`; a longer body is a 413 whether or not it declared its length.
async fn read_body(body: Body) -> ApiResult<axum::body::Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::bad_request("body", format!("could not read the request body: {e}"))
            }
        })
}
