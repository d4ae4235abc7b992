//! The one error type every handler returns, and the one place it becomes an HTTP response.
//!
//! Handlers use `?` everywhere; whether a failure is the caller's fault (4xx), a storage outage (503 with
//! `Retry-After`) or our own bug (500) is decided here and nowhere else: every `From<…> for ApiError`
//! lives in this file, so `domain` and `store` know nothing of HTTP. The body is always JSON of the
//! form `{"error": "...", "field": "..."}` so clients can show the message and point at the input.

use crate::domain::ValidationError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Seconds a client should wait before retrying when storage is unreachable or throttling.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// `Clone`, so one failed read can be handed to every caller waiting on it (see `store::cache`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The caller sent something we will not accept; `field` names the input at fault.
    #[error("{message}")]
    BadRequest {
        field: &'static str,
        message: String,
    },

    /// The request body is larger than we accept.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },

    /// The request line's path and query are longer than we (and the Functions host) accept.
    #[error("the URL is longer than {limit} bytes")]
    UriTooLong { limit: usize },

    /// The request body did not arrive within `SERVER_BODY_TIMEOUT_MS`.
    #[error("the request body did not arrive within {limit_ms} ms")]
    BodyTimeout { limit_ms: u128 },

    /// The request's header block is larger than we (and the Functions host) accept.
    #[error("the request headers are larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },

    #[error("no route for {0}")]
    NotFound(String),

    /// The route exists but the service or instance it names does not (or none is eligible).
    #[error("{message}")]
    NoSuchService {
        field: &'static str,
        message: String,
    },

    /// The resolver found no eligible instance. `instances` are the ones it judged (a JSON array of
    /// discovery items), so the caller sees why: their health, errors, expiry and weight.
    #[error("{message}")]
    NoEligibleInstance {
        message: String,
        instances: serde_json::Value,
    },

    #[error("method {method} is not allowed here; use {allowed}")]
    MethodNotAllowed {
        method: String,
        allowed: &'static str,
    },

    /// No credentials, or credentials that do not check out: 401 with `WWW-Authenticate: Bearer`.
    /// `field` names the header that was read (`Authorization` when none was sent).
    #[error("{message}")]
    Unauthenticated {
        field: &'static str,
        message: String,
        /// Credentials were sent but refused (RFC 6750 `error="invalid_token"`).
        presented: bool,
    },

    /// The caller is known but may not do this; `field` names the input outside its grants.
    #[error("{message}")]
    Forbidden {
        field: Option<&'static str>,
        message: String,
    },

    /// The `Host` the request names is not this listener's (an unauthenticated listener answers
    /// only its loopback names: DNS rebinding, `security::host`): a 421 naming `Host`.
    #[error("{message}")]
    MisdirectedHost { message: String },

    /// The identity provider's signing keys could not be fetched, so no token can be checked yet.
    #[error("cannot verify access tokens: {0}")]
    IdentityUnavailable(String),

    /// Storage is healthy but concurrent requests kept recreating and deleting the row this write
    /// targets; nothing of it was written and the caller may retry at once.
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },

    /// A Consul read or write named a datacenter other than ours (`dc=`): Consul's own answer, a
    /// 500 saying there is no path to it.
    #[error("No path to datacenter")]
    NoPathToDatacenter,

    /// Table Storage could not be reached, timed out or throttled us: the caller may retry.
    #[error("storage is unavailable: {0}")]
    StorageUnavailable(String),

    /// Anything else: a bug or an unexpected answer from the store. The detail is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::NotFound(_)
            | ApiError::NoSuchService { .. }
            | ApiError::NoEligibleInstance { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::MisdirectedHost { .. } => StatusCode::MISDIRECTED_REQUEST,
            ApiError::StorageUnavailable(_) | ApiError::IdentityUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Internal(_) | ApiError::NoPathToDatacenter => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::BadRequest { field, .. }
            | ApiError::NoSuchService { field, .. }
            | ApiError::Conflict { field, .. } => Some(field),
            ApiError::PayloadTooLarge { .. } | ApiError::BodyTimeout { .. } => Some("body"),
            ApiError::Unauthenticated { field, .. } => Some(field),
            ApiError::Forbidden { field, .. } => *field,
            ApiError::MisdirectedHost { .. } => Some("Host"),
            ApiError::NoEligibleInstance { .. } => Some("serviceName"),
            ApiError::NoPathToDatacenter => Some("dc"),
            _ => None,
        }
    }

    /// The message the caller sees. Storage and internal details stay in our logs.
    fn public_message(&self) -> String {
        match self {
            ApiError::StorageUnavailable(_) => {
                "storage is temporarily unavailable; retry after the Retry-After delay".to_owned()
            }
            ApiError::IdentityUnavailable(_) => {
                "cannot verify access tokens right now; retry after the Retry-After delay"
                    .to_owned()
            }
            ApiError::Internal(_) => "internal error; see the handler's logs".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The caller's input, refused by a domain rule: a 400 naming the field.
impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::BadRequest {
            field: e.field,
            message: e.message,
        }
    }
}

