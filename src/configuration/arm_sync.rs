//! The Service Connector sync's settings (docs/arm-sync.md): which apps' linkers Azure Resource
//! Manager is asked for, where ARM is, which token audience it takes, and the bounds of one sync.
//!
//! Off unless `SERVICE_CONNECTOR_SYNC_SOURCES` names at least one source. Entries are parsed here,
//! once, into typed IDs whose segments are safe to put in a URL path as they are, so the sync never
//! builds a request from unchecked text. Errors name the variable and the entry's position, never
//! the entry: a pasted connection string must not reach the log.

use super::environment::Environment;
use super::{identity, ConfigError, IdentitySettings};
use std::time::Duration;

pub const SOURCES_VAR: &str = "SERVICE_CONNECTOR_SYNC_SOURCES";
pub const ENDPOINT_VAR: &str = "AZURE_RESOURCE_MANAGER_ENDPOINT";
pub const AUDIENCE_VAR: &str = "AZURE_RESOURCE_MANAGER_AUDIENCE";
pub const MAX_ITEMS_VAR: &str = "SERVICE_CONNECTOR_SYNC_MAX_ITEMS";
/// Items read per listing by default: far more linkers than one app has, or apps than one resource
/// group holds, and few enough that what one listing keeps stays small.
pub const DEFAULT_MAX_ITEMS: u32 = 1000;
/// The public cloud's ARM (docs/arm-protocol.md).
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// More sources than this is a list nobody meant; each costs requests on every sweep.
pub const MAX_SOURCES: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmSyncSettings {
    pub sources: Vec<SyncSource>,
    /// Scheme, host and port, no trailing slash: resource IDs (which start with `/`) are appended.
    pub endpoint: String,
    /// The resource a token is asked for (`AZURE_RESOURCE_MANAGER_AUDIENCE`; by default the
    /// endpoint with a trailing slash, which for the public cloud is `https://management.azure.com/`).
    pub audience: String,
    /// The managed identity that signs ARM requests: the same one as the tables' (same variables).
    pub identity: IdentitySettings,
    /// One whole sync, every listing and 429 wait included (`SERVICE_CONNECTOR_SYNC_DEADLINE_MS`).
    pub deadline: Duration,
    /// One ARM request (`SERVICE_CONNECTOR_SYNC_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Pages followed per listing (`SERVICE_CONNECTOR_SYNC_MAX_PAGES`); more gives up the round.
    pub max_pages: u32,
    /// Items read per listing (`SERVICE_CONNECTOR_SYNC_MAX_ITEMS`: one app's linkers, or one
    /// resource group's sites or container apps); more gives up that listing, as too many pages do.
    pub max_items: usize,
    /// The longest one `Retry-After` may ask for (`SERVICE_CONNECTOR_SYNC_MAX_RETRY_AFTER_MS`);
    /// longer, or more waiting than the deadline leaves, gives up the round.
    pub max_retry_after: Duration,
}

/// A source whose linkers are listed, or a resource group whose apps are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncSource {
    App(AppId),
    ResourceGroup { subscription: String, group: String },
}

