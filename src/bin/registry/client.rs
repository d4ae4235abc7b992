//! The registry's HTTP API as the CLI and the agent call it: one place that adds the credential,
//! reads the JSON answer and decides what a failure means (retry later, or give up).
//!
//! Secrets: the key or token goes into a header marked sensitive and is never formatted; transport
//! errors are printed without their URL, so a `?code=` a user put in `--url` cannot leak either.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// How the CLI proves who it is: a function key (`x-functions-key`) or a bearer token.
#[derive(Clone)]
pub enum Credential {
    None,
    Key(String),
    Token(String),
}

/// What a call came back with.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub etag: Option<String>,
}

/// Why a call did not succeed, split by what a caller should do about it.
#[derive(Debug)]
pub enum Failure {
    /// No answer: connection refused, reset, timed out. Worth retrying.
    Unreachable(String),
    /// The registry answered with an error status; `body` is its JSON error (or null).
    Refused {
        status: StatusCode,
        body: Value,
        retry_after: Option<Duration>,
    },
}

impl Failure {
    /// Whether waiting and trying again can help: no answer, storage faults (503), overload (429),
    /// a slow body (408), a contended row (409), or any server error.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Unreachable(_) => true,
            Failure::Refused { status, .. } => {
                status.is_server_error() || matches!(status.as_u16(), 408 | 409 | 429)
            }
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Unreachable(_) => None,
            Failure::Refused { status, .. } => Some(*status),
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Unreachable(_) => None,
            Failure::Refused { retry_after, .. } => *retry_after,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "registry unreachable: {why}"),
            Failure::Refused { status, body, .. } => {
                write!(f, "registry answered {}", status.as_u16())?;
                if let Some(error) = body.get("error").and_then(Value::as_str) {
                    write!(f, ": {error}")?;
                }
                if let Some(field) = body.get("field").and_then(Value::as_str) {
                    write!(f, " (field {field})")?;
                }
                Ok(())
            }
        }
    }
}

/// A transport error with its causes ("connection refused" is in a source), but not its URL.
fn unreachable(error: reqwest::Error) -> Failure {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    Failure::Unreachable(text)
}

pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(url: &str, credential: Credential, timeout: Duration) -> Result<Client, String> {
        let base = url.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).map_err(|e| format!("--url / REGISTRY_URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("--url / REGISTRY_URL must be an http:// or https:// URL".into());
        }
        let mut headers = HeaderMap::new();
        let header = match &credential {
            Credential::None => None,
            Credential::Key(key) => Some(("x-functions-key", key.clone())),
            Credential::Token(token) => Some((AUTHORIZATION.as_str(), format!("Bearer {token}"))),
        };
        if let Some((name, value)) = header {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                "the key or token holds characters a header cannot carry".to_string()
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {}", e.without_url()))?;
        Ok(Client { base, http })
    }

    /// One call; a 2xx or 304 is an `Answer`, anything else a `Failure`.
    pub async fn call(
        &self,
        method: Method,
        function: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_none_match: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut request = self
            .http
            .request(method, format!("{}/api/{function}", self.base))
            .query(query);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(tag) = if_none_match {
            request = request.header(IF_NONE_MATCH, tag);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(ETAG);
        let retry_after = header(RETRY_AFTER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            Ok(Answer { status, body, etag })
        } else {
            Err(Failure::Refused {
                status,
                body,
                retry_after,
            })
        }
    }
}
