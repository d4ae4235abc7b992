//! The whole OpenAPI document: `api`'s routes, plus the host-protocol routes this module serves:
//! every invocation-envelope route (`POST /<Function>` for each HTTP function, `POST
//! /HealthMonitor`) and the readiness probe `GET /`, built from the same list the router is built
//! from (`HTTP_FUNCTIONS`), so the document cannot miss a function. They are served in
//! custom-handler mode, where only the host reaches them (it talks to the handler on 127.0.0.1); a
//! standalone handler serves none of them but `POST /HealthMonitor`, to admins.
//!
//! The envelope types below exist only to describe the envelopes (`envelope.rs` reads them by
//! hand, leniently and case-insensitively); they are never built.

#![allow(dead_code)]

use super::HTTP_FUNCTIONS;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, ResponsesBuilder, Schema,
};
use utoipa::{Modify, PartialSchema, ToSchema};

/// The document served at `GET /api/openapi.json`, as JSON text.
pub fn document() -> Vec<u8> {
    let mut document = crate::api::openapi::api_routes();
    HostProtocol.modify(&mut document);
    // The host's routes stand behind the same `Host` check as `/api` (standalone, unauthenticated).
    crate::api::openapi::HostCheck.modify(&mut document);
    document
        .to_pretty_json()
        .expect("the OpenAPI document is plain data and always serialises")
        .into_bytes()
}

/// Adds the host-protocol routes and their schemas to the document.
struct HostProtocol;

const TAG: &str = "functions host";

impl Modify for HostProtocol {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut schemas = Vec::new();
        with_dependencies::<HttpInvocation>(&mut schemas);
        with_dependencies::<TimerInvocation>(&mut schemas);
        with_dependencies::<QueueInvocation>(&mut schemas);
        with_dependencies::<InvocationReply>(&mut schemas);
        components.schemas.extend(schemas);

        for (function, route) in HTTP_FUNCTIONS {
            let operation = OperationBuilder::new()
                .tag(TAG)
                .operation_id(Some(format!("invoke{function}")))
                .summary(Some(format!("{function} as an invocation envelope")))
                .description(Some(format!(
                    "What the Functions host sends when it does not forward the request: \
                     `Data.req` is rebuilt as a request to `/{route}` (route parameters from \
                     `Data.req.Params`) and answered by the same handler, whose status, headers and body travel in `Outputs.res`. Always HTTP \
                     200 (a non-2xx reply would make the host drop the outputs); a malformed \
                     envelope is an `Outputs.res` with `statusCode` 400 and a JSON error naming \
                     `Data`, `Data.req` or `Data.req.Method`. The inner request is admitted by the \
                     credentials in `Data.req.Headers`, like a forwarded one, and its 401 or 403 \
                     travels in `Outputs.res` too. Served in custom-handler mode only (standalone: \
                     404)."
                )))
                .request_body(Some(json_body("HttpInvocation")))
                .response(
                    "200",
                    json_response(
                        "The function's answer, in `Outputs.res`.",
                        "InvocationReply",
                    ),
                )
                .response(
                    "404",
                    json_response(
                        "Standalone mode: the envelope routes are the host's protocol and are not \
                         served there.",
                        "ErrorBody",
                    ),
                )
                .securities(Some([]));
            openapi.paths.add_path_operation(
                format!("/{function}"),
                vec![HttpMethod::Post],
                operation,
            );
        }

        let timer = OperationBuilder::new()
            .tag(TAG)
            .operation_id(Some("invokeHealthMonitor"))
            .summary(Some("Run one health sweep (the HealthMonitor timer)"))
            .description(Some(
                "The host's timer invocation, or a manual run. One sweep runs unless one is already \
                 running in this process (or, standalone, another replica holds the sweep lease); \
                 `Logs` holds the summary line `HealthMonitor sweep: probed N, …` or why it was \
                 skipped, then the invocation's own counters, `HealthMonitor invocation: \
                 probes_in_flight_peak N, cache_hits N, cache_misses N`. The sweep's summary is also stored and readable at `GET /api/Sweep`. \
                 Under the host, the host invokes it without credentials; a standalone handler \
                 serves it only to admins (an API key or token with the admin role), as the \
                 manual sweep.",
            ))
            .request_body(Some(json_body("TimerInvocation")))
            .responses(
                ResponsesBuilder::new()
                    .response("200", json_response("The sweep ran (or was skipped): `Logs` says which.", "InvocationReply"))
                    .response("400", json_response("The envelope is not a JSON object.", "ErrorBody"))
                    .response("401", Ref::from_response_name("Unauthorized"))
                    .response("403", Ref::from_response_name("Forbidden"))
                    .response(
                        "500",
                        json_response(
                            "The sweep failed on storage; `Logs` holds `HealthMonitor sweep failed: <reason>`, and the host records the run as failed.",
                            "InvocationReply",
                        ),
                    ),
            )
            .securities(Some([
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("functionKey", Vec::<String>::new()),
                SecurityRequirement::default(),
            ]));
        openapi
            .paths
            .add_path_operation("/HealthMonitor", vec![HttpMethod::Post], timer);

