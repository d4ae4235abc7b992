//! The Functions host's front door, imitated on 127.0.0.1: a listener that takes a public request,
//! routes it by the app's host.json and function.json (`host_routes`), checks the function key
//! where `authLevel` asks for one, and hands it to a running handler the way the host does, either
//! forwarded (`enableForwardingHttpRequest`, host.json's setting) or as an invocation envelope.
//! Client libraries that only speak HTTP (py-consul, node-consul) point at it as they would at a
//! function app.
//!
//! What the host changes on the way (docs/functions-host-protocol.md): the forwarded query is
//! rebuilt from its parsed form, so a repeated key arrives once with its values comma-joined; a
//! body is copied only when it had a `Content-Length`; the host adds its version, invocation id and
//! user agent. An envelope carries the route values in `Params`, a non-2xx reply to it is the
//! caller's 500, and its `Outputs.res` is the caller's answer.

use super::{sys_metadata, Handler, HostRoutes, HOST_VERSION};
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};

/// How the front end hands requests to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Forwarded,
    Envelope,
}

/// One request the front end passed on: which function, and the path and query the handler got
/// (`POST /<Function>` for an envelope).
#[derive(Debug, Clone)]
pub struct Passed {
    pub function: String,
    pub sent: String,
}

pub struct HostFront {
    pub port: u16,
    /// `http://127.0.0.1:<port>`: the function app's public address.
    pub base: String,
    passed: Arc<Mutex<Vec<Passed>>>,
    task: tokio::task::JoinHandle<()>,
}

struct FrontState {
    routes: HostRoutes,
    handler_base: String,
    function_key: String,
    delivery: Delivery,
    client: reqwest::Client,
    passed: Arc<Mutex<Vec<Passed>>>,
}

/// Azure's front end ends any HTTP call at 230 s, whatever the function's timeout; a handler
/// still holding a request then is cut off (here: a 502, with no body).
pub const FRONT_END_LIMIT: std::time::Duration = std::time::Duration::from_secs(230);

/// ASP.NET Core's `UrlEncoder`: everything but unreserved characters percent-encoded.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl HostFront {
    /// A front end for `handler`, routing by the repository's host.json and function.json files;
    /// `function_key` is the one key the host accepts for `authLevel: function`.
    pub async fn start(handler: &Handler, delivery: Delivery, function_key: &str) -> HostFront {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let passed = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(FrontState {
            routes: HostRoutes::load(super::manifest_dir()),
            handler_base: handler.base.clone(),
            function_key: function_key.to_owned(),
            delivery,
            // The host's client to the handler: no redirects, and cut at the front end's 230 s.
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(FRONT_END_LIMIT)
                .build()
                .unwrap(),
            passed: passed.clone(),
        });
        let app = axum::Router::new().fallback(move |request: Request| {
            let state = state.clone();
            async move { front(state, request).await }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        HostFront {
            port,
            base: format!("http://127.0.0.1:{port}"),
            passed,
            task,
        }
    }

    /// Every request passed to the handler so far, in order.
    pub fn passed(&self) -> Vec<Passed> {
        self.passed.lock().unwrap().clone()
    }
}

impl Drop for HostFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: StatusCode) -> Response {
    Response::builder()
        .status(code)
        .body(Body::empty())
        .unwrap()
}

/// The query as the host rebuilds it: parsed, a repeated key's values comma-joined, re-encoded.
pub fn rebuilt_query(query: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()).into_owned() {
        match pairs.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&key)) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => pairs.push((key, value)),
        }
    }
    pairs
}

