//! The managed-identity credential the Tables crate signs requests with.
//!
//! azure_identity 0.21, the identity crate of the Tables crate's line, can ask only for the
//! system-assigned identity; Service Connector's user-assigned connection sets
//! `AZURE_STORAGETABLE_CLIENTID`, which needs `client_id` on the token request. So this file
//! implements the Tables crate's token trait (`azure_core::auth::TokenCredential`) itself, over the
//! protocols in `protocol` (App Service's `IDENTITY_ENDPOINT`, the instance metadata service as the
//! fallback; docs/managed-identity.md).
//!
//! Every table request asks for a token, so tokens are cached and fetched again five minutes before
//! they expire. One fetch runs at a time: callers that arrive meanwhile use the current token while
//! it is still valid, or wait for the fetch and share its result, failure included, so an identity
//! outage costs one token request per wait, not one per caller. A failed refresh keeps a still-valid
//! token in use. Each fetch is bounded by `IdentitySettings::timeout`. A token or the
//! `X-IDENTITY-HEADER` value never reaches an error or a log line.
//!
//! The resource (audience) is the caller's: the Tables crate asks for storage's through the token
//! trait, the Service Connector sync for Resource Manager's through `access_token`. Each user holds
//! its own credential, so the one-token cache never alternates between two audiences.
//!
//! A module of its own rather than part of the store: it speaks to the identity endpoint, not to
//! table storage, and the Service Connector sync's ARM client signs with it too.

mod protocol;

use crate::configuration::IdentitySettings;
use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::error::{Error, ErrorKind};
use protocol::{Token, TokenEndpoint};
use std::time::{Duration, Instant, SystemTime};

/// Fetch a new token this long before the current one expires (Microsoft's SDKs refresh five
/// minutes early too). A token issued for less than this is fetched again on every use.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// A token closer to its expiry than this is not used at all: the request it signs could arrive late.
const MIN_REMAINING: Duration = Duration::from_secs(30);
/// Token answers are a few kilobytes; a longer one is not read to the end.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct ManagedIdentityCredential {
    http: reqwest::Client,
    endpoint: TokenEndpoint,
    client_id: Option<String>,
    timeout: Duration,
    /// The token in use, read without waiting for a fetch in progress.
    current: std::sync::RwLock<Option<Cached>>,
    /// Held while fetching; remembers the last failed fetch, to hand to those who waited for it.
    fetching: tokio::sync::Mutex<Option<Failure>>,
}

#[derive(Clone)]
struct Cached {
    resource: String,
    token: Token,
}

struct Failure {
    finished: Instant,
    message: String,
}

impl ManagedIdentityCredential {
    pub fn new(settings: &IdentitySettings) -> Self {
        Self::with_endpoint(
            TokenEndpoint::from_settings(&settings.source),
            settings.client_id.clone(),
            settings.timeout,
        )
    }

    fn with_endpoint(
        endpoint: TokenEndpoint,
        client_id: Option<String>,
        timeout: Duration,
    ) -> Self {
        // No proxy: the token services are local to the machine, and the header must not travel
        // further. No redirects, for the same reason.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .expect("a reqwest client with rustls and static settings always builds");
        ManagedIdentityCredential {
            http,
            endpoint,
            client_id,
            timeout,
            current: std::sync::RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    /// A bearer token for `resource` (a v1 resource such as `https://management.azure.com/`), with
    /// the same caching and refresh rules as the tables' tokens. Errors are safe to log.
    pub async fn access_token(
        &self,
        resource: &str,
    ) -> Result<crate::configuration::Secret, String> {
        let token = self.token(resource).await?;
        Ok(crate::configuration::Secret::new(token.secret.secret()))
    }

    /// The cached token for `resource` if it has at least `margin` left.
    fn cached(&self, resource: &str, margin: Duration) -> Option<Token> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|c| c.resource == resource && c.token.remaining(SystemTime::now()) > margin)
            .map(|c| c.token.clone())
    }

    async fn token(&self, resource: &str) -> Result<Token, String> {
        if let Some(token) = self.cached(resource, REFRESH_BEFORE_EXPIRY) {
            return Ok(token);
        }
        let waiting_since = Instant::now();
        let mut last_failure = match self.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone is fetching: a token that is still valid serves meanwhile.
                if let Some(token) = self.cached(resource, MIN_REMAINING) {
                    return Ok(token);
                }
                self.fetching.lock().await
            }
        };
        // The fetch we waited for may have succeeded, or failed: either way, its result is ours.
        if let Some(token) = self.cached(resource, REFRESH_BEFORE_EXPIRY) {
            return Ok(token);
        }
        if let Some(failure) = last_failure
            .as_ref()
            .filter(|f| f.finished >= waiting_since)
        {
            return Err(failure.message.clone());
        }
        let fetched = tokio::time::timeout(self.timeout, self.fetch(resource))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{} gave no token within {} ms",
                    self.endpoint.describe(),
                    self.timeout.as_millis()
                ))
            });
        match fetched {
            Ok(token) => {
                tracing::info!(
                    source = %self.endpoint.describe(),
                    identity = if self.client_id.is_some() { "user-assigned" } else { "system-assigned" },
                    valid_for_s = token.remaining(SystemTime::now()).as_secs(),
                    "managed identity token acquired"
                );
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
                    resource: resource.to_owned(),
                    token: token.clone(),
                });
                *last_failure = None;
                Ok(token)
            }
            Err(message) => {
                *last_failure = Some(Failure {
                    finished: Instant::now(),
                    message: message.clone(),
                });
                match self.cached(resource, MIN_REMAINING) {
                    Some(token) => {
                        tracing::warn!(error = %message, "managed identity token refresh failed; the current token is still valid and stays in use");
                        Ok(token)
                    }
                    None => Err(message),
                }
            }
        }
    }

    async fn fetch(&self, resource: &str) -> Result<Token, String> {
        let url = self
            .endpoint
            .request_url(resource, self.client_id.as_deref());
        let (name, value) = self.endpoint.proof_header();
        let unreachable = |e: reqwest::Error| {
            protocol::scrub(
                &format!(
                    "{} unreachable: {}",
                    self.endpoint.describe(),
                    crate::telemetry::error_chain(&e.without_url())
                ),
                &self.endpoint,
            )
        };
        let mut response = self
            .http
            .get(url)
            .header(name, value)
            .send()
            .await
            .map_err(unreachable)?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "{} answered with more than {MAX_ANSWER_BYTES} bytes",
                    self.endpoint.describe()
                ));
            }
        }
        let status = response.status();
        if !status.is_success() {
            return Err(protocol::failure(&self.endpoint, status.as_u16(), &body));
        }
        protocol::parse_token(&body, SystemTime::now())
            .map_err(|reason| format!("{}: {reason}", self.endpoint.describe()))
    }
}

#[async_trait::async_trait]
impl TokenCredential for ManagedIdentityCredential {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let resource = protocol::resource_of(scopes).map_err(credential_error)?;
        let token = self.token(&resource).await.map_err(credential_error)?;
        Ok(AccessToken::new(token.secret, token.expires_at.into()))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}

/// A credential error: the store counts it as an outage (a 503 the caller may retry).
fn credential_error(message: String) -> Error {
    Error::message(
        ErrorKind::Credential,
        format!("managed identity: {message}"),
    )
}

/// Names the endpoint and the identity, never the header.
impl std::fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedIdentityCredential")
            .field("endpoint", &self.endpoint.describe())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