        let shard = OperationBuilder::new()
            .tag(TAG)
            .operation_id(Some("invokeProbeShard"))
            .summary(Some("Run one shard of a fanned-out sweep (the ProbeShard queue trigger)"))
            .description(Some(
                "The host's queue-trigger invocation for one message of the `SWEEP_QUEUE` queue. \
                 `Data.shard` is the message text as the host sends it: a JSON string holding the \
                 text's JSON encoding (also read: the text itself, or base64 of it); \
                 `Metadata.DequeueCount` a string or a number. The shard's services are probed and \
                 recorded as the in-process sweep does; a shard of an older sweep, or one that \
                 arrives after its sweep's window, is dropped. Served in custom-handler mode only \
                 (standalone: 404; there the handler's own poller takes the shards).",
            ))
            .request_body(Some(json_body("QueueInvocation")))
            .responses(
                ResponsesBuilder::new()
                    .response("200", json_response("The shard ran or was dropped: `Logs` says which (the host deletes the message).", "InvocationReply"))
                    .response("400", json_response("No shard in the envelope, or not a shard message (the host retries it, then moves it to `<queue>-poison`).", "InvocationReply"))
                    .response("404", json_response("Standalone mode: the queue trigger is the host's protocol and is not served there.", "ErrorBody"))
                    .response("503", json_response("Storage failed; `Logs` holds `ProbeShard failed: <reason>` (the host makes the message visible again).", "InvocationReply")),
            )
            .securities(Some([]));
        openapi
            .paths
            .add_path_operation("/ProbeShard", vec![HttpMethod::Post], shard);

        let ready = OperationBuilder::new()
            .tag(TAG)
            .operation_id(Some("ready"))
            .summary(Some("Readiness: answers at once, never touches storage"))
            .description(Some(
                "The host polls it every 25 ms from the moment it starts the handler.",
            ))
            .response(
                "200",
                ResponseBuilder::new().description("Ready.").content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(<Ready as PartialSchema>::schema()))
                        .build(),
                ),
            )
            .securities(Some([]));
        openapi
            .paths
            .add_path_operation("/", vec![HttpMethod::Get], ready);
    }
}

/// `T`'s schema and those it refers to, for the components.
fn with_dependencies<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

fn json_body(schema: &str) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}

fn json_response(description: &str, schema: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build(),
    )
}

/// `GET /`'s answer.
#[derive(ToSchema)]
struct Ready {
    #[schema(example = "ok")]
    status: String,
}

/// An HTTP function's invocation. Names are matched case-insensitively, as the host's own
/// deserialiser does.
#[derive(ToSchema)]
#[schema(rename_all = "PascalCase")]
struct HttpInvocation {
    data: HttpInvocationData,
    /// Trigger metadata; only `sys` is stable, and nothing here is read.
    metadata: Option<serde_json::Value>,
}

#[derive(ToSchema)]
struct HttpInvocationData {
    /// The caller's request (the trigger's binding name is `req`; failing that, the first `Data`
    /// value that has a `Method`). Also accepted as JSON text.
    req: HttpRequestData,
}

/// The caller's request as the host describes it.
#[derive(ToSchema)]
#[schema(rename_all = "PascalCase")]
struct HttpRequestData {
    /// Default `GET`.
    #[schema(example = "GET")]
    method: Option<String>,
    /// Parameter name to value (a repeated one comma-joined): an object, or JSON text holding one.
    #[schema(value_type = Option<Object>)]
    query: Option<serde_json::Value>,
    /// Header name to an array of values (joined with `, `) or a string. `Content-Length`,
    /// `Transfer-Encoding`, `Connection` and `Host` are dropped.
    #[schema(value_type = Option<Object>)]
    headers: Option<serde_json::Value>,
    /// The raw body, absent when there was none.
    body: Option<String>,
    /// The public URL, query included (which may hold the function key): not read.
    url: Option<String>,
}

