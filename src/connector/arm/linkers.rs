//! ARM's linker list items (`GET …/providers/Microsoft.ServiceLinker/linkers`, docs/arm-sync.md)
//! read into what the sync needs of them, and the registration each makes: the target resource ID
//! mapped by the domain's convention (`domain::connector::service_of`) and built as the JSON body a
//! client would POST, so that it passes the API's own validation (`Registration::parse`).
//!
//! Pure: no I/O, so every malformed answer is unit-tested.

use crate::domain::connector::{service_of, SYNCED_BY};
use crate::domain::{Registration, ValidationError};
use serde_json::Value;

/// A linker that names a target this sync can register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linker {
    pub id: String,
    pub target_id: String,
    /// `properties.authInfo.authType` as ARM spells it (`unknown` when absent).
    pub auth_type: String,
}

/// Why a linker registers nothing (logged with its ID; never an error of the sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The list item is not a linker at all: the answer is malformed.
    Malformed(&'static str),
    /// A valid linker whose target this registry does not map.
    Unsupported { linker_id: String, reason: String },
}

/// One list item of `GET …/providers/Microsoft.ServiceLinker/linkers`.
pub fn parse_linker(item: &Value) -> Result<Linker, Skip> {
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or(Skip::Malformed("a linker without an id"))?;
    let properties = item
        .get("properties")
        .and_then(Value::as_object)
        .ok_or(Skip::Malformed("a linker without properties"))?;
    let target = properties
        .get("targetService")
        .and_then(Value::as_object)
        .ok_or(Skip::Malformed("a linker without properties.targetService"))?;
    let unsupported = |reason: String| Skip::Unsupported {
        linker_id: id.to_owned(),
        reason,
    };
    let kind = target.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "AzureResource" {
        return Err(unsupported(format!(
            "its target is of type {:?}, not an Azure resource",
            kind.chars().take(40).collect::<String>()
        )));
    }
    let target_id = target
        .get("id")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unsupported("its target has no resource id".to_owned()))?;
    let auth_type = properties
        .get("authInfo")
        .and_then(|a| a.get("authType"))
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .unwrap_or("unknown");
    Ok(Linker {
        id: id.to_owned(),
        target_id: target_id.to_owned(),
        auth_type: auth_type.chars().take(64).collect(),
    })
}

/// The registration a linker of `source_id` makes: the POST body, validated as the API would.
pub fn registration(linker: &Linker, source_id: &str) -> Result<Registration, String> {
    let service = service_of(&linker.target_id)?;
    let body = service.registration_body(
        &linker.auth_type,
        &[
            ("linkerId", &linker.id),
            ("sourceResourceId", source_id),
            ("syncedBy", SYNCED_BY),
        ],
    );
    Registration::parse(&body).map_err(|e: ValidationError| {
        format!("its target makes no valid registration ({}: {e})", e.field)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::connector::is_synced;
    use serde_json::json;

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
        let l = parse_linker(&item).unwrap();
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
        let r = registration(&parse_linker(&item).unwrap(), &source).unwrap();
        assert_eq!(r.endpoint, "https://v.vault.azure.net");
        assert_eq!(
            r.health_check.unwrap().kind,
            Some(crate::domain::CheckKind::Tcp)
        );
    }

    #[test]
    fn non_resource_and_malformed_linkers_are_skipped() {
        let e = parse_linker(&linker(
            json!({"type": "ConfluentBootstrapServer", "endpoint": "x:9092"}),
        ))
        .unwrap_err();
        assert!(
            matches!(&e, Skip::Unsupported { linker_id, reason } if linker_id.ends_with("/linkers/db") && reason.contains("not an Azure resource")),
            "{e:?}"
        );
        let mut no_auth = linker(json!({"type": "AzureResource", "id": "x"}));
        no_auth["properties"]
            .as_object_mut()
            .unwrap()
            .remove("authInfo");
        assert_eq!(parse_linker(&no_auth).unwrap().auth_type, "unknown");
        for bad in [
            json!("text"),
            json!({"id": "x"}),
            json!({"id": "", "properties": {}}),
            json!({"id": "x", "properties": {}}),
        ] {
            assert!(
                matches!(parse_linker(&bad), Err(Skip::Malformed(_))),
                "{bad}"
            );
        }
        // A database name the key rule refuses: skipped, with the field named.
        let item = linker(
            json!({"type": "AzureResource", "id": format!("{RG}/providers/Microsoft.Sql/servers/s/databases/my db")}),
        );
        let e = registration(&parse_linker(&item).unwrap(), "src").unwrap_err();
        assert!(e.contains("serviceName"), "{e}");
    }
}
