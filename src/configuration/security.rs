//! Who may call the API, read from the environment: API keys (inline or from a file), Microsoft
//! Entra ID token validation, whether to trust App Service's `X-MS-CLIENT-PRINCIPAL`, explicit
//! anonymous access, and the browser origins allowed to call. The start-up rules that keep a
//! reachable registry from running open by accident are checked here too, so a misconfiguration
//! stops the process with one line naming the variables.
//!
//! API keys are stored only as SHA-256 digests; one key a line, four fields separated by spaces:
//!
//! ```text
//! # id       role   scope            sha256 of the key, hex
//! deployer   write  api,web:front-*  9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```
//!
//! Errors name the variable (or file), the line and the field, never what a field holds: someone
//! who pasted the key itself into any field (the digest's, but also the id's, the role's or the
//! scope's) must not find it in the log.

use super::environment::Environment;
use super::{ConfigError, HostMode};
use crate::domain::{Role, Scope};
use std::net::SocketAddr;
use std::time::Duration;

pub const API_KEYS_VAR: &str = "REGISTRY_API_KEYS";
pub const API_KEYS_FILE_VAR: &str = "REGISTRY_API_KEYS_FILE";
pub const TENANT_VAR: &str = "REGISTRY_ENTRA_TENANT_ID";
pub const METADATA_VAR: &str = "REGISTRY_ENTRA_METADATA_URL";
pub const AUDIENCE_VAR: &str = "REGISTRY_ENTRA_AUDIENCE";
pub const ISSUER_VAR: &str = "REGISTRY_ENTRA_ISSUER";
pub const KEY_REFRESH_VAR: &str = "REGISTRY_ENTRA_KEY_REFRESH_MS";
pub const TRUST_PRINCIPAL_VAR: &str = "REGISTRY_TRUST_CLIENT_PRINCIPAL";
pub const ANONYMOUS_VAR: &str = "REGISTRY_ALLOW_ANONYMOUS";
pub const ORIGINS_VAR: &str = "REGISTRY_ALLOWED_ORIGINS";
pub const HOSTS_VAR: &str = "REGISTRY_ALLOWED_HOSTS";

/// Largest key file read; thousands of keys fit, a wrong path to a big file fails fast.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    pub api_keys: Vec<ApiKeyEntry>,
    pub entra: Option<EntraSettings>,
    /// Custom-handler mode only: take the caller from App Service authentication's header.
    pub trust_client_principal: bool,
    /// Serve callers without credentials (with every right): only when nothing else is configured.
    pub allow_anonymous: bool,
    /// Browser origins (`scheme://host[:port]`) allowed to call; any other `Origin` is refused.
    pub allowed_origins: Vec<String>,
    /// Host names (lower case, no port) an unauthenticated standalone listener answers besides its
    /// loopback names (`security::host`): a container reached by its service name.
    pub allowed_hosts: Vec<String>,
}

impl SecuritySettings {
    /// Whether any way of authenticating callers is configured.
    pub fn authentication_configured(&self) -> bool {
        !self.api_keys.is_empty() || self.entra.is_some() || self.trust_client_principal
    }
}

/// One API key: who it is (for the log), what it may do, and the digest of the key itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyEntry {
    pub id: String,
    pub role: Role,
    pub scope: Scope,
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for ApiKeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest is not the key, but nothing gains from printing it.
        f.debug_struct("ApiKeyEntry")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("scope", &self.scope.to_string())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraSettings {
    /// The tenant's OpenID Connect metadata document (its `issuer` and `jwks_uri`).
    pub metadata_url: url::Url,
    /// Accepted `aud` values: the app's client id and/or its application ID URI.
    pub audiences: Vec<String>,
    /// Overrides the metadata's `issuer` (v1.0 tokens carry `https://sts.windows.net/<tenant>/`).
    pub issuer: Option<String>,
    /// Least time between two key-set fetches prompted by a token with an unknown `kid`.
    pub key_refresh_interval: Duration,
}

