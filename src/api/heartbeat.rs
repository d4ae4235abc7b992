//! `ServiceHeartbeat`: POST `{serviceName, serviceType?, instanceId?}` to say "still here". Moves only
//! `lastHeartbeat` (no full re-registration, so a client can beat every few seconds cheaply) and
//! never creates a row: an unknown instance is a 404, so a client that lost its registration
//! (deleted after its TTL lapsed) learns to register again.

use super::openapi::{
    BadRequest, BodyTimeout, Forbidden, HeartbeatRequest, InternalError, PayloadTooLarge,
    StorageUnavailable, Unauthorized,
};
use super::registrar::not_registered;
use super::{read_json_body, AppState};
use crate::domain::InstanceKey;
use crate::error::{ApiResult, ErrorBody};
use crate::security::Caller;
use axum::body::Body;
use axum::extract::State;
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Beat {
    #[schema(example = "Heartbeat recorded")]
    message: &'static str,
    /// `<serviceType>:<serviceName>`.
    #[schema(example = "api:orders")]
    service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    instance_id: Option<String>,
    /// The new `lastHeartbeat` (ISO-8601 UTC with milliseconds).
    last_heartbeat: String,
}

#[utoipa::path(
    post,
    path = "/api/ServiceHeartbeat",
    tag = "registry",
    operation_id = "heartbeat",
    summary = "Move `lastHeartbeat` of an existing registration, and nothing else",
    description = "Never creates a row. A heartbeat to an expired registration the sweep has not \
        deleted yet makes it live again.",
    request_body(content = HeartbeatRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded.", body = Beat),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "That registration does not exist (`field`: `serviceName`), e.g. because a sweep deleted it after its TTL lapsed: register again.", body = ErrorBody),
        (status = 408, response = BodyTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 500, response = InternalError),
        (status = 503, response = StorageUnavailable),
    ),
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Json<Beat>> {
    let json = read_json_body(body).await?;
    let key = InstanceKey::from_body(&json)?;
    caller.may_write(&key)?;
    let now = crate::now_iso();
    // A heartbeat that revives a lapsed registration is a change Consul's clients see (its TTL
    // check turns back from critical): it takes a new revision, so their index does not drop.
    let revives = revives(&state, &key).await?;
    let beat = if revives {
        state.store.check_update(&key, &now, None, true).await?
    } else {
        state.store.heartbeat(&key, &now).await?
    };
    if !beat {
        return Err(not_registered(&key));
    }
    Ok(Json(Beat {
        message: "Heartbeat recorded",
        service_id: key.service_id(),
        instance_id: key.instance_id.as_ref().map(ToString::to_string),
        last_heartbeat: now,
    }))
}

/// Whether this heartbeat ends a lapse, decided cheaply when it can be. The snapshot's copy of a
/// row never has a newer heartbeat than the row, so a copy that has not expired proves the row has
/// not (the usual case: no storage read). A copy that has expired, or a row the snapshot lacks, is
/// checked against a current snapshot (read-cache lookups, a rebuild at most once per re-check).
/// Without any snapshot (a process that has served no Consul read) the heartbeat is a plain one.
async fn revives(state: &AppState, key: &InstanceKey) -> ApiResult<bool> {
    let catalog = &state.consul.catalog;
    let Some(known) = catalog.peek() else {
        return Ok(false);
    };
    let now = chrono::Utc::now();
    let (pk, rk) = (key.partition_key(), key.row_key());
    match known.expires_at(pk, &rk) {
        Some(None) => return Ok(false),
        Some(Some(at)) if at > now => return Ok(false),
        _ => {}
    }
    let current = catalog.current().await?;
    Ok(matches!(current.expires_at(pk, &rk), Some(Some(at)) if at <= now))
}
