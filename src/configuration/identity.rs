//! The storage group's managed identity: which identity signs table requests and where its tokens
//! come from (`IDENTITY_ENDPOINT` or the instance metadata service), and the start-up notices for
//! identity variables that are set but cannot take effect. docs/managed-identity.md has the
//! protocols, their sources, and why `AZURE_CLIENT_ID` is not read.

use super::environment::Environment;
use super::{ConfigError, Secret, StorageSource};
use std::time::Duration;

/// Which managed identity signs the table requests, and where its tokens come from
/// (docs/managed-identity.md has the protocol and its sources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    pub source: IdentitySource,
    /// A user-assigned identity's client id (`AZURE_STORAGETABLE_CLIENTID`, what Service Connector
    /// sets); `None` asks for the system-assigned identity. The generic `AZURE_CLIENT_ID` is not
    /// read: see `settings`.
    pub client_id: Option<String>,
    /// How long one token request may take: half the storage budget, so a silent identity endpoint
    /// is reported as such before the storage operation waiting for it runs out of time.
    pub timeout: Duration,
}

/// Where a managed-identity token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// App Service and Functions: the platform's local token service at `IDENTITY_ENDPOINT`, which
    /// wants `IDENTITY_HEADER` (rotated by the platform) in `X-IDENTITY-HEADER` on every request.
    AppService { endpoint: url::Url, header: Secret },
    /// VMs and AKS: the instance metadata service, when `IDENTITY_ENDPOINT` is not set.
    InstanceMetadata,
}

/// The managed identity for the tables: where tokens come from, and which identity.
///
/// Only `AZURE_STORAGETABLE_CLIENTID` chooses a user-assigned identity. The generic `AZURE_CLIENT_ID`
/// is not honoured: other credentials read it with other meanings (a service principal beside
/// `AZURE_CLIENT_SECRET`, workload identity beside `AZURE_FEDERATED_TOKEN_FILE`), and picking an
/// identity meant for something else would be silent; `notices` says it was ignored.
pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    storage_timeout: Duration,
) -> Result<IdentitySettings, ConfigError> {
    if env.text("AZURE_STORAGETABLE_CLIENTSECRET").is_some() {
        // Service Connector's service-principal connection: its client id is an app
        // registration's, which no managed-identity endpoint can sign for; failing later, on
        // every request, would hide the cause.
        return Err(invalid_setting(
            "AZURE_STORAGETABLE_CLIENTSECRET",
            "is set, but a service principal is not supported: connect the tables with a managed identity (system- or user-assigned) or a connection string",
        ));
    }
    let source = match env.text("IDENTITY_ENDPOINT") {
        None => IdentitySource::InstanceMetadata,
        Some(text) => {
            let endpoint = url::Url::parse(text.trim())
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
                .ok_or_else(|| {
                    invalid_setting("IDENTITY_ENDPOINT", "is not an absolute http(s) URL")
                })?;
            let header = env.text("IDENTITY_HEADER").ok_or_else(|| {
                invalid_setting(
                    "IDENTITY_HEADER",
                    "is not set, but IDENTITY_ENDPOINT is (the platform sets both)",
                )
            })?;
            IdentitySource::AppService {
                endpoint,
                header: Secret::new(header),
            }
        }
    };
    let client_id = env
        .text("AZURE_STORAGETABLE_CLIENTID")
        .map(|id| id.trim().to_owned())
        .map(|id| {
            if is_guid(&id) {
                Ok(id)
            } else {
                Err(invalid_setting(
                    "AZURE_STORAGETABLE_CLIENTID",
                    "is not a client id (a GUID such as 00000000-0000-0000-0000-000000000000)",
                ))
            }
        })
        .transpose()?;
    Ok(IdentitySettings {
        source,
        client_id,
        timeout: storage_timeout / 2,
    })
}

/// A GUID in its usual 8-4-4-4-12 hex form, as Entra client ids are written.
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Identity variables that are set but cannot take effect: the operator hears it at start-up.
pub(super) fn notices(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    source: &StorageSource,
) -> Vec<&'static str> {
    let mut notices = Vec::new();
    let table_client_id = env.text("AZURE_STORAGETABLE_CLIENTID").is_some();
    match source {
        StorageSource::ConnectionString { .. } if table_client_id => notices.push(
            "AZURE_STORAGETABLE_CLIENTID is set but unused: the tables are reached with a connection string, not a managed identity",
        ),
        StorageSource::ManagedIdentity { .. }
            if !table_client_id && env.text("AZURE_CLIENT_ID").is_some() =>
        {
            notices.push("AZURE_CLIENT_ID is set but not used for the tables: they use the system-assigned managed identity unless AZURE_STORAGETABLE_CLIENTID names a user-assigned one")
        }
        _ => {}
    }
    notices
}

fn invalid_setting(variable: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        reason: reason.to_owned(),
    }
}
