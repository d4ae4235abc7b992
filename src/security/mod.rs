//! Who is calling, and whether a browser page may: the layer in front of the API.
//!
//! `Security` is built once from `SecuritySettings`. For each request to a function it checks the
//! `Origin` (`origin`), then finds the caller, in this order:
//!
//! 1. nothing configured: everyone is `anonymous` with every right (the loopback dev loop; the
//!    Functions host, whose function keys stay its own business; or `REGISTRY_ALLOW_ANONYMOUS`);
//! 2. under the host with `REGISTRY_TRUST_CLIENT_PRINCIPAL`: App Service's `X-MS-CLIENT-PRINCIPAL`
//!    (`principal`);
//! 3. `Authorization: Bearer <credential>`: an API key (`api_keys`), else, when it has a token's
//!    shape and Entra is configured, an access token (`entra`);
//! 4. `x-functions-key: <key>`, so a client sends its key the same way under the host and alone;
//! 5. otherwise 401.
//!
//! When nothing is configured, a standalone listener also answers only `Host` values naming it
//! (`host`: DNS rebinding).
//!
//! Rule 1 leans on the host's function keys, and the Consul-compatible API (`/v1/...`, the
//! `ConsulApi` function) has none: Consul clients cannot send one, so its function.json says
//! `authLevel: anonymous`. Under the host with nothing configured it is therefore refused
//! (`consul_refusal`), unless `REGISTRY_ALLOW_ANONYMOUS=true` opens it on purpose, the same opt-in a
//! standalone handler on a reachable address needs to start.
//!
//! The admitted `Caller` goes into the request's extensions for the handlers, which check scopes
//! once they have parsed their input; the caller's identity and the decision go into the
//! response's extensions (`AuthRecord`) for the request log line.

mod api_keys;
mod caller;
mod entra;
mod host;
mod jwks;
mod origin;
mod principal;

pub use caller::{Caller, Identity};
pub use host::{refuse_other_hosts, HostPolicy};
pub use origin::OriginPolicy;

use crate::configuration::SecuritySettings;
use crate::error::ApiError;
use api_keys::KeyRing;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use entra::TokenVerifier;
use std::sync::Arc;

pub struct Security {
    /// No authentication configured: every caller is anonymous.
    open: bool,
    keys: KeyRing,
    tokens: Option<TokenVerifier>,
    trust_client_principal: bool,
    /// `REGISTRY_ALLOW_ANONYMOUS`: anonymous access chosen, not merely nothing configured.
    allow_anonymous: bool,
    /// Custom-handler mode: the Functions host is in front, checking function keys where
    /// function.json asks for them.
    under_host: bool,
    pub origins: OriginPolicy,
}

/// What the log line says about a request's caller.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    /// `anonymous`, `key:<id>`, `token:<oid>`, `principal:<id>`, or `-` when none was admitted.
    pub caller: String,
    /// `allowed`, `forbidden` (403) or `unauthenticated` (401).
    pub decision: &'static str,
}

impl Security {
    pub fn new(settings: &SecuritySettings) -> Self {
        Security {
            open: !settings.authentication_configured(),
            keys: KeyRing::new(settings.api_keys.clone()),
            tokens: settings.entra.as_ref().map(TokenVerifier::new),
            trust_client_principal: settings.trust_client_principal,
            allow_anonymous: settings.allow_anonymous,
            under_host: false,
            origins: OriginPolicy::new(settings.allowed_origins.clone()),
        }
    }

    /// The same, for a handler the Functions host started (custom-handler mode).
    pub fn under_host(mut self) -> Self {
        self.under_host = true;
        self
    }

    /// Why a request to the Consul-compatible API (`/v1/...`) is refused before anything else, if
    /// it is: under the host with no authentication configured and anonymous access not chosen,
    /// nothing (not the host's function keys, which `ConsulApi` does not ask for) would check its
    /// callers. A 403 naming the variables that open it.
    pub fn consul_refusal(&self) -> Option<ApiError> {
        (self.under_host && self.open && !self.allow_anonymous).then(|| ApiError::Forbidden {
            field: Some("Authorization"),
            message:
                "the Consul API is not served under the Functions host without authentication: \
                      set REGISTRY_API_KEYS (or REGISTRY_API_KEYS_FILE, REGISTRY_ENTRA_*), or \
                      REGISTRY_ALLOW_ANONYMOUS=true to serve it to anyone"
                    .into(),
        })
    }

