//! The two token protocols a managed identity speaks, as data: the URL and header that ask for a
//! token, and how an answer becomes one (or an error that is safe to log). No I/O here, so every
//! rule is unit-tested, the instance metadata address included, which no test may contact.
//! docs/managed-identity.md has both protocols with their sources.

use crate::configuration::{IdentitySource, Secret};
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// App Service and Functions: the only version their docs list for `X-IDENTITY-HEADER`.
pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// The instance metadata service: the oldest version that knows `client_id`, as its docs ask.
pub const IMDS_API_VERSION: &str = "2018-02-01";
pub const IMDS_TOKEN_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// The most of an error answer's description that goes into a log line.
const MAX_DESCRIPTION_CHARS: usize = 300;

/// Where tokens are asked for, and the header that proves the request comes from inside the app
/// (both services require one as their mitigation of server-side request forgery).
#[derive(Clone)]
pub enum TokenEndpoint {
    AppService { url: Url, header: Secret },
    InstanceMetadata { url: Url },
}

impl TokenEndpoint {
    pub fn from_settings(source: &IdentitySource) -> Self {
        match source {
            IdentitySource::AppService { endpoint, header } => TokenEndpoint::AppService {
                url: endpoint.clone(),
                header: header.clone(),
            },
            IdentitySource::InstanceMetadata => TokenEndpoint::InstanceMetadata {
                url: Url::parse(IMDS_TOKEN_URL).expect("a static URL parses"),
            },
        }
    }

    /// `GET` this URL: the endpoint with `api-version`, `resource` and, for a user-assigned
    /// identity, `client_id` appended (without one, both services answer for the system-assigned
    /// identity).
    pub fn request_url(&self, resource: &str, client_id: Option<&str>) -> Url {
        let (mut url, version) = match self {
            TokenEndpoint::AppService { url, .. } => (url.clone(), APP_SERVICE_API_VERSION),
            TokenEndpoint::InstanceMetadata { url } => (url.clone(), IMDS_API_VERSION),
        };
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", version);
            query.append_pair("resource", resource);
            if let Some(id) = client_id {
                query.append_pair("client_id", id);
            }
        }
        url
    }

    /// The header name and value that go with every token request.
    pub fn proof_header(&self) -> (&'static str, &str) {
        match self {
            TokenEndpoint::AppService { header, .. } => ("X-IDENTITY-HEADER", header.expose()),
            TokenEndpoint::InstanceMetadata { .. } => ("Metadata", "true"),
        }
    }

    /// The value that must never reach a log line (the instance metadata header is no secret).
    pub fn secret(&self) -> Option<&str> {
        match self {
            TokenEndpoint::AppService { header, .. } => Some(header.expose()),
            TokenEndpoint::InstanceMetadata { .. } => None,
        }
    }

    /// For log lines and errors: which service, at which address (no query, which is ours anyway).
    pub fn describe(&self) -> String {
        let (name, url) = match self {
            TokenEndpoint::AppService { url, .. } => ("identity endpoint", url),
            TokenEndpoint::InstanceMetadata { url } => ("instance metadata service", url),
        };
        let mut bare = url.clone();
        bare.set_query(None);
        format!("{name} {bare}")
    }
}

/// The Tables crate asks for one v2 scope (`https://storage.azure.com/.default`); both token
/// services take the v1 resource it names.
pub fn resource_of(scopes: &[&str]) -> Result<String, String> {
    match scopes {
        [scope] => Ok(scope.strip_suffix("/.default").unwrap_or(scope).to_owned()),
        _ => Err(format!(
            "expected one scope, got {}: a managed-identity token is for one resource",
            scopes.len()
        )),
    }
}

/// A token and when it stops being accepted.
#[derive(Clone)]
pub struct Token {
    pub secret: azure_core::auth::Secret,
    pub expires_at: SystemTime,
}

impl Token {
    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }
}

/// Seconds as either service writes them: App Service sends `expires_on` as a string of digits,
/// other hosts a JSON number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn value(&self) -> Option<u64> {
        match self {
            Seconds::Number(n) => Some(*n),
            Seconds::Text(text) => text.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    expires_on: Option<Seconds>,
    expires_in: Option<Seconds>,
    token_type: Option<String>,
}

/// A 200 answer's body as a token: `access_token`, and `expires_on` (seconds since the epoch) or,
/// failing that, `expires_in` (seconds from now). Errors never quote the body: it holds the token.
pub fn parse_token(body: &[u8], now: SystemTime) -> Result<Token, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        "the answer is not a token (expected a JSON object with access_token and expires_on)"
            .to_owned()
    })?;
    if answer.access_token.trim().is_empty() {
        return Err("the answer's access_token is empty".to_owned());
    }
    if let Some(kind) = &answer.token_type {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "the answer's token_type is {:?}, not Bearer",
                kind.chars().take(20).collect::<String>()
            ));
        }
    }
    let expires_at = match (&answer.expires_on, &answer.expires_in) {
        (Some(on), _) => on
            .value()
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
            .ok_or("the answer's expires_on is not a number of seconds")?,
        (None, Some(within)) => within
            .value()
            .map(|secs| now + Duration::from_secs(secs))
            .ok_or("the answer's expires_in is not a number of seconds")?,
        (None, None) => return Err("the answer has neither expires_on nor expires_in".to_owned()),
    };
    if expires_at <= now {
        return Err("the answer's token has already expired".to_owned());
    }
    Ok(Token {
        secret: azure_core::auth::Secret::new(answer.access_token),
        expires_at,
    })
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

