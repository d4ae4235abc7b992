//! The JSON shapes of the invocation protocol: the HTTP request inside `Data.req`, the timer inside
//! `Data.myTimer`, and the reply.
//!
//! The host serialises with Newtonsoft and reads case-insensitively, and versions differ in small
//! ways (`Query` as an object or as JSON text, `Body` absent when empty, timer dates without offset),
//! so everything here is read by hand, leniently, rather than with strict serde structs.

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

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
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

        let method = get_ci(&req, "Method")
            .map(as_text)
            .unwrap_or_else(|| "GET".to_owned());
        let query = object_or_json_text(get_ci(&req, "Query"))
            .iter()
            .map(|(k, v)| (k.clone(), as_text(v)))
            .collect();
        let headers = object_or_json_text(get_ci(&req, "Headers"))
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(", "),
                    other => as_text(other),
                };
                (name.clone(), value)
            })
            .collect();
        let body = get_ci(&req, "Body").map(as_text);
        Ok(HttpRequestData {
            method,
            query,
            headers,
            body,
        })
    }

    /// The plain request the `/api` router would have received had the host forwarded it: `route`
    /// is the function's route under `/api/`.
    pub fn into_http_request(self, route: &str) -> Result<Request<Body>, ApiError> {
        let method =
            Method::from_bytes(self.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                ApiError::bad_request("Data.req.Method", "the request method is not valid")
            })?;
        let mut uri = format!("/api/{route}");
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
    pub async fn from_http_response(function: &str, response: Response) -> Self {
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
            logs: vec![format!("{function} answered {status}")],
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
            let request = data.into_http_request("ServiceDiscovery").unwrap();
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
        let request = data.into_http_request("ServiceRegistrar").unwrap();
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.headers()["x-multi"], "a, b");
        assert!(request.headers().get("content-length").is_none());
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
    fn header_names_are_canonicalised() {
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("retry-after"), "Retry-After");
    }
}
