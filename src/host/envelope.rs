//! The JSON shapes of the invocation protocol: the HTTP request inside `Data.req`, the timer inside
//! `Data.myTimer`, and the reply.
//!
//! The host serialises with Newtonsoft and reads case-insensitively, and versions differ in small
//! ways (`Query` as an object or as JSON text, `Body` absent when empty, timer dates without offset),
//! so everything here is read by hand rather than with strict serde structs: names in any case, both
//! forms where the host has two. Types are checked all the same: a field of the wrong JSON type is a
//! 400 naming it (`Data.req.Method`, `Data.req.Query`, ...), and `null` anywhere means absent.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

/// Headers we must not copy from the envelope: they describe the original connection, not ours.
const HOP_HEADERS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "host"];

/// Case-insensitive property lookup, as the host's own deserialiser does.
fn get_ci<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .get(name)
        .or_else(|| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A value that is an object, or JSON text holding one (both forms occur in the wild).
fn object_or_json_text(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::String(text)) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// `Query` or `Headers`: an object, or JSON text holding one (an empty text counts as absent).
fn object_field(
    req: &Map<String, Value>,
    name: &str,
    field: &'static str,
) -> Result<Map<String, Value>, ApiError> {
    let wrong = || {
        ApiError::bad_request(
            field,
            format!("{field} must be an object (or JSON text of one)"),
        )
    };
    match get_ci(req, name) {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(wrong()),
        },
        Some(_) => Err(wrong()),
    }
}

/// A header value: a string, or an array of strings the host split (joined back with `, `).
fn header_value(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join(", ")),
        _ => None,
    }
}

fn data(envelope: &Value) -> Map<String, Value> {
    envelope
        .as_object()
        .map(|o| object_or_json_text(get_ci(o, "Data")))
        .unwrap_or_default()
}

/// The caller's request as the host describes it in `Data.req`.
#[derive(Debug)]
pub struct HttpRequestData {
    method: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    /// Route parameters (`Params`): the values of the route template's `{name}` parts.
    params: Map<String, Value>,
    body: Option<String>,
}

impl HttpRequestData {
    pub fn from_envelope(envelope: &Value) -> Result<Self, ApiError> {
        let data = data(envelope);
        // Our function.json names the trigger `req`; accept another name if it is the only request.
        let req = get_ci(&data, "req")
            .or_else(|| data.values().find(|v| v.get("Method").is_some()))
            .map(|v| object_or_json_text(Some(v)))
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Data.req",
                    "the invocation envelope has no Data.req request",
                )
            })?;

        let method = match get_ci(&req, "Method") {
            None => "GET".to_owned(),
            Some(Value::String(method)) => method.clone(),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "Data.req.Method",
                    "Data.req.Method must be a string such as \"GET\"",
                ))
            }
        };
        let mut query = Vec::new();
        for (name, value) in object_field(&req, "Query", "Data.req.Query")? {
            match value {
                Value::Null => {}
                Value::String(value) => query.push((name, value)),
                _ => {
                    return Err(ApiError::bad_request(
                        "Data.req.Query",
                        format!("Data.req.Query.{name} must be a string"),
                    ))
                }
            }
        }
        let mut headers = Vec::new();
        for (name, value) in object_field(&req, "Headers", "Data.req.Headers")? {
            if value.is_null() {
                continue;
            }
            let value = header_value(&value).ok_or_else(|| {
                ApiError::bad_request(
                    "Data.req.Headers",
                    format!("Data.req.Headers.{name} must be a string or an array of strings"),
                )
            })?;
            headers.push((name, value));
        }
        // The raw body as text; a host that parsed a JSON body hands it over as JSON, which reads
        // back as the same JSON text.
        let body = match get_ci(&req, "Body") {
            None => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(json @ (Value::Object(_) | Value::Array(_))) => Some(json.to_string()),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "Data.req.Body",
                    "Data.req.Body must be a string",
                ))
            }
        };
        let params = object_field(&req, "Params", "Data.req.Params")?;
        Ok(HttpRequestData {
            method,
            query,
            headers,
            params,
            body,
        })
    }

    /// The plain request the router would have received had the host forwarded it: `route` is the
    /// function's route template (function.json's `route`; host.json's `routePrefix` is empty), its
    /// parameters filled from `Params`.
    pub fn into_http_request(self, route: &str) -> Result<Request<Body>, ApiError> {
        let method =
            Method::from_bytes(self.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                ApiError::bad_request("Data.req.Method", "the request method is not valid")
            })?;
        let mut uri = fill_route(route, &self.params)?;
        if !self.query.is_empty() {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&self.query)
                .finish();
            uri.push('?');
            uri.push_str(&query);
        }
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(self.body.unwrap_or_default()))
            .map_err(|e| {
                ApiError::bad_request("Data.req", format!("the request is not valid: {e}"))
            })?;
        for (name, value) in self.headers {
            if HOP_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                request.headers_mut().append(name, value);
            }
        }
        Ok(request)
    }
}