/// A non-2xx answer as one log-safe sentence: the status and the service's own `error` and
/// `error_description`, shortened, with the header secret and secret-bearing pairs removed.
pub fn failure(endpoint: &TokenEndpoint, status: u16, body: &[u8]) -> String {
    let mut text = format!("{} answered {status}", endpoint.describe());
    if let Ok(answer) = serde_json::from_slice::<ErrorAnswer>(body) {
        let detail: Vec<String> = [answer.error, answer.error_description]
            .into_iter()
            .flatten()
            .map(|part| part.chars().take(MAX_DESCRIPTION_CHARS).collect())
            .collect();
        if !detail.is_empty() {
            text.push_str(": ");
            text.push_str(&detail.join(": "));
        }
    }
    scrub(&text, endpoint)
}

/// Log-safe text: the header secret replaced wherever it appears, then the usual redaction.
pub fn scrub(text: &str, endpoint: &TokenEndpoint) -> String {
    let text = match endpoint.secret() {
        Some(secret) if !secret.is_empty() => text.replace(secret, "[redacted]"),
        _ => text.to_owned(),
    };
    crate::telemetry::redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_service() -> TokenEndpoint {
        TokenEndpoint::AppService {
            url: Url::parse("http://127.0.0.1:41000/msi/token").unwrap(),
            header: Secret::new("HEADER-SECRET"),
        }
    }

    const STORAGE: &str = "https://storage.azure.com";
    const CLIENT: &str = "0d3a4c2e-1b5f-4a6e-9c7d-8e9f0a1b2c3d";

    #[test]
    fn app_service_requests_carry_the_version_the_resource_and_the_header() {
        let endpoint = app_service();
        assert_eq!(
            endpoint.request_url(STORAGE, None).as_str(),
            "http://127.0.0.1:41000/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com"
        );
        assert_eq!(
            endpoint.request_url(STORAGE, Some(CLIENT)).as_str(),
            format!("http://127.0.0.1:41000/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com&client_id={CLIENT}")
        );
        assert_eq!(
            endpoint.proof_header(),
            ("X-IDENTITY-HEADER", "HEADER-SECRET")
        );
        assert_eq!(
            endpoint.describe(),
            "identity endpoint http://127.0.0.1:41000/msi/token"
        );
    }

    #[test]
    fn the_instance_metadata_fallback_is_the_link_local_service_with_its_own_version() {
        let endpoint = TokenEndpoint::from_settings(&IdentitySource::InstanceMetadata);
        assert_eq!(
            endpoint.request_url(STORAGE, Some(CLIENT)).as_str(),
            format!("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com&client_id={CLIENT}")
        );
        assert!(!endpoint
            .request_url(STORAGE, None)
            .as_str()
            .contains("client_id"));
        assert_eq!(endpoint.proof_header(), ("Metadata", "true"));
        assert_eq!(endpoint.secret(), None);
    }

    #[test]
    fn the_storage_scope_becomes_its_resource() {
        assert_eq!(
            resource_of(&["https://storage.azure.com/.default"]).unwrap(),
            STORAGE
        );
        assert!(resource_of(&[]).is_err());
        assert!(resource_of(&["a/.default", "b/.default"]).is_err());
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expiry_is_read_as_text_or_number_and_expires_in_is_the_fallback() {
        let now = at(1_700_000_000);
        for body in [
            r#"{"access_token":"t","expires_on":"1700003600","resource":"https://storage.azure.com","token_type":"Bearer","client_id":"x"}"#,
            r#"{"access_token":"t","expires_on":1700003600}"#,
            r#"{"access_token":"t","expires_in":"3600","token_type":"bearer"}"#,
        ] {
            let token = parse_token(body.as_bytes(), now).unwrap();
            assert_eq!(token.secret.secret(), "t");
            assert_eq!(token.expires_at, at(1_700_003_600), "{body}");
            assert_eq!(token.remaining(now), Duration::from_secs(3600));
            assert_eq!(token.remaining(at(1_800_000_000)), Duration::ZERO);
        }
    }

    #[test]
    fn bad_answers_are_refused_without_quoting_them() {
        let now = at(1_700_000_000);
        for body in [
            "not json SECRET-TOKEN",
            r#"{"access_token":"SECRET-TOKEN"}"#,
            r#"{"access_token":"SECRET-TOKEN","expires_on":"soon"}"#,
            r#"{"access_token":"SECRET-TOKEN","expires_on":"1600000000"}"#,
            r#"{"access_token":"SECRET-TOKEN","expires_on":"1700003600","token_type":"PoP"}"#,
            r#"{"access_token":"  ","expires_on":"1700003600"}"#,
            r#"{"access_token":42,"expires_on":"SECRET-TOKEN"}"#,
        ] {
            let error = parse_token(body.as_bytes(), now).err().unwrap();
            assert!(!error.contains("SECRET-TOKEN"), "{error}");
        }
    }

    #[test]
    fn failures_name_the_status_and_the_service_reason_but_never_the_header() {
        let endpoint = app_service();
        let body = br#"{"error":"invalid_request","error_description":"Identity not found for header HEADER-SECRET"}"#;
        assert_eq!(
            failure(&endpoint, 400, body),
            "identity endpoint http://127.0.0.1:41000/msi/token answered 400: invalid_request: Identity not found for header [redacted]"
        );
        assert_eq!(
            failure(&endpoint, 500, b"HEADER-SECRET plain text"),
            "identity endpoint http://127.0.0.1:41000/msi/token answered 500"
        );
        let long = format!(r#"{{"error_description":"{}"}}"#, "x".repeat(5000));
        assert!(failure(&endpoint, 503, long.as_bytes()).len() < 400);
    }
}