/// The timer's invocation.
#[derive(ToSchema)]
#[schema(rename_all = "PascalCase")]
struct TimerInvocation {
    data: Option<TimerInvocationData>,
    metadata: Option<serde_json::Value>,
}

/// The queue trigger's envelope: `Data.shard` holds the message, `Metadata` the trigger's data
/// (`DequeueCount`, `Id`, …) and the message's top-level fields, as the host copies them.
#[derive(ToSchema)]
#[schema(rename_all = "PascalCase")]
struct QueueInvocation {
    data: Option<QueueInvocationData>,
    metadata: Option<serde_json::Value>,
}

#[derive(ToSchema)]
struct QueueInvocationData {
    /// The message text, JSON-encoded once more by the host.
    shard: Option<String>,
}

#[derive(ToSchema)]
struct TimerInvocationData {
    #[schema(rename = "myTimer")]
    my_timer: Option<TimerInfo>,
}

/// Only `IsPastDue` is read (and logged when true); the dates' format varies between host versions.
#[derive(ToSchema)]
#[schema(rename_all = "PascalCase")]
struct TimerInfo {
    is_past_due: Option<bool>,
    /// `null` without the schedule monitor.
    #[schema(value_type = Option<Object>)]
    schedule_status: Option<serde_json::Value>,
}

/// The reply to every envelope.
#[derive(ToSchema)]
#[schema(rename_all = "PascalCase")]
struct InvocationReply {
    /// `res` for an HTTP function; empty for the timer.
    outputs: InvocationOutputs,
    /// Written to the invocation's log: `<Function> answered <status>`, or the sweep's summary.
    logs: Vec<String>,
    /// Always `null`.
    #[schema(value_type = Option<String>)]
    return_value: Option<serde_json::Value>,
}

#[derive(ToSchema)]
struct InvocationOutputs {
    res: Option<HttpOutput>,
}

/// The `http` output binding: the function's answer to the caller.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
struct HttpOutput {
    #[schema(example = 200)]
    status_code: u16,
    /// The response body as text (JSON for every answer but a 304's empty one).
    body: String,
    /// Header name (in `Content-Type` casing) to value; `Content-Length` left out.
    #[schema(value_type = Object)]
    headers: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RETRY_AFTER_SECONDS;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_slice(&document()).unwrap()
    }

    #[test]
    fn it_is_openapi_3_1_with_every_route_and_the_auth_schemes() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for path in [
            "/api/ServiceRegistrar",
            "/api/ServiceHeartbeat",
            "/api/ServiceDiscovery",
            "/api/ServiceResolver",
            "/api/Sweep",
            "/api/openapi.json",
            "/ServiceRegistrar",
            "/OpenApi",
            "/HealthMonitor",
            "/ProbeShard",
            "/",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes["functionKey"]["name"], "x-functions-key");
        assert_eq!(schemes["functionKeyQuery"]["in"], "query");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        let retry = &doc["components"]["responses"]["StorageUnavailable"]["headers"]["Retry-After"];
        assert_eq!(retry["schema"]["examples"][0], RETRY_AFTER_SECONDS);
    }

    #[test]
    fn every_operation_lists_the_host_checks_421_with_the_json_error_body() {
        let doc = doc();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                assert_eq!(
                    operation["responses"]["421"]["$ref"], "#/components/responses/MisdirectedHost",
                    "{method} {path}"
                );
                operations += 1;
            }
        }
        assert!(operations > 10, "{operations}");
        let response = &doc["components"]["responses"]["MisdirectedHost"];
        assert_eq!(
            response["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert!(response["description"].as_str().unwrap().contains("`Host`"));
    }

    #[test]
    fn every_operation_that_reads_storage_documents_503_and_every_error_is_the_json_body() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                // Storage, or Entra ID's keys for the authentication every /api route passes
                // (but the dashboard's page, which is static and needs no credentials).
                if path.starts_with("/api/") && path != "/api/Dashboard" {
                    for status in ["401", "403", "503"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
                for (status, response) in responses {
                    if status.starts_with('2') || status == "304" || status == "401" {
                        continue;
                    }
                    let response = match response["$ref"].as_str() {
                        Some(reference) => {
                            let name = reference.trim_start_matches("#/components/responses/");
                            &doc["components"]["responses"][name]
                        }
                        None => response,
                    };
                    let text = response["content"].to_string();
                    assert!(
                        text.contains("ErrorBody")
                            || text.contains("NoEligibleInstance")
                            || text.contains("InvocationReply"),
                        "{method} {path} {status}: {text}"
                    );
                }
            }
        }
    }
}