async fn front(state: Arc<FrontState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = rebuilt_query(parts.uri.query().unwrap_or_default());
    let Some(matched) = state.routes.resolve(parts.method.as_str(), &path) else {
        return status(StatusCode::NOT_FOUND);
    };
    if matched.auth_level != "anonymous" {
        let presented = query
            .iter()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                parts
                    .headers
                    .get("x-functions-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
        if presented.as_deref() != Some(state.function_key.as_str()) {
            return status(StatusCode::UNAUTHORIZED);
        }
    }
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let body = to_bytes(body, 4 * 1024 * 1024).await.unwrap_or_default();
    let body = (declared > 0).then_some(body);
    let invocation = uuid::Uuid::new_v4().to_string();
    match state.delivery {
        Delivery::Forwarded => {
            let mut sent = path.clone();
            if !query.is_empty() {
                let encoded: Vec<String> = query
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            percent_encoding::utf8_percent_encode(k, QUERY),
                            percent_encoding::utf8_percent_encode(v, QUERY)
                        )
                    })
                    .collect();
                sent = format!("{sent}?{}", encoded.join("&"));
            }
            state.passed.lock().unwrap().push(Passed {
                function: matched.function.clone(),
                sent: sent.clone(),
            });
            let mut outgoing = state.client.request(
                parts.method.clone(),
                format!("{}{sent}", state.handler_base),
            );
            for (name, value) in &parts.headers {
                if [
                    "connection",
                    "transfer-encoding",
                    "content-length",
                    "user-agent",
                ]
                .contains(&name.as_str())
                {
                    continue;
                }
                outgoing = outgoing.header(name, value);
            }
            let agent = parts
                .headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            outgoing = outgoing
                .header("X-Azure-Functions-HostVersion", HOST_VERSION)
                .header("X-Azure-Functions-InvocationId", &invocation)
                .header(
                    "User-Agent",
                    format!("{agent} Azure-Functions-Host/{HOST_VERSION}").trim(),
                );
            if let Some(body) = body {
                outgoing = outgoing.body(body);
            }
            let Ok(answer) = outgoing.send().await else {
                return status(StatusCode::BAD_GATEWAY);
            };
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if !["connection", "transfer-encoding", "content-length"].contains(&name.as_str()) {
                    response = response.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).unwrap()
        }
        Delivery::Envelope => {
            let mut headers = Map::new();
            for (name, value) in &parts.headers {
                let value = value.to_str().unwrap_or_default().to_owned();
                match headers.get_mut(name.as_str()) {
                    Some(Value::Array(values)) => values.push(Value::from(value)),
                    _ => {
                        headers.insert(name.as_str().to_owned(), json!([value]));
                    }
                }
            }
            let query: Map<String, Value> = query
                .into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect();
            let host = parts
                .headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            let mut req = json!({
                "Url": format!("http://{host}{}", parts.uri),
                "Method": parts.method.as_str(),
                "Query": query,
                "Headers": headers,
                "Params": matched.params,
                "Identities": [],
            });
            if let Some(body) = body {
                req["Body"] = Value::from(String::from_utf8_lossy(&body).into_owned());
            }
            let envelope = json!({
                "Data": {"req": req},
                "Metadata": {"sys": sys_metadata(&matched.function)},
            });
            let sent = format!("/{}", matched.function);
            state.passed.lock().unwrap().push(Passed {
                function: matched.function.clone(),
                sent: sent.clone(),
            });
            let answer = state
                .client
                .post(format!("{}{sent}", state.handler_base))
                .header("Content-Type", "application/json; charset=utf-8")
                .header("X-Azure-Functions-HostVersion", HOST_VERSION)
                .header("X-Azure-Functions-InvocationId", &invocation)
                .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
                .body(envelope.to_string())
                .send()
                .await;
            let reply: Option<Value> = match answer {
                Ok(answer) if answer.status().is_success() => answer
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok()),
                _ => None,
            };
            let Some(res) = reply.as_ref().map(|r| &r["Outputs"]["res"]) else {
                // A failed invocation: the host answers the caller 500.
                return status(StatusCode::INTERNAL_SERVER_ERROR);
            };
            let code = res["statusCode"]
                .as_u64()
                .or_else(|| res["statusCode"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(200) as u16;
            let mut response = Response::builder().status(code);
            let mut header_map = HeaderMap::new();
            for (name, value) in res["headers"].as_object().into_iter().flatten() {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::try_from(name.as_str()),
                    value.as_str().map(HeaderValue::try_from),
                ) {
                    header_map.append(name, value);
                }
            }
            *response.headers_mut().unwrap() = header_map;
            let body = res["body"].as_str().unwrap_or_default().to_owned();
            response.body(Body::from(body)).unwrap()
        }
    }
}
