//! Azure Resource Manager's list operations as the sync needs them: one GET per page with the
//! managed identity's bearer token, `nextLink` followed to the end, 429 waited out as `Retry-After`
//! asks within the sync's budget (docs/arm-protocol.md has the shapes and their sources).
//!
//! Pages are handed over as they arrive: each is read into the caller's typed items one at a time
//! (`page`) and dropped before the next is asked for, so a listing costs one page's bytes however
//! long it is. Work is bounded by pages (`SERVICE_CONNECTOR_SYNC_MAX_PAGES`), by each page's bytes
//! (`MAX_PAGE_BYTES`) and by items (`SERVICE_CONNECTOR_SYNC_MAX_ITEMS`).
//!
//! Every failure gives up the whole listing (the caller then deletes nothing): a partial list is
//! indistinguishable from linkers that were removed. A `nextLink` must stay on the configured ARM
//! origin, so the token is never sent anywhere else; redirects are not followed for the same
//! reason. Errors name the status and the resource path, never the token or a query string.

use super::page::{self, PageError};
use crate::configuration::{ArmSyncSettings, Secret, MAX_ITEMS_VAR};
use crate::identity::ManagedIdentityCredential;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// A list page is tens of kilobytes; more than this is not read. With one page held at a time,
/// this is most of what a listing costs in memory.
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
    #[error("listing {path} holds more than {items} items ({MAX_ITEMS_VAR}); stopped there")]
    TooManyItems { path: String, items: usize },
    #[error("the sync's deadline passed during GET {path}")]
    Deadline { path: String },
}

pub struct ArmClient {
    http: reqwest::Client,
    credential: ManagedIdentityCredential,
    endpoint: String,
    audience: String,
    max_pages: u32,
    max_items: usize,
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
            max_items: settings.max_items,
            max_retry_after: settings.max_retry_after,
        }
    }

    /// Every item of a paged list, handed to `on_item` as its page arrives (`None` for an item
    /// that is not a `T`; an `Err` from it gives the listing up as malformed, with that reason):
    /// `path` is a resource path starting with `/`, `api_version` its provider's. Returns how many
    /// items there were. Gives up at the first failure, past the item cap, or at `deadline`.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        deadline: Instant,
        mut on_item: impl FnMut(Option<T>) -> Result<(), String>,
    ) -> Result<usize, ListError> {
        let mut url = format!("{}{path}?api-version={api_version}", self.endpoint);
        let mut items = 0usize;
        for _ in 0..self.max_pages {
            let body = self.page(&url, path, deadline).await?;
            let malformed = |reason: &str| ListError::Malformed {
                path: path.to_owned(),
                reason: reason.to_owned(),
            };
            let mut too_many = false;
            let next = page::read(&body, |item| {
                items += 1;
                if items > self.max_items {
                    too_many = true;
                    return Err(String::new());
                }
                on_item(item)
            });
            drop(body);
            let next = match next {
                Ok(next) => next,
                Err(PageError::Stopped(_)) if too_many => {
                    return Err(ListError::TooManyItems {
                        path: path.to_owned(),
                        items: self.max_items,
                    })
                }
                Err(PageError::Stopped(reason)) => return Err(malformed(&reason)),
                Err(PageError::NotJson) => return Err(malformed("the answer is not JSON")),
                Err(PageError::NoValueArray) => {
                    return Err(malformed("the answer has no value array"))
                }
                Err(PageError::BadNextLink) => {
                    return Err(malformed("its nextLink is not a string"))
                }
            };
            match next {
                None => return Ok(items),
                Some(next) if next.is_empty() => return Ok(items),
                Some(next) => {
                    // The token goes to the configured ARM origin only.
                    if !next.starts_with(&format!("{}/", self.endpoint)) {
                        return Err(malformed(
                            "its nextLink leaves the configured ARM endpoint; not followed",
                        ));
                    }
                    url = next;
                }
            }
        }
        Err(ListError::TooManyPages {
            path: path.to_owned(),
            pages: self.max_pages,
        })
    }

    /// One page's body, waiting out 429s as asked while the deadline allows.
    async fn page(&self, url: &str, path: &str, deadline: Instant) -> Result<Vec<u8>, ListError> {
        let mut throttled = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(remaining, self.get(url, path)).await;
            let (status, retry_after, body) = attempt.map_err(|_| ListError::Deadline {
                path: path.to_owned(),
            })??;
            match status {
                200 => return Ok(body),
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
        // Sized once from the declared length (within the cap), not grown by doubling.
        let declared = response.content_length().unwrap_or(0) as usize;
        let mut body = Vec::with_capacity(declared.min(MAX_PAGE_BYTES + 1));
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(ListError::Malformed {
                    path: path.to_owned(),
                    reason: format!("the answer is over {MAX_PAGE_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
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