/// The path a route template stands for with these parameters: each `{name}` or `{*name}` part
/// replaced by `Params.name`, percent-encoded except for the `/` a catch-all value holds. A
/// catch-all may be empty (the host's router matches `v1/` to `v1/{*path}`); a plain parameter may
/// not.
fn fill_route(route: &str, params: &Map<String, Value>) -> Result<String, ApiError> {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut path = String::new();
    for segment in route.split('/') {
        path.push('/');
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            path.push_str(segment);
            continue;
        };
        let (name, catch_all) = match name.strip_prefix('*') {
            Some(name) => (name, true),
            None => (name, false),
        };
        let value = match get_ci(params, name) {
            Some(Value::String(value)) => value.as_str(),
            None if catch_all => "",
            _ => {
                return Err(ApiError::bad_request(
                    "Data.req.Params",
                    format!("Data.req.Params.{name} must be a string (a route parameter)"),
                ))
            }
        };
        let pieces: Vec<String> = if catch_all {
            value
                .split('/')
                .map(|piece| percent_encoding::utf8_percent_encode(piece, SEGMENT).to_string())
                .collect()
        } else {
            vec![percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()]
        };
        path.push_str(&pieces.join("/"));
    }
    Ok(path)
}

/// What we use of the TimerInfo in `Data.myTimer`: only `IsPastDue`. The dates are left alone (their
/// format varies between host versions, and nothing here depends on them).
#[derive(Debug, Default)]
pub struct TimerInfo {
    pub is_past_due: bool,
}

impl TimerInfo {
    pub fn from_envelope(envelope: &Value) -> Self {
        let data = data(envelope);
        let timer = get_ci(&data, "myTimer")
            .or_else(|| data.values().next())
            .map(|v| object_or_json_text(Some(v)))
            .unwrap_or_default();
        TimerInfo {
            is_past_due: get_ci(&timer, "IsPastDue")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

/// The reply to an envelope.
#[derive(Debug, Serialize)]
pub struct InvocationReply {
    #[serde(rename = "Outputs")]
    outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    return_value: Value,
}

impl InvocationReply {
    pub fn logs(logs: Vec<String>) -> Self {
        InvocationReply {
            outputs: Map::new(),
            logs,
            return_value: Value::Null,
        }
    }

    /// Wraps a response of the `/api` router as the `res` output binding: `statusCode` a number,
    /// `body` a string, `headers` an object of strings (what the host reads: `docs/functions-host-protocol.md`, "The reply to an envelope").
    /// `counters` ends the `Logs` line (the invocation's cache reads, `, name N` pairs).
    pub async fn from_http_response(function: &str, response: Response, counters: &str) -> Self {
        let status = response.status().as_u16();
        let mut headers = Map::new();
        for (name, value) in response.headers() {
            if name == axum::http::header::CONTENT_LENGTH {
                continue;
            }
            if let Ok(value) = value.to_str() {
                headers.insert(canonical_header_name(name.as_str()), Value::from(value));
            }
        }
        let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("{{\"error\":\"could not read the response: {e}\"}}"),
        };
        let mut outputs = Map::new();
        outputs.insert(
            "res".to_owned(),
            serde_json::json!({ "statusCode": status, "body": body, "headers": headers }),
        );
        InvocationReply {
            outputs,
            logs: vec![format!("{function} answered {status}{counters}")],
            return_value: Value::Null,
        }
    }
}

/// `content-type` → `Content-Type`: the casing the docs and most callers expect.
fn canonical_header_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(req: Value) -> Value {
        json!({"Data": {"req": req}, "Metadata": {"sys": {"MethodName": "ServiceDiscovery"}}})
    }

    #[test]
    fn query_as_object_or_json_text_gives_the_same_request() {
        for query in [
            json!({"serviceType": "api", "code": "k"}),
            json!("{\"serviceType\":\"api\",\"code\":\"k\"}"),
        ] {
            let data =
                HttpRequestData::from_envelope(&envelope(json!({"Method": "GET", "Query": query})))
                    .unwrap();
            let request = data.into_http_request("api/ServiceDiscovery").unwrap();
            assert_eq!(request.method(), Method::GET);
            assert_eq!(request.uri().path(), "/api/ServiceDiscovery");
            let pairs: Vec<_> =
                url::form_urlencoded::parse(request.uri().query().unwrap().as_bytes())
                    .into_owned()
                    .collect();
            assert!(pairs.contains(&("serviceType".into(), "api".into())));
        }
    }

    #[test]
    fn headers_arrays_are_joined_and_hop_headers_dropped() {
        let data = HttpRequestData::from_envelope(&envelope(json!({
            "method": "POST",
            "headers": {"content-type": ["application/json"], "Content-Length": ["5"], "X-Multi": ["a", "b"]},
            "Body": "{}"
        })))
        .unwrap();
        let request = data.into_http_request("api/ServiceRegistrar").unwrap();
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.headers()["x-multi"], "a, b");
        assert!(request.headers().get("content-length").is_none());
    }