pub(super) fn security(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    mode: &HostMode,
) -> Result<SecuritySettings, ConfigError> {
    let mut api_keys = Vec::new();
    if let Some(text) = env.text(API_KEYS_VAR) {
        // One variable holds several lines; `;` separates them where newlines are awkward.
        api_keys.extend(parse_key_lines(API_KEYS_VAR, &text.replace(';', "\n"))?);
    }
    if let Some(path) = env.text(API_KEYS_FILE_VAR) {
        let text = read_key_file(&path)?;
        let source = format!("{API_KEYS_FILE_VAR} ({path})");
        api_keys.extend(parse_key_lines(&source, &text)?);
    }
    refuse_duplicates(&api_keys)?;
    let settings = SecuritySettings {
        api_keys: api_keys.into_iter().map(|line| line.entry).collect(),
        entra: entra(env)?,
        trust_client_principal: env.flag(TRUST_PRINCIPAL_VAR, false)?,
        allow_anonymous: env.flag(ANONYMOUS_VAR, false)?,
        allowed_origins: origins(env)?,
        allowed_hosts: hosts(env)?,
    };
    check_start_up_rules(&settings, mode)?;
    Ok(settings)
}

/// The rules that stop start-up rather than run open by accident.
fn check_start_up_rules(settings: &SecuritySettings, mode: &HostMode) -> Result<(), ConfigError> {
    if settings.trust_client_principal && mode.is_standalone() {
        return Err(invalid(
            TRUST_PRINCIPAL_VAR,
            "is only honoured under the Functions host with App Service authentication; a standalone handler cannot tell the platform's header from a forged one",
        ));
    }
    if settings.allow_anonymous && settings.authentication_configured() {
        return Err(invalid(
            ANONYMOUS_VAR,
            "cannot be combined with authentication (REGISTRY_API_KEYS, REGISTRY_API_KEYS_FILE, REGISTRY_ENTRA_*, REGISTRY_TRUST_CLIENT_PRINCIPAL): anonymous callers would bypass it; unset one",
        ));
    }
    if let HostMode::Standalone { bind } = mode {
        if !bind.ip().is_loopback()
            && !settings.authentication_configured()
            && !settings.allow_anonymous
        {
            return Err(ConfigError::Unprotected { bind: *bind });
        }
    }
    Ok(())
}

fn read_key_file(path: &str) -> Result<String, ConfigError> {
    let unreadable =
        |reason: String| invalid(API_KEYS_FILE_VAR, &format!("cannot read {path}: {reason}"));
    let metadata = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(unreadable(format!(
            "larger than {MAX_KEY_FILE_BYTES} bytes"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))
}

/// Parses key lines; `#` starts a comment, blank lines are skipped. `source` names the variable
/// (or file) in errors.
pub(super) fn parse_key_lines(source: &str, text: &str) -> Result<Vec<KeyLine>, ConfigError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = |reason: String| invalid(source, &format!("line {}: {reason}", index + 1));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, role, scope, digest] = fields[..] else {
            return Err(at(format!(
                "expected four fields (id, role, scope, sha256 of the key), found {}",
                fields.len()
            )));
        };
        let id_ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !id_ok {
            return Err(at(
                "the id must be 1 to 64 letters, digits, '.', '_' or '-'".to_owned(),
            ));
        }
        let role = Role::parse(role)
            .ok_or_else(|| at("the role (second field) must be read, write or admin".to_owned()))?;
        let scope = Scope::parse(scope).map_err(|_| at(scope_error(scope)))?;
        if role == Role::Admin && !scope.is_everything() {
            return Err(at(
                "an admin key acts on all services; its scope must be *".to_owned()
            ));
        }
        let sha256 = parse_digest(digest).ok_or_else(|| {
            at("the fourth field must be the key's SHA-256 as 64 hex digits (optionally prefixed sha256:), never the key itself".to_owned())
        })?;
        entries.push(KeyLine {
            at: format!("{source} line {}", index + 1),
            entry: ApiKeyEntry {
                id: id.to_owned(),
                role,
                scope,
                sha256,
            },
        });
    }
    Ok(entries)
}

/// One parsed key line and where it was read, so that errors about two lines can name both
/// places rather than what they hold.
pub(super) struct KeyLine {
    at: String,
    pub(super) entry: ApiKeyEntry,
}

