//! `ServiceRegistrar`: POST a registration (upsert), DELETE one to deregister it.

use super::{read_json_body, AppState};
use crate::domain::{InstanceKey, Registration};
use crate::error::{ApiError, ApiResult};
use crate::security::Caller;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    message: &'static str,
    service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
}

impl Registered {
    fn new(message: &'static str, key: &InstanceKey) -> Self {
        Registered {
            message,
            service_id: key.service_id(),
            instance_id: key.instance_id.as_ref().map(ToString::to_string),
        }
    }
}

pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Json<Registered>> {
    let json = read_json_body(body).await?;
    let registration = Registration::parse(&json)?;
    caller.may_write(&registration.key)?;
    refuse_forbidden_target(&state, &registration)?;
    state
        .store
        .register(&registration, &crate::now_iso())
        .await?;
    tracing::info!(service_id = %registration.key.service_id(), row_key = %registration.key.row_key(), "service registered");
    Ok(Json(Registered::new(
        "Service registered successfully",
        &registration.key,
    )))
}

/// Says no up front to a health check whose literal address the SSRF guard would refuse anyway
/// (names are judged at probe time, after resolution).
fn refuse_forbidden_target(state: &AppState, registration: &Registration) -> ApiResult<()> {
    let field = if registration.health_endpoint == registration.endpoint {
        "endpoint"
    } else {
        "healthEndpoint"
    };
    state
        .monitor
        .prober()
        .policy()
        .check_endpoint(&registration.probe_target)
        .map_err(|refused| {
            ApiError::bad_request(field, format!("{field} is not allowed: {refused}"))
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyParams {
    service_type: Option<String>,
    service_name: Option<String>,
    instance_id: Option<String>,
}

impl KeyParams {
    pub fn key(&self) -> ApiResult<InstanceKey> {
        Ok(InstanceKey::from_inputs(
            self.service_type.as_deref(),
            self.service_name.as_deref(),
            self.instance_id.as_deref(),
        )?)
    }
}

/// `DELETE ?serviceType=&serviceName=&instanceId=`: removes exactly that row and its health.
pub async fn deregister(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<KeyParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Registered>> {
    let Query(params) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let key = params.key()?;
    caller.may_write(&key)?;
    if !state.store.deregister(&key).await? {
        return Err(not_registered(&key));
    }
    tracing::info!(service_id = %key.service_id(), row_key = %key.row_key(), "service deregistered");
    Ok(Json(Registered::new(
        "Service deregistered successfully",
        &key,
    )))
}

pub fn not_registered(key: &InstanceKey) -> ApiError {
    let what = match &key.instance_id {
        Some(instance) => format!("instance {instance} of service {}", key.service_id()),
        None => format!("service {}", key.service_id()),
    };
    ApiError::NoSuchService {
        field: "serviceName",
        message: format!("{what} is not registered"),
    }
}
