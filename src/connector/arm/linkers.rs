//! ARM's linker list items (`GET …/providers/Microsoft.ServiceLinker/linkers`, docs/arm-sync.md)
//! read into what the sync needs of them, and the registration each makes: the target resource ID
//! mapped by the domain's convention (`domain::connector::service_of`) and built as the JSON body a
//! client would POST, so that it passes the API's own validation (`Registration::parse`).
//!
//! An item is decoded straight into `LinkerItem`, which names only the four fields the sync reads
//! (everything else in a linker, `configurationInfo` and `secretInfo` included, is skipped while
//! the page is read, never stored); what is kept of a linker is `Linker`, three strings.
//!
//! Pure: no I/O, so every malformed answer is unit-tested.

use crate::domain::connector::{service_of, SYNCED_BY};
use crate::domain::{Registration, ValidationError};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// A registry row's key: (`serviceType`, `serviceName`), as PartitionKey and RowKey.
pub type Key = (String, String);

/// A list item as it is read off the page: only the fields the sync uses.
#[derive(Debug, Deserialize)]
pub struct LinkerItem {
    id: Option<String>,
    properties: Option<Properties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    target_service: Option<TargetService>,
    auth_info: Option<AuthInfo>,
}

#[derive(Debug, Deserialize)]
struct TargetService {
    #[serde(rename = "type")]
    kind: Option<Text>,
    id: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthInfo {
    auth_type: Option<Text>,
}

/// A string field that may hold anything else, which then reads as absent (an odd `authType`
/// makes `unknown`, not a malformed linker).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Text {
    Text(String),
    Other(IgnoredAny),
}

impl Text {
    fn get(field: &Option<Text>) -> Option<&str> {
        match field {
            Some(Text::Text(text)) if !text.is_empty() => Some(text),
            _ => None,
        }
    }
}

/// A linker that names a target this sync can register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linker {
    pub id: String,
    pub target_id: String,
    /// `properties.authInfo.authType` as ARM spells it (`unknown` when absent).
    pub auth_type: String,
}

/// Why a linker registers nothing: what the per-source summary line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The list item is not a linker at all (or a linker without the fields it must have).
    Malformed,
    /// Its target is no Azure resource (Confluent, a self-hosted server, Fabric, …).
    NotAzureResource,
    /// An Azure resource of a type the registry does not map.
    Unmapped,
    /// A mapped target whose row would fail the API's own validation.
    Invalid,
    /// Its key is a row a person or client registered, which the sync never overwrites.
    Held,
}

/// A linker that registers nothing: why, which linker when it has an ID, and the detail (for the
/// debug line; never an error of the sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub reason: Reason,
    pub linker_id: Option<String>,
    pub detail: String,
}

/// One list item of `GET …/providers/Microsoft.ServiceLinker/linkers` (`None`: an item of
/// another shape altogether).
pub fn parse_linker(item: Option<LinkerItem>) -> Result<Linker, Skip> {
    let malformed = |linker_id: Option<&str>, detail: &str| Skip {
        reason: Reason::Malformed,
        linker_id: linker_id.map(str::to_owned),
        detail: detail.to_owned(),
    };
    let item = item.ok_or_else(|| malformed(None, "an item that is not a linker"))?;
    let id = item
        .id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| malformed(None, "a linker without an id"))?;
    let properties = item
        .properties
        .ok_or_else(|| malformed(Some(&id), "a linker without properties"))?;
    let target = properties
        .target_service
        .ok_or_else(|| malformed(Some(&id), "a linker without properties.targetService"))?;
    let kind = Text::get(&target.kind).unwrap_or("");
    if kind != "AzureResource" {
        return Err(Skip {
            reason: Reason::NotAzureResource,
            detail: format!(
                "its target is of type {:?}, not an Azure resource",
                kind.chars().take(40).collect::<String>()
            ),
            linker_id: Some(id),
        });
    }
    let Some(target_id) = Text::get(&target.id) else {
        return Err(malformed(Some(&id), "its target has no resource id"));
    };
    let auth_type = properties
        .auth_info
        .as_ref()
        .and_then(|a| Text::get(&a.auth_type))
        .unwrap_or("unknown");
    Ok(Linker {
        target_id: target_id.to_owned(),
        auth_type: auth_type.chars().take(64).collect(),
        id,
    })
}

/// The registration a linker of `source_id` makes: the POST body, validated as the API would.
pub fn registration(linker: &Linker, source_id: &str) -> Result<Registration, Skip> {
    let skip = |reason, detail| Skip {
        reason,
        linker_id: Some(linker.id.clone()),
        detail,
    };
    let service = service_of(&linker.target_id).map_err(|e| skip(Reason::Unmapped, e))?;
    let body = service.registration_body(
        &linker.auth_type,
        &[
            ("linkerId", &linker.id),
            ("sourceResourceId", source_id),
            ("syncedBy", SYNCED_BY),
        ],
    );
    Registration::parse(&body).map_err(|e: ValidationError| {
        skip(
            Reason::Invalid,
            format!("its target makes no valid registration ({}: {e})", e.field),
        )
    })
}