/// A retryable storage failure is the caller's 503; anything else is our 500. Only the store's
/// redacted detail travels on (to the log line), never the crate error it keeps.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        crate::metrics::metrics().storage_error(e.kind());
        let detail = e.detail().to_owned();
        match e {
            StoreError::Unavailable { .. } => ApiError::StorageUnavailable(detail),
            StoreError::Unexpected { .. } => ApiError::Internal(detail),
            // Only a registration can be contended; its key is named by `serviceName`.
            StoreError::Contended { .. } => ApiError::Conflict {
                field: "serviceName",
                message: format!("{detail}; nothing was written, retry the request"),
            },
        }
    }
}

/// Every error's body: what is wrong, and which input (where one applies).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What is wrong, for a person to read.
    #[schema(example = "serviceName is required")]
    error: String,
    /// The input at fault: a body field (`serviceName`, `healthCheck.timeoutMs`), a query parameter,
    /// `body`, or an envelope part (`Data`, `Data.req`, `Data.req.Method`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "serviceName")]
    field: Option<&'a str>,
    /// The resolver's 404 only (`NoEligibleInstance` documents it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    instances: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::StorageUnavailable(detail) => {
                tracing::warn!(error = %detail, "storage unavailable")
            }
            ApiError::IdentityUnavailable(detail) => {
                tracing::warn!(error = %detail, "identity provider unavailable")
            }
            ApiError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            _ => {}
        }
        let body = ErrorBody {
            error: self.public_message(),
            field: self.field(),
            instances: match &self {
                ApiError::NoEligibleInstance { instances, .. } => Some(instances),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if let ApiError::MethodNotAllowed { allowed, .. } = &self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
        if let ApiError::Unauthenticated { presented, .. } = self {
            // RFC 6750 §3: say which scheme we take, and whether what was sent was refused.
            let challenge = if presented {
                r#"Bearer realm="service-registry", error="invalid_token""#
            } else {
                r#"Bearer realm="service-registry""#
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn storage_unavailable_is_503_with_retry_after_and_hides_detail() {
        let response = ApiError::StorageUnavailable("AccountKey=secret".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("secret"), "{text}");
    }

    #[tokio::test]
    async fn unauthenticated_is_401_with_a_bearer_challenge_and_forbidden_is_403() {
        let response = ApiError::Unauthenticated {
            field: "Authorization",
            message: "authentication required".into(),
            presented: false,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="service-registry""#
        );
        let refused = ApiError::Unauthenticated {
            field: "x-functions-key",
            message: "unknown key".into(),
            presented: true,
        }
        .into_response();
        assert!(refused.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#));
        let body = axum::body::to_bytes(refused.into_body(), 1024)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "unknown key", "field": "x-functions-key"})
        );
        let forbidden = ApiError::Forbidden {
            field: Some("serviceType"),
            message: "no".into(),
        }
        .into_response();
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert!(forbidden.headers().get(header::WWW_AUTHENTICATE).is_none());
        let unavailable = ApiError::IdentityUnavailable("jwks down".into()).into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "5");
    }

    #[tokio::test]
    async fn bad_request_names_the_field() {
        let response =
            ApiError::bad_request("serviceName", "serviceName is required").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "serviceName is required", "field": "serviceName"})
        );
    }

    #[tokio::test]
    async fn a_contended_write_is_a_409_naming_the_service_not_an_outage() {
        let e = ApiError::from(StoreError::Contended {
            detail: "the row kept changing".into(),
        });
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["field"], "serviceName");
        assert!(json["error"].as_str().unwrap().contains("retry"), "{json}");
    }
}
