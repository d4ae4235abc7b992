//! What the OpenAPI document says callers send: the request bodies and query parameters.
//!
//! The handlers read their input by hand, from untyped JSON and raw query strings, so that every
//! refusal names its field (serde's errors name positions); these types exist only to describe that
//! input. They are never built. The bounds written here are checked against the parsers themselves
//! (`tests` in `openapi.rs`: each bound is accepted and the value just past it refused), so the
//! description cannot drift from what the handlers do.

#![allow(dead_code)]

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

/// `POST /api/ServiceRegistrar`. Unknown fields are ignored; `null` counts as absent. Whole numbers
/// must be JSON integers (`30.5` and `"30"` are refused).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct RegistrationRequest {
    /// The service's name: the RowKey, or its first half with `instanceId`. Letters, digits, '.',
    /// '_' and '-', starting with a letter or digit; at most 128 characters.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", example = "test-api")]
    service_name: String,
    /// Where clients reach it: an absolute `http://` or `https://` URL with a host, or
    /// `tcp://host:port`, without spaces or control characters.
    #[schema(
        min_length = 1,
        max_length = 2048,
        example = "https://test-api.example.com"
    )]
    endpoint: String,
    /// What the health monitor probes, with the same rules as `endpoint`, or
    /// `grpc://host:port[/service]` / `grpcs://host:port[/service]` (a gRPC health check of
    /// `service`, `""` when absent). Default: `endpoint`.
    #[schema(min_length = 1, max_length = 2048)]
    health_endpoint: Option<String>,
    /// The PartitionKey; same rule as `serviceName`.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        default = "default",
        example = "api"
    )]
    service_type: Option<String>,
    /// 1 to 64 characters without control characters.
    #[schema(min_length = 1, max_length = 64, default = "1.0.0", example = "1.0.0")]
    version: Option<String>,
    /// At most 32 tags, each 1 to 128 characters without control characters. Default: `[]`.
    #[schema(schema_with = tags_schema)]
    tags: Option<Vec<String>>,
    /// Any JSON object of at most 64 keys and 8,192 bytes serialised. Default: `{}`.
    #[schema(schema_with = metadata_schema)]
    metadata: Option<serde_json::Value>,
    /// Makes this registration one instance of the service, its own row (RowKey
    /// `serviceName:instanceId`); same rule as `serviceName`. Default: one row per name.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", example = "pod-1")]
    instance_id: Option<String>,
    /// The registration expires this long after its last heartbeat: hidden from discovery, never
    /// resolved, and deleted by a sweep after a grace period. Default: never expires.
    #[schema(minimum = 5, maximum = 86400)]
    ttl_seconds: Option<u32>,
    /// The resolver's relative share; `0` is listed but never resolved.
    #[schema(minimum = 0, maximum = 1000, default = 100)]
    weight: Option<u32>,
    health_check: Option<HealthCheckSettings>,
    /// The services this one needs, at most 32, none twice, not itself: each
    /// `"serviceType:serviceName"` (both halves by the key rule) or `{"service": "…", "required":
    /// false}` (`required` defaults to true; a soft dependency only degrades). Discovery and the
    /// resolver judge the instance's `effectiveStatus` by them. A refusal names the entry
    /// (`dependsOn[2]`). Default: none.
    #[schema(schema_with = depends_on_schema)]
    depends_on: Option<Vec<serde_json::Value>>,
}

/// How the health monitor checks this registration. Every field is optional; unknown ones are
/// ignored. Stored with only the fields given, and shown by discovery as stored.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct HealthCheckSettings {
    /// `http`: a GET, healthy iff the status is below 400 (or in `expectedStatus`), degraded on
    /// 429 and on 503 with `Retry-After` (needs an http(s) health endpoint). `tcp`: healthy iff a
    /// TCP connection opens (on any endpoint: its host and port). `grpc`:
    /// `grpc.health.v1.Health/Check`, healthy iff SERVING (needs a grpc(s) health endpoint).
    /// Default: the health endpoint's scheme (`tcp`, `grpc` for grpc and grpcs, else `http`).
    kind: Option<CheckKind>,
    /// The probe's timeout. Default: `HEALTH_PROBE_TIMEOUT_MS`.
    #[schema(minimum = 100, maximum = 30000)]
    timeout_ms: Option<u32>,
    /// Replaces the health endpoint's path and query (http checks only): starts with a single `/`,
    /// no spaces, `#`, `\` or control characters; may end in `?query`.
    #[schema(
        pattern = r"^/([^/ #\\\u0000-\u001f\u007f-\u009f][^ #\\\u0000-\u001f\u007f-\u009f]*)?$",
        max_length = 1024,
        example = "/health"
    )]
    path: Option<String>,
    /// http checks only: the statuses that pass, instead of "below 400": codes (100 to 599) and
    /// `"lo-hi"` ranges, at most 16 entries. 429 and 503 with `Retry-After` stay warnings unless
    /// listed.
    #[schema(schema_with = expected_status_schema)]
    expected_status: Option<Vec<serde_json::Value>>,
    /// http checks only: text the first 64 KiB of the body must contain (checked only when the
    /// status passed).
    #[schema(min_length = 1, max_length = 256, example = "\"status\":\"UP\"")]
    expect_body: Option<String>,
    /// https and grpcs checks only: a certificate expiring within this many days makes the
    /// instance `degraded` ("certificate expires in N days").
    #[schema(minimum = 1, maximum = 365)]
    tls_expiry_warning_days: Option<u32>,
}