/// A registration's row key.
pub fn key_of(registration: &Registration) -> Key {
    (
        registration.key.partition_key().to_owned(),
        registration.key.row_key(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::connector::is_synced;
    use serde_json::{json, Value};

    /// As a page hands an item over: decoded into `LinkerItem`, or `None` when it is not one.
    fn parse(item: &Value) -> Result<Linker, Skip> {
        parse_linker(serde_json::from_value(item.clone()).ok())
    }

    const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg";

    fn linker(target: Value) -> Value {
        json!({
            "id": format!("{RG}/providers/Microsoft.Web/sites/app/providers/Microsoft.ServiceLinker/linkers/db"),
            "name": "db",
            "properties": {"targetService": target, "authInfo": {"authType": "systemAssignedIdentity"}, "clientType": "dotnet"}
        })
    }

    #[test]
    fn a_linker_becomes_a_valid_registration_with_the_conventions_metadata() {
        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.Cache/redis/c1")}),
        );
        let l = parse(&item).unwrap();
        assert_eq!(l.auth_type, "systemAssignedIdentity");
        let source = format!("{RG}/providers/Microsoft.Web/sites/app");
        let r = registration(&l, &source).unwrap();
        assert_eq!(r.key.service_type.to_string(), "redis");
        assert_eq!(r.key.service_name.to_string(), "c1");
        assert_eq!(r.endpoint, "tcp://c1.redis.cache.windows.net:6380");
        assert_eq!(r.health_check, None);
        assert_eq!(
            Value::Object(r.metadata.clone()),
            json!({"source": "service-connector", "authType": "systemAssignedIdentity",
                   "linkerId": l.id, "sourceResourceId": source, "syncedBy": "arm"})
        );
        assert!(is_synced(&Value::Object(r.metadata)));

        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.KeyVault/vaults/v")}),
        );
        let r = registration(&parse(&item).unwrap(), &source).unwrap();
        assert_eq!(r.endpoint, "https://v.vault.azure.net");
        assert_eq!(
            r.health_check.unwrap().kind,
            Some(crate::domain::CheckKind::Tcp)
        );
    }

    #[test]
    fn non_resource_and_malformed_linkers_are_skipped_with_their_reason() {
        let e = parse(&linker(
            json!({"type": "ConfluentBootstrapServer", "endpoint": "x:9092"}),
        ))
        .unwrap_err();
        assert_eq!(e.reason, Reason::NotAzureResource);
        assert!(
            e.linker_id.as_deref().unwrap().ends_with("/linkers/db")
                && e.detail.contains("not an Azure resource"),
            "{e:?}"
        );
        let mut no_auth = linker(json!({"type": "AzureResource", "id": "x"}));
        no_auth["properties"]
            .as_object_mut()
            .unwrap()
            .remove("authInfo");
        assert_eq!(parse(&no_auth).unwrap().auth_type, "unknown");
        // An odd auth type or target type reads as absent, not as a malformed linker.
        let mut odd = linker(json!({"type": 7, "id": "x"}));
        assert_eq!(parse(&odd).unwrap_err().reason, Reason::NotAzureResource);
        odd["properties"]["targetService"]["type"] = json!("AzureResource");
        odd["properties"]["authInfo"]["authType"] = json!({"a": 1});
        assert_eq!(parse(&odd).unwrap().auth_type, "unknown");
        for bad in [
            json!("text"),
            json!({"id": "x"}),
            json!({"id": "", "properties": {}}),
            json!({"id": "x", "properties": {}}),
            json!({"id": 5, "properties": {"targetService": {"type": "AzureResource", "id": "x"}}}),
            json!({"id": "x", "properties": "text"}),
            json!({"id": "x", "properties": {"targetService": {"type": "AzureResource"}}}),
        ] {
            assert_eq!(parse(&bad).unwrap_err().reason, Reason::Malformed, "{bad}");
        }
        // An unmapped type, and a database name the key rule refuses (the field named).
        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.AppConfiguration/configurationStores/c")}),
        );
        let e = registration(&parse(&item).unwrap(), "src").unwrap_err();
        assert_eq!(e.reason, Reason::Unmapped);
        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.Sql/servers/s/databases/my db")}),
        );
        let e = registration(&parse(&item).unwrap(), "src").unwrap_err();
        assert_eq!(e.reason, Reason::Invalid);
        assert!(e.detail.contains("serviceName"), "{e:?}");
    }
}
