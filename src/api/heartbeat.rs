//! `ServiceHeartbeat`: POST `{serviceName, serviceType?, instanceId?}` to say "still here". Moves only
//! `lastHeartbeat` (no full re-registration, so a client can beat every few seconds cheaply) and
//! never creates a row: an unknown instance is a 404, so a client that lost its registration
//! (deleted after its TTL lapsed) learns to register again.

use super::registrar::not_registered;
use super::{read_json_body, AppState};
use crate::domain::InstanceKey;
use crate::error::ApiResult;
use crate::security::Caller;
use axum::body::Body;
use axum::extract::State;
use axum::Json;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Beat {
    message: &'static str,
    service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
    last_heartbeat: String,
}

pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Json<Beat>> {
    let json = read_json_body(body).await?;
    let key = InstanceKey::from_body(&json)?;
    caller.may_write(&key)?;
    let now = crate::now_iso();
    if !state.store.heartbeat(&key, &now).await? {
        return Err(not_registered(&key));
    }
    Ok(Json(Beat {
        message: "Heartbeat recorded",
        service_id: key.service_id(),
        instance_id: key.instance_id.as_ref().map(ToString::to_string),
        last_heartbeat: now,
    }))
}
