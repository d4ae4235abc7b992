//! An imitation of an Event Grid custom topic's publish endpoint on 127.0.0.1, written from Event
//! Grid's publish documentation (docs/events.md lists the sources): `POST /api/events` with
//! `api-version=2018-01-01`, the topic key in `aeg-sas-key`, a CloudEvents batch
//! (`application/cloudevents-batch+json`, a JSON array of CloudEvents 1.0 with `specversion`, `id`,
//! `source` and `type`), at most 1 MB per request and 64 KB per event. It answers as the service
//! does: 200 with an empty body when it accepts the batch, 401 for a missing or wrong key, 400 for
//! a body that is not a batch of CloudEvents, 413 past the size limits; and it records what it
//! accepted and every request's headers, so a test asserts what the handler sent.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// One request as the topic saw it: its headers (lowercase names) and its query string.
pub type SeenRequest = (Vec<(String, String)>, String);

#[derive(Default)]
struct Topic {
    key: String,
    /// Every batch accepted, in order.
    accepted: Mutex<Vec<Vec<Value>>>,
    /// Every request's headers (lowercase names) and query, accepted or not.
    requests: Mutex<Vec<SeenRequest>>,
}

pub struct EventGridTopic {
    /// The endpoint the handler is given (`HEALTH_EVENTS_TOPIC_ENDPOINT`).
    pub endpoint: String,
    state: Arc<Topic>,
}

impl EventGridTopic {
    /// A topic whose access key is `key`.
    pub async fn start(key: &str) -> EventGridTopic {
        let state = Arc::new(Topic {
            key: key.to_owned(),
            ..Topic::default()
        });
        let app = axum::Router::new()
            .route("/api/events", axum::routing::post(publish))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        EventGridTopic {
            endpoint: format!("http://127.0.0.1:{port}/api/events"),
            state,
        }
    }

    /// The batches accepted so far.
    pub fn accepted(&self) -> Vec<Vec<Value>> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// Every request's headers (lowercase names) and query string.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, axum::Json<Value>) {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
}

async fn publish(
    State(topic): State<Arc<Topic>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, (StatusCode, axum::Json<Value>)> {
    let seen: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let query = uri.query().unwrap_or("").to_owned();
    topic.requests.lock().unwrap().push((seen, query.clone()));
    if !query
        .split('&')
        .any(|pair| pair == "api-version=2018-01-01")
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "api-version 2018-01-01 expected",
        ));
    }
    let key = headers.get("aeg-sas-key").and_then(|v| v.to_str().ok());
    if key != Some(topic.key.as_str()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing or wrong aeg-sas-key",
        ));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/cloudevents-batch+json") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "a CloudEvents batch expected",
        ));
    }
    if body.len() > 1024 * 1024 {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "over 1 MB",
        ));
    }
    let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(&body) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "a JSON array expected",
        ));
    };
    for event in &events {
        if event.to_string().len() > 64 * 1024 {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "an event over 64 KB",
            ));
        }
        let required = ["id", "source", "type"]
            .iter()
            .all(|name| event[name].as_str().is_some_and(|s| !s.is_empty()));
        if event["specversion"] != "1.0" || !required {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "not a CloudEvents 1.0 event",
            ));
        }
    }
    topic.accepted.lock().unwrap().push(events);
    Ok(StatusCode::OK)
}
