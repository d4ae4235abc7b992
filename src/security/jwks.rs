//! The tenant's signing keys: read from the OpenID metadata document's `jwks_uri`, held in memory,
//! and fetched again only when needed.
//!
//! - Nothing is fetched before the first token arrives (under the Functions host, start-up must not
//!   wait on the network).
//! - A set is kept for at most `MAX_AGE`; Entra publishes a new key well before signing with it, so
//!   a token with an unknown `kid` prompts one refresh, at most once per `REGISTRY_ENTRA_KEY_REFRESH_MS`
//!   (a stream of forged `kid`s costs one fetch per interval, not one per request).
//! - One fetch at a time (the others wait for its result); each request has a time limit and a
//!   size limit, and at most `MAX_KEYS` keys are kept.
//! - When a refresh fails, the keys held stay in use; with none held, every token gets a 503 until
//!   a fetch succeeds, tried again at most every `RETRY_AFTER_FAILURE`.

use crate::configuration::{fetchable, EntraSettings};
use jsonwebtoken::DecodingKey;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const MAX_KEYS: usize = 64;

/// One fetched key set and the issuer it was published with.
pub struct KeySet {
    pub issuer: String,
    keys: HashMap<String, DecodingKey>,
    fetched: Instant,
}

impl KeySet {
    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }
}

pub enum KeyError {
    /// Keys could not be fetched and none are held: nobody can be verified yet (503).
    Unavailable(String),
    /// The token names a key the tenant does not publish (401).
    UnknownKid,
}

struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
    last_error: String,
}

pub struct KeySource {
    metadata_url: url::Url,
    issuer_override: Option<String>,
    refresh_interval: Duration,
    http: reqwest::Client,
    current: RwLock<Option<Arc<KeySet>>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl KeySource {
    pub fn new(settings: &EntraSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("a client with rustls and no proxy builds");
        KeySource {
            metadata_url: settings.metadata_url.clone(),
            issuer_override: settings.issuer.clone(),
            refresh_interval: settings.key_refresh_interval,
            http,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState {
                last_attempt: None,
                last_failed: false,
                last_error: String::new(),
            }),
        }
    }

    fn held(&self) -> Option<Arc<KeySet>> {
        self.current.read().expect("key set lock").clone()
    }

    /// The key set holding `kid`, fetched or refreshed as the rules above allow.
    pub async fn for_kid(&self, kid: &str) -> Result<Arc<KeySet>, KeyError> {
        let usable = |set: &Option<Arc<KeySet>>| {
            set.as_ref()
                .filter(|s| s.get(kid).is_some() && s.fetched.elapsed() < MAX_AGE)
                .cloned()
        };
        if let Some(set) = usable(&self.held()) {
            return Ok(set);
        }
        let mut state = self.refresh.lock().await;
        // Another request may have fetched while this one waited.
        let held = self.held();
        if let Some(set) = usable(&held) {
            return Ok(set);
        }
        let wait = if state.last_failed && held.is_none() {
            RETRY_AFTER_FAILURE.min(self.refresh_interval)
        } else {
            self.refresh_interval
        };
        let may_fetch = state.last_attempt.is_none_or(|t| t.elapsed() >= wait)
            || held
                .as_ref()
                .is_some_and(|s| s.fetched.elapsed() >= MAX_AGE);
        if may_fetch {
            state.last_attempt = Some(Instant::now());
            match self.fetch().await {
                Ok(set) => {
                    tracing::info!(keys = set.keys.len(), "Entra signing keys fetched");
                    let set = Arc::new(set);
                    *self.current.write().expect("key set lock") = Some(set.clone());
                    state.last_failed = false;
                    return if set.get(kid).is_some() {
                        Ok(set)
                    } else {
                        Err(KeyError::UnknownKid)
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch Entra signing keys; keeping those held");
                    state.last_failed = true;
                    state.last_error = e;
                }
            }
        }
        match held {
            // A stale set still verifies the keys it holds while a refresh cannot succeed.
            Some(set) if set.get(kid).is_some() => Ok(set),
            Some(_) => Err(KeyError::UnknownKid),
            None => Err(KeyError::Unavailable(state.last_error.clone())),
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let metadata = self.get_json(&self.metadata_url).await?;
        let issuer = match &self.issuer_override {
            Some(issuer) => issuer.clone(),
            None => metadata["issuer"]
                .as_str()
                .ok_or("the OpenID metadata has no issuer")?
                .to_owned(),
        };
        if issuer.contains("{tenantid}") {
            return Err(
                "the metadata is a multi-tenant endpoint's; configure the tenant's own".into(),
            );
        }
        let jwks_uri = metadata["jwks_uri"]
            .as_str()
            .and_then(|text| url::Url::parse(text).ok())
            .filter(fetchable)
            .ok_or("the OpenID metadata has no https jwks_uri")?;
        let jwks = self.get_json(&jwks_uri).await?;
        let keys: HashMap<String, DecodingKey> = jwks["keys"]
            .as_array()
            .ok_or("the key set has no keys array")?
            .iter()
            .filter_map(signing_key)
            .take(MAX_KEYS)
            .collect();
        if keys.is_empty() {
            return Err("the key set holds no RSA signing key".into());
        }
        Ok(KeySet {
            issuer,
            keys,
            fetched: Instant::now(),
        })
    }

    /// GET with the client's time limit, reading at most `MAX_DOCUMENT_BYTES`.
    async fn get_json(&self, url: &url::Url) -> Result<Value, String> {
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let mut response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("GET {shown}: {}", without_url(e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {shown}: status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {shown}: {}", without_url(e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {shown}: larger than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {shown}: not JSON: {e}"))
    }
}

/// reqwest's message and its causes, without the URL it appends (the path is shown once, a query
/// never).
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An RSA signature key from a JWKS entry; anything else (encryption keys, other key types,
/// entries without `kid`) is skipped rather than failing the whole set.
fn signing_key(jwk: &Value) -> Option<(String, DecodingKey)> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if text("kty") != Some("RSA") || text("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if text("alg").is_some_and(|alg| alg != "RS256") {
        return None;
    }
    let kid = text("kid")?.to_owned();
    let key = DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?;
    Some((kid, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_rsa_signature_keys_with_an_id_are_kept() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let set = json!([
            {"kty": "RSA", "use": "sig", "kid": "a", "n": n, "e": "AQAB", "x5t": "a"},
            {"kty": "RSA", "kid": "b", "n": n, "e": "AQAB", "alg": "RS256"},
            {"kty": "RSA", "use": "enc", "kid": "c", "n": n, "e": "AQAB"},
            {"kty": "EC", "use": "sig", "kid": "d", "crv": "P-256", "x": "x", "y": "y"},
            {"kty": "RSA", "use": "sig", "n": n, "e": "AQAB"},
            {"kty": "RSA", "use": "sig", "kid": "f", "n": n, "e": "AQAB", "alg": "RS512"},
            "not an object"
        ]);
        let kids: Vec<String> = set
            .as_array()
            .unwrap()
            .iter()
            .filter_map(signing_key)
            .map(|(kid, _)| kid)
            .collect();
        assert_eq!(kids, ["a", "b"]);
    }
}
