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
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    fn read(vars: &[(&str, &str)]) -> Result<Option<ArmSyncSettings>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings(&Environment::new(|k: &str| map.get(k).cloned()))
    }

    fn error(vars: &[(&str, &str)]) -> (String, String) {
        match read(vars).unwrap_err() {
            ConfigError::Invalid { variable, reason } => (variable, reason),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn off_unless_sources_are_named() {
        assert_eq!(read(&[]).unwrap(), None);
        assert_eq!(read(&[(SOURCES_VAR, " , ")]).unwrap(), None);
        assert_eq!(read(&[(ENDPOINT_VAR, "nonsense")]).unwrap(), None);
    }

    #[test]
    fn apps_and_groups_parse_case_insensitively_into_canonical_ids() {
        let list = format!(
            "/subscriptions/{SUB}/resourcegroups/rg-1/providers/microsoft.web/SITES/func-a/, \
             /SUBSCRIPTIONS/{SUB}/resourceGroups/rg-1/providers/Microsoft.App/containerapps/ca.b,\
             /subscriptions/{SUB}/resourceGroups/Rg(2),\
             /subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.Web/sites/func-a"
        );
        let s = read(&[(SOURCES_VAR, &list)]).unwrap().unwrap();
        assert_eq!(
            s.sources,
            vec![
                SyncSource::App(AppId(format!(
                    "/subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.Web/sites/func-a"
                ))),
                SyncSource::App(AppId(format!(
                    "/subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.App/containerApps/ca.b"
                ))),
                SyncSource::ResourceGroup {
                    subscription: SUB.into(),
                    group: "Rg(2)".into()
                },
            ],
            "a repeated source is listed once"
        );
        assert_eq!(s.endpoint, "https://management.azure.com");
        assert_eq!(s.audience, "https://management.azure.com/");
        assert_eq!(s.deadline, Duration::from_secs(30));
        assert_eq!(s.max_pages, 20);
        assert_eq!(
            s.identity.source,
            crate::configuration::IdentitySource::InstanceMetadata
        );
        assert_eq!(s.identity.client_id, None);
    }

    #[test]
    fn a_bad_entry_is_named_by_its_position_not_its_text() {
        for (bad, position) in [
            ("DefaultEndpointsProtocol=https;AccountKey=SECRETKEY", 2),
            (
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Sql/servers/s",
                2,
            ),
            ("/subscriptions/x/resourceGroups/r g", 2),
            (
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/a?b",
                2,
            ),
            (
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites",
                2,
            ),
            ("/subscriptions//resourceGroups/rg", 2),
        ] {
            let list = format!("/subscriptions/{SUB}/resourceGroups/ok,{bad}");
            let (variable, reason) = error(&[(SOURCES_VAR, &list)]);
            assert_eq!(variable, SOURCES_VAR);
            assert!(
                reason.starts_with(&format!("entry {position} is not the resource ID")),
                "{reason}"
            );
            assert!(!reason.contains("SECRETKEY"), "{reason}");
        }
        let many =
            vec![format!("/subscriptions/{SUB}/resourceGroups/g"); MAX_SOURCES + 1].join(",");
        assert_eq!(
            error(&[(SOURCES_VAR, &many)]).1,
            "names 51 sources, at most 50"
        );
    }

    #[test]
    fn the_endpoint_is_https_or_loopback_http_and_sets_the_default_audience() {
        let group = format!("/subscriptions/{SUB}/resourceGroups/g");
        let with =
            |endpoint: &str| read(&[(SOURCES_VAR, group.as_str()), (ENDPOINT_VAR, endpoint)]);
        let s = with("https://management.usgovcloudapi.net/")
            .unwrap()
            .unwrap();
        assert_eq!(s.endpoint, "https://management.usgovcloudapi.net");
        assert_eq!(s.audience, "https://management.usgovcloudapi.net/");
        let s = with("http://127.0.0.1:41999").unwrap().unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:41999");
        for bad in [
            "http://management.azure.com",
            "https://management.azure.com/path",
            "https://user:pw@management.azure.com",
            "ftp://127.0.0.1",
            "management.azure.com",
        ] {
            let e = with(bad).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { variable, .. } if variable == ENDPOINT_VAR),
                "{bad}: {e:?}"
            );
        }
        let s = read(&[
            (SOURCES_VAR, group.as_str()),
            (AUDIENCE_VAR, "https://management.core.windows.net/"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.audience, "https://management.core.windows.net/");
        assert_eq!(
            error(&[(SOURCES_VAR, group.as_str()), (AUDIENCE_VAR, "http://x")]).0,
            AUDIENCE_VAR
        );
    }

    #[test]
    fn the_sweep_lease_outlasts_the_sync_too() {
        let base = [
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("HEALTH_MONITOR_SCHEDULE", "0 */5 * * * *"),
        ];
        let lease = |extra: &[(&str, &str)]| {
            let map: HashMap<String, String> = base
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            crate::configuration::Settings::from_lookup(|k| map.get(k).cloned())
                .unwrap()
                .health
                .sweep
                .lease_ttl
        };
        let group = format!("/subscriptions/{SUB}/resourceGroups/g");
        assert_eq!(
            lease(&[
                (SOURCES_VAR, group.as_str()),
                ("SERVICE_CONNECTOR_SYNC_DEADLINE_MS", "7000")
            ]) - lease(&[]),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn the_identity_is_the_tables_one() {
        let group = format!("/subscriptions/{SUB}/resourceGroups/g");
        let client = "0d3a4c2e-1b5f-4a6e-9c7d-8e9f0a1b2c3d";
        let s = read(&[
            (SOURCES_VAR, group.as_str()),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
            ("IDENTITY_HEADER", "h"),
            ("AZURE_STORAGETABLE_CLIENTID", client),
            ("SERVICE_CONNECTOR_SYNC_REQUEST_TIMEOUT_MS", "2500"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.identity.client_id.as_deref(), Some(client));
        assert_eq!(s.identity.timeout, Duration::from_millis(2500));
        assert_eq!(s.request_timeout, Duration::from_millis(2500));
        assert_eq!(
            error(&[
                (SOURCES_VAR, group.as_str()),
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
            ])
            .0,
            "IDENTITY_HEADER"
        );
    }
}
