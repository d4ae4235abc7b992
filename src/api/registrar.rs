//! `ServiceRegistrar`: POST a registration (upsert), DELETE one to deregister it.

use super::openapi::{
    BadRequest, BodyTimeout, Contended, DeregistrationParams, Forbidden, InternalError,
    PayloadTooLarge, RegistrationRequest, StorageUnavailable, Unauthorized,
};
use super::{read_json_body, AppState};
use crate::domain::{InstanceKey, Registration};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::security::Caller;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    #[schema(example = "Service registered successfully")]
    message: &'static str,
    /// `<serviceType>:<serviceName>`, the recipe's service id.
    #[schema(example = "api:test-api")]
    service_id: String,
    /// The instance, when the request named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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

#[utoipa::path(
    post,
    path = "/api/ServiceRegistrar",
    tag = "registry",
    operation_id = "register",
    summary = "Register, or re-register (upsert), one service or instance",
    description = "Registering the same key (`serviceType`, `serviceName`, `instanceId`) again \
        replaces the fields (one left out is removed) and moves `lastHeartbeat`, but keeps \
        `registeredAt`. Any `Content-Type` is accepted. The SSRF guard judges the probe target at \
        once: a refused literal address is a 400 naming `endpoint` (or `healthEndpoint`).",
    request_body(content = RegistrationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Registered.", body = Registered),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = BodyTimeout),
        (status = 409, response = Contended),
        (status = 413, response = PayloadTooLarge),
        (status = 500, response = InternalError),
        (status = 503, response = StorageUnavailable),
    ),
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> ApiResult<Json<Registered>> {
    let json = read_json_body(body).await?;
    let registration = Registration::parse(&json)?;
    caller.may_write(&registration.key)?;
    refuse_forbidden_target(&state, &registration).await?;
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
pub(super) async fn refuse_forbidden_target(
    state: &AppState,
    registration: &Registration,
) -> ApiResult<()> {
    let field = if registration.health_endpoint == registration.endpoint {
        "endpoint"
    } else {
        "healthEndpoint"
    };
    state
        .prober
        .check_endpoint(&registration.probe_target)
        .await
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
#[utoipa::path(
    delete,
    path = "/api/ServiceRegistrar",
    tag = "registry",
    operation_id = "deregister",
    summary = "Deregister exactly one registration and its health row",
    params(DeregistrationParams),
    responses(
        (status = 200, description = "Deregistered (`message`: `Service deregistered successfully`).", body = Registered),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "That registration does not exist (`field`: `serviceName`).", body = ErrorBody),
        (status = 500, response = InternalError),
        (status = 503, response = StorageUnavailable),
    ),
)]
pub async fn deregister(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<KeyParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Registered>> {
    let Query(params) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let key = params.key()?;
    caller.may_write(&key)?;
    if !state.deregister(&key).await? {
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
