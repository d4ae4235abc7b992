//! The OpenAPI 3.1 description of the `/api` routes, and the route that serves the whole document,
//! `GET /api/openapi.json` (function `OpenApi`).
//!
//! Generated, not written: each handler carries its `#[utoipa::path]` (route, parameters, body,
//! every status it can answer), the response types derive their schemas from the structs they
//! serialise, and the inputs are described in `openapi/inputs.rs` (checked against the parsers by
//! the tests below). `host` adds its own routes (the envelopes, `GET /`) to `api_routes()`;
//! start-up builds that document once and hands it to `AppState`, so every request is answered
//! with the same bytes.
//!
//! What it cannot say per operation, it says in `info.description`: any other method on a route is
//! a 405 with `Allow`, and an unknown path a 404, both with the JSON error body.

mod inputs;

pub use inputs::HealthCheckSettings;
pub(super) use inputs::{
    DeregistrationParams, DiscoveryParams, HeartbeatRequest, RegistrationRequest, ResolverParams,
};

use super::instance_view::InstanceView;
use super::AppState;
use crate::error::{ErrorBody, RETRY_AFTER_SECONDS};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

const DESCRIPTION: &str = "\
A service registry on Azure Functions and Table Storage: services register (one row per service, or \
one per instance) and keep their registration alive with heartbeats; clients discover instances with \
their health or resolve one to call; a timer sweeps health checks.\n\n\
Every error is JSON, `{\"error\": \"<what is wrong>\", \"field\": \"<which input>\"}` (`field` where one \
applies), and nothing is written when a request is refused. Beside the statuses listed per \
operation: any other method on a route is a 405 whose `Allow` header names the right ones, and an \
unknown path is a 404 (no `field`). On every route, the envelopes' included, a URL over 4,096 bytes \
is a 414 and a header block over 32 KiB or 100 headers a 431 (listed on each `/api` operation too). \
Where nobody is authenticated (standalone with no authentication configured), every route answers a \
421 (`field`: `Host`) to a request whose `Host` header names another server than this listener, \
before routing: a DNS-rebinding page's requests (listed on every operation).\n\n\
Authentication: under the Functions host every `/api` route needs a function key (`authLevel: \
function`), as the `x-functions-key` header or the `code` query parameter, checked by the host before \
the request reaches the handler. The handler itself admits a caller when authentication is \
configured (`REGISTRY_API_KEYS`, Entra ID tokens, App Service's principal): an API key or an access \
token as `Authorization: Bearer <…>`, or an API key as `x-functions-key`; its role and scope decide \
what it may read, write or administer (403 otherwise). With nothing configured (the loopback dev \
loop, the host without opt-in) every caller is anonymous with every right. The routes tagged \
`functions host` are the host's own channel to the handler: served in custom-handler mode only, \
except `POST /HealthMonitor`, which a standalone handler serves to admins (the manual sweep).";

#[derive(OpenApi)]
#[openapi(
    info(title = "Service registry", description = DESCRIPTION, license(name = "MIT")),
    paths(
        super::registrar::register,
        super::registrar::deregister,
        super::heartbeat::heartbeat,
        super::discovery::discover,
        super::resolver::resolve,
        super::sweep::last_sweep,
        super::dashboard::page,
        openapi_json,
    ),
    components(
        schemas(ErrorBody, NoEligibleInstance),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            PayloadTooLarge,
            BodyTimeout,
            Contended,
            UriTooLong,
            HeadersTooLarge,
            MisdirectedHost,
            InternalError,
            StorageUnavailable
        ),
    ),
    modifiers(&SecuritySchemes, &RequestLimits, &HostCheck),
    security(("functionKey" = []), ("functionKeyQuery" = []), ("bearer" = [])),
    tags(
        (name = "registry", description = "Register, heartbeat, deregister, discover, resolve."),
        (name = "operations", description = "What the monitor did; this document."),
        (name = "functions host", description = "The Functions host's invocation envelopes and readiness probe."),
    ),
)]
struct ApiDoc;

/// The `/api` routes, their schemas and the security schemes: the document `host` completes.
pub fn api_routes() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    operation_id = "openApi",
    summary = "This OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The document.", body = Object, content_type = "application/json"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = StorageUnavailable),
    ),
)]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.bytes(),
    )
        .into_response()
}

/// The resolver's 404: the error, and every instance it judged, each as discovery shows it, so the
/// caller sees why none is eligible (unhealthy with its `errorMessage`, an open circuit's
/// `nextProbeAt`, expired, or weight 0). `instances` is empty when none is registered.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NoEligibleInstance {
    #[schema(example = "service *:cache has no healthy instance to resolve")]
    error: String,
    #[schema(example = "serviceName")]
    field: String,
    instances: Vec<InstanceView>,
}