    #[test]
    fn fields_of_the_wrong_type_name_themselves_and_null_is_absent() {
        let field_of = |req: Value| match HttpRequestData::from_envelope(&envelope(req)) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(field_of(json!({"Method": 123})), "Data.req.Method");
        assert_eq!(field_of(json!({"Query": [1]})), "Data.req.Query");
        assert_eq!(field_of(json!({"Query": {"a": 1}})), "Data.req.Query");
        assert_eq!(field_of(json!({"Headers": {"a": [1]}})), "Data.req.Headers");
        assert_eq!(field_of(json!({"Body": true})), "Data.req.Body");
        let data = HttpRequestData::from_envelope(&envelope(json!({
            "Method": null, "Query": {"serviceName": null, "serviceType": "api"},
            "Headers": {"Accept": null}, "Body": null
        })))
        .unwrap();
        assert_eq!(data.method, "GET");
        assert_eq!(
            data.query,
            vec![("serviceType".to_owned(), "api".to_owned())]
        );
        assert!(data.headers.is_empty() && data.body.is_none());
    }

    #[test]
    fn missing_req_is_a_bad_request() {
        let e = HttpRequestData::from_envelope(&json!({"Data": {}})).unwrap_err();
        assert!(matches!(
            e,
            ApiError::BadRequest {
                field: "Data.req",
                ..
            }
        ));
    }

    #[test]
    fn timer_in_every_shape() {
        let object = json!({"Data": {"myTimer": {"Schedule": {}, "ScheduleStatus": null, "IsPastDue": true}}});
        assert!(TimerInfo::from_envelope(&object).is_past_due);
        let text = json!({"Data": {"myTimer": "{\"IsPastDue\":true,\"ScheduleStatus\":{\"Last\":\"0001-01-01T00:00:00\"}}"}});
        assert!(TimerInfo::from_envelope(&text).is_past_due);
        assert!(
            !TimerInfo::from_envelope(&json!({"data": {"mytimer": {"isPastDue": false}}}))
                .is_past_due
        );
        assert!(!TimerInfo::from_envelope(&json!({})).is_past_due);
    }

    #[test]
    fn route_parameters_fill_the_template() {
        let request = |params: Value| {
            HttpRequestData::from_envelope(&envelope(json!({"Method": "GET", "Params": params})))
                .and_then(|data| data.into_http_request("v1/{*path}"))
                .map(|request| request.uri().path().to_owned())
        };
        assert_eq!(
            request(json!({"path": "agent/self"})).unwrap(),
            "/v1/agent/self"
        );
        assert_eq!(
            request(json!({"Path": "health/service/a b"})).unwrap(),
            "/v1/health/service/a%20b"
        );
        // The Params object as JSON text, and a catch-all that matched nothing.
        assert_eq!(
            request(json!("{\"path\":\"status/leader\"}")).unwrap(),
            "/v1/status/leader"
        );
        assert_eq!(request(json!({})).unwrap(), "/v1/");
        let e = request(json!({"path": 7})).unwrap_err();
        assert!(matches!(
            e,
            ApiError::BadRequest {
                field: "Data.req.Params",
                ..
            }
        ));
        let e = HttpRequestData::from_envelope(&envelope(json!({"Params": {}})))
            .and_then(|data| data.into_http_request("api/{name}"))
            .unwrap_err();
        assert!(matches!(
            e,
            ApiError::BadRequest {
                field: "Data.req.Params",
                ..
            }
        ));
    }

    #[test]
    fn header_names_are_canonicalised() {
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("retry-after"), "Retry-After");
    }
}
