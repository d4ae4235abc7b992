//! Azure Resource Manager's list operations as the sync needs them: one GET per page with the
//! managed identity's bearer token, `nextLink` followed to the end, 429 waited out as `Retry-After`
//! asks within the sync's budget (docs/arm-protocol.md has the shapes and their sources).
//!
//! Every failure gives up the whole listing (the caller then deletes nothing): a partial list is
//! indistinguishable from linkers that were removed. A `nextLink` must stay on the configured ARM
//! origin, so the token is never sent anywhere else; redirects are not followed for the same
//! reason. Errors name the status and the resource path, never the token or a query string.

use crate::configuration::{ArmSyncSettings, Secret};
use crate::identity::ManagedIdentityCredential;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// A list page is tens of kilobytes; more than this is not read.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// 429 answers waited out for one page before the round gives up.
const MAX_THROTTLED: u32 = 3;
/// When a 429 carries no readable `Retry-After` (ARM's always does).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListError {
    #[error("managed identity gave no ARM token: {0}")]
    Token(String),
    #[error("GET {path} unreachable: {reason}")]
    Unreachable { path: String, reason: String },
    #[error("GET {path} answered {status}{code}")]
    Status {
        path: String,
        status: u16,
        /// ARM's own `error.code`, with its leading `: `, when the body had one.
        code: String,
    },
    #[error("GET {path} still throttled (429) after {attempts} waits; retry next round")]
    Throttled { path: String, attempts: u32 },
    #[error("GET {path} asked to wait {wait_ms} ms (Retry-After), beyond this round's budget")]
    WaitTooLong { path: String, wait_ms: u128 },
    #[error("GET {path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("listing {path} took more than {pages} pages")]
    TooManyPages { path: String, pages: u32 },
    #[error("the sync's deadline passed during GET {path}")]
    Deadline { path: String },
}

pub struct ArmClient {
    http: reqwest::Client,
    credential: ManagedIdentityCredential,
    endpoint: String,
    audience: String,
    max_pages: u32,
    max_retry_after: Duration,
}

impl ArmClient {
    pub fn new(settings: &ArmSyncSettings) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.request_timeout)
            .timeout(settings.request_timeout)
            .build()
            .expect("a reqwest client with rustls and static settings always builds");
        ArmClient {
            http,
            credential: ManagedIdentityCredential::new(&settings.identity),
            endpoint: settings.endpoint.clone(),
            audience: settings.audience.clone(),
            max_pages: settings.max_pages,
            max_retry_after: settings.max_retry_after,
        }
    }

    /// Every item of a paged list: `path` is a resource path starting with `/`, `api_version` its
    /// provider's. Gives up at the first failure or at `deadline`.
    pub async fn list(
        &self,
        path: &str,
        api_version: &str,
        deadline: Instant,
    ) -> Result<Vec<Value>, ListError> {
        let mut url = format!("{}{path}?api-version={api_version}", self.endpoint);
        let mut items = Vec::new();
        for _ in 0..self.max_pages {
            let page = self.page(&url, path, deadline).await?;
            let malformed = |reason: &str| ListError::Malformed {
                path: path.to_owned(),
                reason: reason.to_owned(),
            };
            let value = page
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("the answer has no value array"))?;
            items.extend(value.iter().cloned());
            match page.get("nextLink") {
                None | Some(Value::Null) => return Ok(items),
                Some(Value::String(next)) if next.is_empty() => return Ok(items),
                Some(Value::String(next)) => {
                    // The token goes to the configured ARM origin only.
                    if !next.starts_with(&format!("{}/", self.endpoint)) {
                        return Err(malformed(
                            "its nextLink leaves the configured ARM endpoint; not followed",
                        ));
                    }
                    url = next.clone();
                }
                Some(_) => return Err(malformed("its nextLink is not a string")),
            }
        }
        Err(ListError::TooManyPages {
            path: path.to_owned(),
            pages: self.max_pages,
        })
    }

    /// One page, waiting out 429s as asked while the deadline allows.
    async fn page(&self, url: &str, path: &str, deadline: Instant) -> Result<Value, ListError> {
        let mut throttled = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(remaining, self.get(url, path)).await;
            let (status, retry_after, body) = attempt.map_err(|_| ListError::Deadline {
                path: path.to_owned(),
            })??;
            match status {
                200 => {
                    return serde_json::from_slice(&body).map_err(|_| ListError::Malformed {
                        path: path.to_owned(),
                        reason: "the answer is not JSON".to_owned(),
                    })
                }
                429 => {
                    throttled += 1;
                    if throttled > MAX_THROTTLED {
                        return Err(ListError::Throttled {
                            path: path.to_owned(),
                            attempts: MAX_THROTTLED,
                        });
                    }
                    let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
                    if wait > self.max_retry_after || Instant::now() + wait >= deadline {
                        return Err(ListError::WaitTooLong {
                            path: path.to_owned(),
                            wait_ms: wait.as_millis(),
                        });
                    }
                    tracing::info!(
                        path,
                        wait_ms = wait.as_millis() as u64,
                        "ARM throttled the sync (429); waiting as Retry-After asks"
                    );
                    tokio::time::sleep(wait).await;
                }
                status => {
                    return Err(ListError::Status {
                        path: path.to_owned(),
                        status,
                        code: error_code(&body),
                    })
                }
            }
        }
    }

    async fn get(
        &self,
        url: &str,
        path: &str,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), ListError> {
        let token: Secret = self
            .credential
            .access_token(&self.audience)
            .await
            .map_err(ListError::Token)?;
        let unreachable = |e: reqwest::Error| ListError::Unreachable {
            path: path.to_owned(),
            reason: crate::telemetry::redact(&crate::telemetry::error_chain(&e.without_url())),
        };
        let mut response = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_PAGE_BYTES {
                return Err(ListError::Malformed {
                    path: path.to_owned(),
                    reason: format!("the answer is over {MAX_PAGE_BYTES} bytes"),
                });
            }
        }
        Ok((status, retry_after, body))
    }
}

/// `Retry-After` as seconds, or as an HTTP date (RFC 9110 allows both; ARM sends seconds).
fn retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// ARM's error body `{"error":{"code":…}}`: the code only (its message may quote anything).
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("code")?.as_str().map(str::to_owned))
        .filter(|code| {
            code.len() <= 80 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
        .map(|code| format!(": {code}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn only_a_plain_error_code_is_kept_from_an_error_body() {
        assert_eq!(
            error_code(br#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' with object id 'y' does not have authorization"}}"#),
            ": AuthorizationFailed"
        );
        assert_eq!(error_code(br#"{"error":{"code":"a b; token=x"}}"#), "");
        assert_eq!(error_code(b"<html>"), "");
    }
}