/// Declares the error responses every route shares: each one the JSON error body with its
/// description, as a component operations refer to by name.
macro_rules! error_responses {
    ($($name:ident => $description:expr),+ $(,)?) => {$(
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
                (stringify!($name), error_response($description).build().into())
            }
        }
    )+};
}

error_responses! {
    BadRequest => "Bad input: `field` names it. Nothing was written.",
    Forbidden => "The caller was admitted, but its role or scope does not cover this (`field`: `serviceType` or `serviceName` when a scope refused that key; a browser `Origin` not allowed is refused the same way). Nothing was written.",
    PayloadTooLarge => "The request body is over 65,536 bytes (`field`: `body`). Nothing was written.",
    InternalError => "An unexpected answer from storage; the details are in the handler's log, not here.",
    BodyTimeout => "The request body did not arrive within `SERVER_BODY_TIMEOUT_MS` (`field`: `body`). Nothing was written.",
    Contended => "Storage is fine, but other requests kept creating and deleting this very row faster than the registration could land (`field`: `serviceName`). Nothing was written; retry at once. Concurrent re-registrations and heartbeats never cause it.",
    UriTooLong => "The path and query are over 4,096 bytes, the Functions host's own URL limit.",
    HeadersTooLarge => "The header block is over 32 KiB, or holds over 100 headers.",
    MisdirectedHost => "Only where nobody is authenticated (standalone with no authentication configured: the dev loop, `REGISTRY_ALLOW_ANONYMOUS`): the `Host` header names another server than this listener (`localhost`, `127.0.0.1`, `[::1]` or the address it is bound on, with its port or none, or a `REGISTRY_ALLOWED_HOSTS` name), as a DNS-rebinding page's requests do (`field`: `Host`). Refused before routing; nothing was written.",
}

/// The URL and header limits apply to every route (`limits`), so every operation lists them.
struct RequestLimits;

impl Modify for RequestLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, name) in [("414", "UriTooLong"), ("431", "HeadersTooLarge")] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// The `Host` check (`security::host`) stands in front of every route of an unauthenticated
/// listener, before routing, so every operation lists its 421. `host` applies it again once its
/// own routes are in the document.
pub struct HostCheck;

impl Modify for HostCheck {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("421".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("MisdirectedHost")));
            }
        }
    }
}

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// 503: the one error with a header.
pub struct StorageUnavailable;

impl<'s> ToResponse<'s> for StorageUnavailable {
    fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
        let retry_after = HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .examples([serde_json::json!(RETRY_AFTER_SECONDS)]),
            )
            .description(Some("Seconds to wait before retrying."))
            .build();
        let response = error_response(
            "Table Storage (or, to check an access token, Entra ID's signing keys) is unreachable, \
             timing out or throttling: retry after `Retry-After` seconds. The process keeps \
             serving and recovers by itself.",
        )
        .header("Retry-After", retry_after);
        ("StorageUnavailable", response.build().into())
    }
}

/// 401: the handler's (JSON, with a challenge), or under the host possibly the host's own.
pub struct Unauthorized;

impl<'s> ToResponse<'s> for Unauthorized {
    fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
        let challenge =
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String).examples([
                    serde_json::json!(r#"Bearer realm="service-registry", error="invalid_token""#),
                ]))
                .description(Some(
                    "`Bearer realm=\"service-registry\"`, with `error=\"invalid_token\"` when the \
                 credential sent was refused.",
                ))
                .build();
        let response = error_response(
            "No credential, or one the handler does not accept (`field`: the header it read, \
             `Authorization`, `x-functions-key` or `X-MS-CLIENT-PRINCIPAL`). Under the Functions \
             host a missing or wrong function key is refused by the host first, with an empty \
             body.",
        )
        .header("WWW-Authenticate", challenge);
        ("Unauthorized", response.build().into())
    }
}

