//! Answers as the tests read them: a forwarded response, an invocation envelope's reply, the
//! error body every route shares, and the sweep's report in an invocation's Logs.

use serde_json::Value;
use service_registry::health::SweepReport;

/// A response read fully.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("read body");
        Resp {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {}; body: {:?}",
                self.status, self.text
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_string())
    }

    pub fn assert_json_content_type(&self) {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "Content-Type should be application/json, got {ct:?} (status {}, body {})",
            self.status,
            self.text
        );
    }

    /// Assert an error response: status, JSON content type, non-empty `error`, and `field`.
    pub fn assert_error(&self, status: u16, field: Option<&str>) -> Value {
        assert_eq!(
            self.status, status,
            "expected status {status}, got {} with body {}",
            self.status, self.text
        );
        self.assert_json_content_type();
        let v = self.json();
        assert_error_body(&v, field);
        v
    }

    /// Assert the answer of a request storage could not serve: 503, the JSON error body, and a
    /// `Retry-After` of 1 s to an hour. `what` names the request in the failure message.
    pub fn assert_503(&self, what: &str) {
        assert_eq!(
            self.status, 503,
            "{what} with storage down must answer 503, got {} {}",
            self.status, self.text
        );
        self.assert_json_content_type();
        assert_error_body(&self.json(), None);
        let ra = self
            .header("retry-after")
            .unwrap_or_else(|| panic!("{what}: 503 without Retry-After header"));
        let secs: u64 = ra
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{what}: Retry-After must be seconds, got {ra:?}"));
        assert!((1..=3600).contains(&secs), "{what}: Retry-After {secs}");
    }

    /// Parse an envelope reply: HTTP 200, JSON, Outputs.res present. Returns (statusCode, body text, headers).
    pub fn envelope_res(&self) -> EnvRes {
        assert_eq!(
            self.status, 200,
            "envelope reply must be HTTP 200, got {} body {}",
            self.status, self.text
        );
        self.assert_json_content_type();
        let v = self.json();
        check_envelope_shape(&v);
        let res = v["Outputs"]["res"].clone();
        assert!(res.is_object(), "Outputs.res must be an object: {v}");
        let status = res["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("Outputs.res.statusCode must be a number: {v}"))
            as u16;
        let body = res["body"]
            .as_str()
            .unwrap_or_else(|| panic!("Outputs.res.body must be a string: {v}"))
            .to_string();
        let headers = res["headers"].clone();
        let hmap = headers
            .as_object()
            .unwrap_or_else(|| panic!("Outputs.res.headers must be an object: {v}"));
        for (k, val) in hmap {
            assert!(
                val.is_string(),
                "Outputs.res.headers.{k} must be a string, got {val}"
            );
        }
        EnvRes {
            status,
            body,
            headers,
            logs: logs_of(&v),
            raw: v,
        }
    }
}

pub struct EnvRes {
    pub status: u16,
    pub body: String,
    pub headers: Value,
    pub logs: Vec<String>,
    pub raw: Value,
}

impl EnvRes {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("Outputs.res.body is not JSON ({e}): {:?}", self.body))
    }

    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.as_object().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        })
    }
}

/// The fixed envelope shape: Outputs object, Logs array of strings (or absent/null), ReturnValue null.
pub fn check_envelope_shape(v: &Value) {
    assert!(v.is_object(), "envelope reply must be a JSON object: {v}");
    assert!(
        v["Outputs"].is_object(),
        "envelope reply must carry an Outputs object: {v}"
    );
    match &v["Logs"] {
        Value::Null => {}
        Value::Array(a) => {
            for l in a {
                assert!(l.is_string(), "Logs entries must be strings: {v}");
            }
        }
        other => panic!("Logs must be an array of strings, got {other}"),
    }
    assert!(
        v.get("ReturnValue").is_some_and(Value::is_null),
        "ReturnValue must be present and null: {v}"
    );
}

pub fn logs_of(v: &Value) -> Vec<String> {
    v["Logs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn assert_error_body(v: &Value, field: Option<&str>) {
    let err = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error body must have a string `error`: {v}"));
    assert!(!err.trim().is_empty(), "`error` must not be empty: {v}");
    if let Some(f) = field {
        assert_eq!(
            v["field"].as_str(),
            Some(f),
            "error body should name field {f:?}: {v}"
        );
    }
}

/// The sweep's report, read back by name from the summary line in an invocation's Logs: the one
/// way a test reads what a sweep did (`Handler::sweep_report` sweeps and reads it in one step).
pub fn sweep_report(logs: &[String]) -> Option<SweepReport> {
    logs.iter().find_map(|line| SweepReport::from_summary(line))
}