    /// The caller these headers authenticate, or why not.
    pub async fn admit(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        self.origins.check(headers)?;
        if self.open {
            return Ok(Caller::anonymous());
        }
        if self.trust_client_principal {
            if let Some(value) = headers.get(principal::HEADER) {
                let text = value.to_str().unwrap_or_default();
                return principal::caller(text).map_err(|why| ApiError::Unauthenticated {
                    field: "X-MS-CLIENT-PRINCIPAL",
                    message: why,
                    presented: true,
                });
            }
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let credential = value
                .to_str()
                .ok()
                .and_then(|text| {
                    let (scheme, rest) = text.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                })
                .filter(|credential| !credential.is_empty())
                .ok_or_else(|| ApiError::Unauthenticated {
                    field: "Authorization",
                    message: "the Authorization header must be `Bearer <key or token>`".into(),
                    presented: true,
                })?;
            if let Some(caller) = self.keys.caller(credential) {
                return Ok(caller);
            }
            if let Some(tokens) = &self.tokens {
                if entra::looks_like_jwt(credential) {
                    return tokens.caller(credential).await;
                }
            }
            return Err(ApiError::Unauthenticated {
                field: "Authorization",
                message: "the bearer credential is not a known key or a valid token".into(),
                presented: true,
            });
        }
        if !self.keys.is_empty() {
            if let Some(value) = headers.get("x-functions-key") {
                let key = value.to_str().unwrap_or_default().trim();
                return self
                    .keys
                    .caller(key)
                    .ok_or_else(|| ApiError::Unauthenticated {
                        field: "x-functions-key",
                        message: "x-functions-key is not a known key".into(),
                        presented: true,
                    });
            }
        }
        Err(ApiError::Unauthenticated {
            field: "Authorization",
            message: "authentication required: send Authorization: Bearer <key or token>".into(),
            presented: false,
        })
    }
}

/// The layer on every function route: admits the caller (or answers 401/403 itself) and records
/// who it was for the log line.
pub async fn authenticate(
    State(security): State<Arc<Security>>,
    mut request: Request,
    next: Next,
) -> Response {
    match security.admit(request.headers()).await {
        Ok(caller) => {
            let shown = caller.identity.to_string();
            request.extensions_mut().insert(caller);
            let mut response = next.run(request).await;
            let decision = if response.status() == StatusCode::FORBIDDEN {
                "forbidden"
            } else {
                "allowed"
            };
            response.extensions_mut().insert(AuthRecord {
                caller: shown,
                decision,
            });
            response
        }
        Err(e) => {
            let decision = match e.status() {
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::UNAUTHORIZED => "unauthenticated",
                _ => "unavailable",
            };
            let mut response = e.into_response();
            response.extensions_mut().insert(AuthRecord {
                caller: "-".into(),
                decision,
            });
            response
        }
    }
}

/// The layer on the whole server in custom-handler mode: refuses every `/v1/` request while
/// `Security::consul_refusal` says so (envelopes for `ConsulApi` ask it themselves).
pub async fn refuse_unguarded_consul(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    let consul = request.uri().path() == "/v1" || request.uri().path().starts_with("/v1/");
    match security.consul_refusal().filter(|_| consul) {
        None => next.run(request).await,
        Some(e) => {
            let mut response = e.into_response();
            response.extensions_mut().insert(AuthRecord {
                caller: "-".into(),
                decision: "forbidden",
            });
            response
        }
    }
}

/// The layer on the whole server: refuses browser pages from other origins on every route
/// (preflights and unknown paths included) before CORS or routing answer them.
pub async fn refuse_foreign_origins(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    match security.origins.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let mut response = e.into_response();
            response.extensions_mut().insert(AuthRecord {
                caller: "-".into(),
                decision: "forbidden",
            });
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consul_api_is_refused_only_under_the_host_with_nothing_checking_callers() {
        let open = SecuritySettings::default();
        assert!(
            Security::new(&open).consul_refusal().is_none(),
            "standalone"
        );
        let refusal = Security::new(&open).under_host().consul_refusal().unwrap();
        assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
        assert!(
            refusal.to_string().contains("REGISTRY_ALLOW_ANONYMOUS"),
            "{refusal}"
        );
        let chosen = SecuritySettings {
            allow_anonymous: true,
            ..SecuritySettings::default()
        };
        assert!(Security::new(&chosen)
            .under_host()
            .consul_refusal()
            .is_none());
        let principal = SecuritySettings {
            trust_client_principal: true,
            ..SecuritySettings::default()
        };
        assert!(Security::new(&principal)
            .under_host()
            .consul_refusal()
            .is_none());
    }
}