/// The ways a caller can authenticate, offered as alternatives.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "functionKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-functions-key",
                "A function key (or the host key), checked by the Functions host; or an API key \
                 from REGISTRY_API_KEYS, checked by the handler.",
            ))),
        );
        components.add_security_scheme(
            "functionKeyQuery",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "code",
                "A function key as a query parameter, for the Functions host only. It travels in \
                 URLs: prefer a header.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from REGISTRY_API_KEYS, or an Entra ID access token for the \
                         configured audience, as `Authorization: Bearer <…>`.",
                    ))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DiscoveryQuery, Registration};
    use serde_json::{json, Value};

    fn doc() -> Value {
        serde_json::to_value(api_routes()).unwrap()
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        &doc["components"]["schemas"][name]
    }

    fn number(value: &Value) -> u64 {
        value
            .as_u64()
            .unwrap_or_else(|| panic!("not a bound: {value}"))
    }

    /// A registration with one field set (a dotted name reaches into `healthCheck`).
    fn register(field: &str, value: Value) -> Result<Registration, String> {
        let mut body = json!({"serviceName": "a", "endpoint": "http://x.example"});
        match field.split_once('.') {
            Some((outer, inner)) => body[outer] = json!({ inner: value }),
            None => body[field] = value,
        }
        Registration::parse(&body).map_err(|e| e.to_string())
    }

    /// Each documented bound is one the parser accepts, and one step past it is refused.
    #[test]
    fn the_registration_bounds_are_the_parsers_bounds() {
        let doc = doc();
        let registration = &schema(&doc, "RegistrationRequest")["properties"];
        let check = &schema(&doc, "HealthCheckSettings")["properties"];
        for (field, bounds) in [
            ("ttlSeconds", &registration["ttlSeconds"]),
            ("weight", &registration["weight"]),
            ("healthCheck.timeoutMs", &check["timeoutMs"]),
        ] {
            let (min, max) = (number(&bounds["minimum"]), number(&bounds["maximum"]));
            assert!(register(field, json!(min)).is_ok(), "{field} {min}");
            assert!(register(field, json!(max)).is_ok(), "{field} {max}");
            assert!(register(field, json!(max + 1)).is_err(), "{field} {max}+1");
            if min > 0 {
                assert!(register(field, json!(min - 1)).is_err(), "{field} {min}-1");
            }
        }

        let max = number(&registration["version"]["maxLength"]) as usize;
        assert!(register("version", json!("v".repeat(max))).is_ok());
        assert!(register("version", json!("v".repeat(max + 1))).is_err());
        assert!(register("version", json!("")).is_err());

        let tags = &registration["tags"];
        let (count, len) = (
            number(&tags["maxItems"]) as usize,
            number(&tags["items"]["maxLength"]) as usize,
        );
        assert!(register("tags", json!(vec!["t".repeat(len); count])).is_ok());
        assert!(register("tags", json!(vec!["t"; count + 1])).is_err());
        assert!(register("tags", json!(["t".repeat(len + 1)])).is_err());
        assert!(register("tags", json!([""])).is_err());

        let keys = number(&registration["metadata"]["maxProperties"]) as usize;
        let metadata =
            |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!(1))).collect());
        assert!(register("metadata", metadata(keys)).is_ok());
        assert!(register("metadata", metadata(keys + 1)).is_err());

        let max = number(&registration["endpoint"]["maxLength"]) as usize;
        let url = |len: usize| format!("http://x.example/{}", "p".repeat(len - 17));
        assert!(register("endpoint", json!(url(max))).is_ok());
        assert!(register("endpoint", json!(url(max + 1))).is_err());

        let max = number(&check["path"]["maxLength"]) as usize;
        let path = |len: usize| format!("/{}", "p".repeat(len - 1));
        assert!(register("healthCheck.path", json!(path(max))).is_ok());
        assert!(register("healthCheck.path", json!(path(max + 1))).is_err());

        let kinds = &schema(&doc, "CheckKind")["enum"];
        for kind in kinds.as_array().unwrap() {
            let mut body = json!({"serviceName": "a", "endpoint": "http://x.example",
                                  "healthCheck": {"kind": kind}});
            if kind == "grpc" {
                body["healthEndpoint"] = json!("grpc://x.example:50051");
            }
            assert!(Registration::parse(&body).is_ok(), "{kind}");
        }
        let entries = number(&check["expectedStatus"]["maxItems"]) as usize;
        assert!(register("healthCheck.expectedStatus", json!(vec![200; entries])).is_ok());
        assert!(register("healthCheck.expectedStatus", json!(vec![200; entries + 1])).is_err());
        let max = number(&check["expectBody"]["maxLength"]) as usize;
        assert!(register("healthCheck.expectBody", json!("b".repeat(max))).is_ok());
        assert!(register("healthCheck.expectBody", json!("b".repeat(max + 1))).is_err());
        assert!(register("healthCheck.kind", json!("udp")).is_err());
    }

    #[test]
    fn the_page_size_bounds_are_the_parsers_bounds() {
        let doc = doc();
        let parameters = doc["paths"]["/api/ServiceDiscovery"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let limit = &parameters.iter().find(|p| p["name"] == "limit").unwrap()["schema"];
        let (min, max) = (number(&limit["minimum"]), number(&limit["maximum"]));
        let page = |n: u64| DiscoveryQuery::from_query_string(&format!("limit={n}"));
        assert!(page(min).is_ok() && page(max).is_ok());
        assert!(page(min - 1).is_err() && page(max + 1).is_err());
    }
}
