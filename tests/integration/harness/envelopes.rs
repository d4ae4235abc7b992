//! The host's invocation envelopes, as the Functions host builds them with forwarding off: an HTTP
//! trigger's request object (`Data.req`), the timer's `myTimer` and a queue message
//! (`queue_envelope`), each with the `sys` metadata.

use serde_json::{json, Value};

/// `2026-11-25T05:00:00.1234567Z`, the host's 7-digit fraction.
pub fn utc_now_7() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}.{:07}Z",
        now.format("%Y-%m-%dT%H:%M:%S"),
        now.timestamp_subsec_nanos() / 100
    )
}

pub fn sys_metadata(method_name: &str) -> Value {
    json!({
        "MethodName": method_name,
        "UtcNow": utc_now_7(),
        "RandGuid": uuid::Uuid::new_v4().to_string(),
    })
}

/// An HTTP trigger request object (`Data.req`).
pub struct ReqEnvelope {
    pub function: String,
    pub method: String,
    pub url: String,
    pub query: Value,
    pub headers: Value,
    pub params: Value,
    pub body: Option<String>,
    pub extra_metadata: Vec<(String, Value)>,
}

impl ReqEnvelope {
    pub fn new(function: &str, method: &str) -> Self {
        ReqEnvelope {
            function: function.to_string(),
            method: method.to_string(),
            url: format!("https://myapp.azurewebsites.net/api/{function}"),
            query: json!({}),
            headers: json!({
                "Accept": ["application/json"],
                "Host": ["myapp.azurewebsites.net"],
                "User-Agent": ["curl/8.5.0"],
            }),
            params: json!({}),
            body: None,
            extra_metadata: vec![],
        }
    }

    /// Query as an object; also updates Url with the raw query string.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let mut obj = serde_json::Map::new();
        let mut url = url::Url::parse(&self.url).unwrap();
        {
            let mut qp = url.query_pairs_mut();
            for (k, v) in pairs {
                qp.append_pair(k, v);
                obj.insert((*k).to_string(), Value::String((*v).to_string()));
            }
        }
        if !pairs.is_empty() {
            self.url = url.to_string();
        }
        self.query = Value::Object(obj);
        self
    }

    /// Turn `Query` into its JSON-encoded string form (`"Query": "{...}"`).
    pub fn query_as_string(mut self) -> Self {
        self.query = Value::String(self.query.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers[name] = json!([value]);
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self.headers["Content-Type"] = json!(["application/json"]);
        self.headers["Content-Length"] = json!([body.len().to_string()]);
        self
    }

    pub fn metadata(mut self, key: &str, value: Value) -> Self {
        self.extra_metadata.push((key.to_string(), value));
        self
    }

    pub fn build(&self) -> Value {
        let mut req = json!({
            "Url": self.url,
            "Method": self.method,
            "Query": self.query,
            "Headers": self.headers,
            "Params": self.params,
            "Identities": [{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Claims": [], "Name": null}],
        });
        if let Some(b) = &self.body {
            req["Body"] = Value::String(b.clone());
        }
        let mut metadata = serde_json::Map::new();
        for (k, v) in &self.extra_metadata {
            metadata.insert(k.clone(), v.clone());
        }
        metadata.insert("sys".to_string(), sys_metadata(&self.function));
        json!({ "Data": { "req": req }, "Metadata": Value::Object(metadata) })
    }
}

pub fn timer_info_object() -> Value {
    json!({
        "Schedule": { "AdjustForDST": true },
        "ScheduleStatus": {
            "Last": "2026-11-25T04:55:00+00:00",
            "Next": "2026-11-25T05:00:00+00:00",
            "LastUpdated": "2026-11-25T04:55:00.0123456+00:00"
        },
        "IsPastDue": false
    })
}

pub fn timer_envelope(my_timer: Value) -> Value {
    json!({
        "Data": { "myTimer": my_timer },
        "Metadata": { "sys": sys_metadata("HealthMonitor") }
    })
}

/// One queue message as the host's queue listener holds it when it invokes the function.
pub struct QueueDelivery<'a> {
    pub id: &'a str,
    pub pop_receipt: &'a str,
    pub dequeue_count: u64,
    /// The message text (after the queue's base64 is undone).
    pub text: &'a str,
}

/// The queue trigger's envelope exactly as the host builds it for a custom handler
/// (docs/functions-host-protocol.md, "The queue trigger"):
/// - `Data.<name>`: the message text is a string input, which the host serialises once more, so
///   the value is a JSON string holding the text's JSON encoding (`"\"{\\\"v\\\":1}\""`);
/// - `Metadata`: the trigger's binding data with every scalar JSON-encoded into a string
///   (`"DequeueCount": "1"`, `"Id": "\"…\""`), dates as text, `sys` an object; and, because the
///   text is JSON, each top-level field of the message that is not an array copied in as the
///   JSON encoding of its text (`"v": "\"1\""`, `"sweep": "\"…\""`).
///
/// `numeric_count`: the docs' older example instead (`"DequeueCount": 1`, unquoted `Id`).
pub fn queue_envelope(
    function: &str,
    name: &str,
    message: &QueueDelivery,
    numeric_count: bool,
) -> Value {
    let encode = |text: &str| Value::String(serde_json::to_string(text).unwrap());
    let now = chrono::Utc::now();
    let date = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let mut metadata = serde_json::Map::new();
    if numeric_count {
        metadata.insert("DequeueCount".into(), json!(message.dequeue_count));
        metadata.insert("Id".into(), json!(message.id));
        metadata.insert("PopReceipt".into(), json!(message.pop_receipt));
    } else {
        metadata.insert(
            "DequeueCount".into(),
            json!(message.dequeue_count.to_string()),
        );
        metadata.insert("Id".into(), encode(message.id));
        metadata.insert("PopReceipt".into(), encode(message.pop_receipt));
    }
    metadata.insert("InsertionTime".into(), json!(date(now)));
    metadata.insert(
        "ExpirationTime".into(),
        json!(date(now + chrono::Duration::minutes(5))),
    );
    metadata.insert(
        "NextVisibleTime".into(),
        json!(date(now + chrono::Duration::minutes(10))),
    );
    // `Utility.ApplyBindingData`: the JSON message's top-level fields, arrays left out, each as
    // its text, then JSON-encoded like every other scalar.
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(message.text) {
        for (field, value) in fields {
            let text = match &value {
                Value::Array(_) => continue,
                Value::Object(_) => {
                    metadata.insert(field, value);
                    continue;
                }
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            metadata.insert(field, encode(&text));
        }
    }
    metadata.insert("sys".into(), sys_metadata(function));
    json!({
        "Data": { name: encode(message.text) },
        "Metadata": Value::Object(metadata),
    })
}