fn expected_status_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let code = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(100))
        .maximum(Some(599));
    let range = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[1-5][0-9]{2}(-[1-5][0-9]{2})?$"));
    ArrayBuilder::new()
        .items(OneOfBuilder::new().item(code).item(range))
        .min_items(Some(1))
        .max_items(Some(16))
        .examples([serde_json::json!([200, "200-299", 401])])
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum CheckKind {
    Http,
    Tcp,
    Grpc,
}

/// `POST /api/ServiceHeartbeat`: which registration is still alive. Unknown fields are ignored;
/// `null` counts as absent.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", example = "orders")]
    service_name: String,
    /// Not searched for: the registration must be under this type.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", default = "default")]
    service_type: Option<String>,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    instance_id: Option<String>,
}

/// Discovery's filters. All combine with AND; an empty value counts as absent; the last of a
/// repeated parameter wins (except `tags` and `metadata`, which add up); unknown parameters (such as
/// `code`) are ignored; a malformed one is a 400 naming it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DiscoveryParams {
    /// One type (one partition). Letters, digits, '.', '_' and '-', starting with a letter or
    /// digit; at most 128 characters.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    service_type: Option<String>,
    /// One name: its recipe-style row and all its instances (without `serviceType`, in every
    /// type). Same rule as `serviceType`.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    service_name: Option<String>,
    /// One instance; needs `serviceName`. Same rule as `serviceType`.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    instance_id: Option<String>,
    /// Only instances carrying all these tags; each value may hold several, comma-separated, and the
    /// parameter may repeat (also spelled `tag`).
    #[param(style = Form, explode = true)]
    tags: Option<Vec<String>>,
    /// `key=value`, repeatable, each must match: the metadata value as a string, or its JSON text
    /// for numbers and booleans (`port=443`).
    #[param(style = Form, explode = true, pattern = "^[^=]+=")]
    metadata: Option<Vec<String>>,
    /// Exact match.
    version: Option<String>,
    /// Only instances whose last health check passed (`true` or `false`, any case).
    healthy_only: Option<bool>,
    /// With `healthyOnly=true`: when none of the selected instances is healthy, return all of them
    /// (`failedOpen: true`).
    fail_open: Option<bool>,
    /// Also return instances whose TTL lapsed.
    include_expired: Option<bool>,
    /// `false`: `healthyOnly` judges the own verdict (`healthStatus`) only, as before dependencies
    /// existed. Default `true`: it judges `effectiveStatus`, admitting `healthy` and `degraded`.
    effective: Option<bool>,
    /// Page size. Default: everything in one answer.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The previous page's `continuationToken`, with the same other parameters; opaque.
    continuation_token: Option<String>,
}

/// The resolver's parameters: one named service, narrowed as in discovery. Discovery's other
/// parameters are checked (a malformed one is a 400) but change nothing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ResolverParams {
    /// The service to resolve. Letters, digits, '.', '_' and '-', starting with a letter or
    /// digit; at most 128 characters.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    service_name: String,
    /// Only this type; without it the name's instances in every type compete.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    service_type: Option<String>,
    /// Only this instance.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    instance_id: Option<String>,
    /// As in discovery.
    #[param(style = Form, explode = true)]
    tags: Option<Vec<String>>,
    /// As in discovery.
    #[param(style = Form, explode = true, pattern = "^[^=]+=")]
    metadata: Option<Vec<String>>,
    /// Exact match.
    version: Option<String>,
    /// `false`: eligibility judges the own verdict only. Default `true`: the effective status
    /// (`healthy` and `degraded` are eligible, `unhealthy` never).
    effective: Option<bool>,
}

/// Deregistration picks exactly one row.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DeregistrationParams {
    /// Letters, digits, '.', '_' and '-', starting with a letter or digit; at most 128 characters.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    service_name: String,
    /// Default `default`. Given empty, it is a 400, not absent.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    service_type: Option<String>,
    /// That instance's row; without it, only the row whose RowKey is `serviceName` (the name's
    /// instances stay). Given empty, it is a 400, not absent (`instanceId=$POD` with `$POD` unset
    /// must not delete the service-level row).
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    instance_id: Option<String>,
}

fn tags_schema() -> impl Into<RefOr<Schema>> {
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(128)),
        )
        .max_items(Some(32))
        .default(Some(serde_json::json!([])))
        .examples([serde_json::json!(["production", "rest-api"])])
}

fn depends_on_schema() -> impl Into<RefOr<Schema>> {
    let key = || {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(
            "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}:[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        ))
    };
    let object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("service", key())
        .required("service")
        .property(
            "required",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::Boolean,
                    Type::Null,
                ]))
                .default(Some(serde_json::json!(true))),
        );
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(key())
                .item(object),
        )
        .max_items(Some(32))
        .examples([serde_json::json!([
            "db:orders-sql",
            {"service": "cache:orders-redis", "required": false}
        ])])
}

fn metadata_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .max_properties(Some(64))
        .default(Some(serde_json::json!({})))
        .examples([serde_json::json!({"region": "eastus", "port": 443})])
}