/// Which of the scope's comma-separated patterns is wrong, by position: never the pattern itself.
fn scope_error(scope: &str) -> String {
    let position = scope
        .split(',')
        .position(|pattern| Scope::parse(pattern).is_err())
        .map_or(1, |i| i + 1);
    format!(
        "the scope (third field) must be * or comma-separated type:name patterns (a name may end in *); pattern {position} is not"
    )
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

fn refuse_duplicates(lines: &[KeyLine]) -> Result<(), ConfigError> {
    for (i, line) in lines.iter().enumerate() {
        for earlier in &lines[..i] {
            if earlier.entry.id == line.entry.id {
                return Err(invalid(
                    API_KEYS_VAR,
                    &format!(
                        "{} and {} have the same id: each key needs its own",
                        earlier.at, line.at
                    ),
                ));
            }
            if earlier.entry.sha256 == line.entry.sha256 {
                return Err(invalid(
                    API_KEYS_VAR,
                    &format!(
                        "{} and {} have the same digest: one key must have one role",
                        earlier.at, line.at
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn entra(
    env: &Environment<impl Fn(&str) -> Option<String>>,
) -> Result<Option<EntraSettings>, ConfigError> {
    let metadata = match (env.text(METADATA_VAR), env.text(TENANT_VAR)) {
        (Some(url), _) => Some((METADATA_VAR, url)),
        (None, Some(tenant)) => {
            let tenant_ok = !tenant.is_empty()
                && tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
            if !tenant_ok {
                return Err(invalid(
                    TENANT_VAR,
                    "expected a tenant id (a GUID) or a verified domain",
                ));
            }
            Some((
                TENANT_VAR,
                format!(
                    "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
                ),
            ))
        }
        (None, None) => None,
    };
    let audiences = env.list(AUDIENCE_VAR);
    let Some((variable, metadata)) = metadata else {
        if !audiences.is_empty() || env.text(ISSUER_VAR).is_some() {
            return Err(invalid(
                AUDIENCE_VAR,
                "Entra settings need REGISTRY_ENTRA_TENANT_ID or REGISTRY_ENTRA_METADATA_URL",
            ));
        }
        return Ok(None);
    };
    if audiences.is_empty() {
        return Err(invalid(
            AUDIENCE_VAR,
            "is required with Entra ID tokens: the registry app's client id and/or application ID URI",
        ));
    }
    let metadata_url = url::Url::parse(&metadata)
        .ok()
        .filter(fetchable)
        .ok_or_else(|| {
            invalid(
                variable,
                "expected an https:// URL of the OpenID metadata document (http:// only on a loopback address)",
            )
        })?;
    Ok(Some(EntraSettings {
        metadata_url,
        audiences,
        issuer: env.text(ISSUER_VAR),
        key_refresh_interval: env.millis(KEY_REFRESH_VAR, 300_000)?,
    }))
}

/// Keys are fetched over https; plain http only from this machine (tests, a local proxy).
pub fn fetchable(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

fn origins(env: &Environment<impl Fn(&str) -> Option<String>>) -> Result<Vec<String>, ConfigError> {
    env.list(ORIGINS_VAR)
        .iter()
        .map(|item| {
            let bad = || {
                invalid(
                    ORIGINS_VAR,
                    &format!("{item:?} is not an origin such as https://app.example.com (no path, no wildcard)"),
                )
            };
            // The URL parser keeps `*` in a host as a literal, so a wildcard would start and then
            // match nothing: refuse it here, saying so.
            if item.contains('*') {
                return Err(invalid(
                    ORIGINS_VAR,
                    &format!("{item:?} holds a wildcard: list each origin exactly, such as https://app.example.com"),
                ));
            }
            let url = url::Url::parse(item).map_err(|_| bad())?;
            let bare = url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && url.password().is_none();
            // An opaque origin (`null`, `file:`) stands for every sandboxed page at once: never.
            if !bare || !matches!(url.scheme(), "http" | "https") || !url.origin().is_tuple() {
                return Err(bad());
            }
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

/// Host names only: no port (the listener's own is checked), no wildcard, no scheme.
fn hosts(env: &Environment<impl Fn(&str) -> Option<String>>) -> Result<Vec<String>, ConfigError> {
    env.list(HOSTS_VAR)
        .iter()
        .map(|item| {
            let name_ok = item.len() <= 253
                && item.split('.').all(|label| {
                    (1..=63).contains(&label.len())
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !name_ok {
                return Err(invalid(
                    HOSTS_VAR,
                    &format!("{item:?} is not a host name such as registry or registry.internal (no port, no wildcard)"),
                ));
            }
            Ok(item.to_ascii_lowercase())
        })
        .collect()
}

fn invalid(variable: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The bind address, for `ConfigError::Unprotected`'s message.
pub(super) fn unprotected_message(bind: &SocketAddr) -> String {
    format!(
        "DISCOVERY_BIND {bind} is not a loopback address and no authentication is configured: set {API_KEYS_VAR} or {API_KEYS_FILE_VAR} (API keys), or {TENANT_VAR} or {METADATA_VAR} with {AUDIENCE_VAR} (Entra ID tokens), or {ANONYMOUS_VAR}=true to let anyone who reaches the port read and change the registry"
    )
}

#[cfg(test)]
mod tests;