/// An App Service/Functions site or a container app, in ARM's canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An app ID from ARM's own answer (a resource group listing): the same rules as configuration.
    pub fn parse(text: &str) -> Option<AppId> {
        match parse_source(text)? {
            SyncSource::App(id) => Some(id),
            SyncSource::ResourceGroup { .. } => None,
        }
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl SyncSource {
    pub fn resource_group_id(subscription: &str, group: &str) -> String {
        format!("/subscriptions/{subscription}/resourceGroups/{group}")
    }
}

pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
) -> Result<Option<ArmSyncSettings>, ConfigError> {
    let Some(list) = env.text(SOURCES_VAR) else {
        return Ok(None);
    };
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.len() > MAX_SOURCES {
        return Err(invalid(
            SOURCES_VAR,
            format!("names {} sources, at most {MAX_SOURCES}", entries.len()),
        ));
    }
    let mut sources: Vec<SyncSource> = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let source = parse_source(entry).ok_or_else(|| {
            invalid(SOURCES_VAR, format!(
                "entry {} is not the resource ID of a site (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Web/sites/<name>), a container app (…/providers/Microsoft.App/containerApps/<name>) or a resource group (/subscriptions/<id>/resourceGroups/<group>)",
                n + 1
            ))
        })?;
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    if sources.is_empty() {
        return Ok(None);
    }
    let endpoint = endpoint(env)?;
    let audience = match env.text(AUDIENCE_VAR) {
        None => format!("{endpoint}/"),
        Some(text) => {
            let text = text.trim();
            url::Url::parse(text)
                .ok()
                .filter(|u| u.scheme() == "https" && u.has_host() && u.query().is_none())
                .ok_or_else(|| {
                    invalid(
                        AUDIENCE_VAR,
                        "is not an https URL such as https://management.usgovcloudapi.net/"
                            .to_owned(),
                    )
                })?;
            text.to_owned()
        }
    };
    let request_timeout = env.millis("SERVICE_CONNECTOR_SYNC_REQUEST_TIMEOUT_MS", 10_000)?;
    // Tokens come from the platform's local service: far quicker than an ARM listing.
    let mut identity = identity::settings(env, request_timeout)?;
    identity.timeout = request_timeout;
    Ok(Some(ArmSyncSettings {
        sources,
        endpoint,
        audience,
        identity,
        deadline: env.millis("SERVICE_CONNECTOR_SYNC_DEADLINE_MS", 30_000)?,
        request_timeout,
        max_pages: env.count("SERVICE_CONNECTOR_SYNC_MAX_PAGES", 20)?,
        max_items: env.count(MAX_ITEMS_VAR, DEFAULT_MAX_ITEMS)? as usize,
        max_retry_after: env.millis("SERVICE_CONNECTOR_SYNC_MAX_RETRY_AFTER_MS", 10_000)?,
    }))
}

/// https with a host, or plain http to a loopback address (a local imitation: what the tests use,
/// as the Entra settings allow); no path, query or credentials.
fn endpoint(env: &Environment<impl Fn(&str) -> Option<String>>) -> Result<String, ConfigError> {
    let Some(text) = env.text(ENDPOINT_VAR) else {
        return Ok(DEFAULT_ENDPOINT.to_owned());
    };
    let url = url::Url::parse(text.trim())
        .ok()
        .filter(|u| {
            super::fetchable(u)
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none()
        })
        .ok_or_else(|| {
            invalid(
                ENDPOINT_VAR,
                "is not an https origin such as https://management.azure.com (plain http only to a loopback address; no path)".to_owned(),
            )
        })?;
    Ok(url.origin().ascii_serialization())
}

/// A segment ARM could have produced and that needs no escaping in a URL path: letters, digits and
/// `-_.()`, as resource group and app names allow (non-ASCII group names are not supported).
fn segment(text: &str) -> Option<&str> {
    (!text.is_empty()
        && text.len() <= 90
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c)))
    .then_some(text)
}

/// `/subscriptions/<s>/resourceGroups/<g>` with, optionally, `/providers/Microsoft.Web/sites/<n>`
/// or `/providers/Microsoft.App/containerApps/<n>`; keywords in any case (ARM's are
/// case-insensitive), written back in ARM's canonical case.
fn parse_source(text: &str) -> Option<SyncSource> {
    let text = text.strip_suffix('/').unwrap_or(text);
    let parts: Vec<&str> = text.strip_prefix('/')?.split('/').collect();
    let is = |i: usize, word: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(word));
    if !(is(0, "subscriptions") && is(2, "resourceGroups")) {
        return None;
    }
    let subscription = segment(parts.get(1)?)?;
    let group = segment(parts.get(3)?)?;
    match parts.len() {
        4 => Some(SyncSource::ResourceGroup {
            subscription: subscription.to_owned(),
            group: group.to_owned(),
        }),
        8 if is(4, "providers") => {
            let name = segment(parts[7])?;
            let kind = if is(5, "Microsoft.Web") && is(6, "sites") {
                "Microsoft.Web/sites"
            } else if is(5, "Microsoft.App") && is(6, "containerApps") {
                "Microsoft.App/containerApps"
            } else {
                return None;
            };
            Some(SyncSource::App(AppId(format!(
                "{}/providers/{kind}/{name}",
                SyncSource::resource_group_id(subscription, group)
            ))))
        }
        _ => None,
    }
}

fn invalid(variable: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests;
