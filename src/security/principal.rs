//! App Service authentication's `X-MS-CLIENT-PRINCIPAL`: the caller the platform already
//! authenticated, as Base64 JSON.
//!
//! Shape (learn.microsoft.com, "Work with user identities in Azure App Service authentication",
//! section "Decode the client principal header"; see `docs/security.md`):
//!
//! ```json
//! {"auth_typ": "aad", "name_typ": "<claim type of the name>", "role_typ": "<claim type of roles>",
//!  "claims": [{"typ": "<claim type>", "val": "<value>"}, …]}
//! ```
//!
//! Claims go through the platform's claim mapping, so roles may arrive under `role_typ` (usually
//! `http://schemas.microsoft.com/ws/2008/06/identity/claims/role`) or as `roles`, and the object id
//! as `http://schemas.microsoft.com/identity/claims/objectidentifier` or `oid`. The platform sets
//! this header itself and refuses it from outside, which only holds behind the platform: it is
//! read only when `REGISTRY_TRUST_CLIENT_PRINCIPAL` is on, and never in standalone mode.

use super::caller::{Caller, Identity};
use crate::domain::Grants;
use base64::Engine;
use serde::Deserialize;

pub const HEADER: &str = "x-ms-client-principal";

const ROLE_CLAIMS: [&str; 2] = [
    "roles",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
];
const ID_CLAIMS: [&str; 3] = [
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
    "sub",
];

#[derive(Deserialize)]
struct ClientPrincipal {
    #[serde(default)]
    claims: Vec<Claim>,
    name_typ: Option<String>,
    role_typ: Option<String>,
}

#[derive(Deserialize)]
struct Claim {
    typ: String,
    val: String,
}

/// The caller the header describes; `Err` says why it cannot be read (never its content).
pub fn caller(header: &str) -> Result<Caller, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(header.trim()))
        .map_err(|_| "X-MS-CLIENT-PRINCIPAL is not Base64".to_owned())?;
    let principal: ClientPrincipal = serde_json::from_slice(&bytes)
        .map_err(|_| "X-MS-CLIENT-PRINCIPAL is not the platform's JSON".to_owned())?;
    let role_typ = principal.role_typ.as_deref();
    let roles = principal
        .claims
        .iter()
        .filter(|c| Some(c.typ.as_str()) == role_typ || ROLE_CLAIMS.contains(&c.typ.as_str()))
        .map(|c| c.val.as_str());
    let grants = Grants::from_app_roles(roles);
    let claim = |typ: &str| {
        principal
            .claims
            .iter()
            .find(|c| c.typ == typ)
            .map(|c| c.val.clone())
    };
    let id = ID_CLAIMS
        .iter()
        .find_map(|typ| claim(typ))
        .or_else(|| principal.name_typ.as_deref().and_then(claim))
        .ok_or_else(|| "X-MS-CLIENT-PRINCIPAL names no caller".to_owned())?;
    Ok(Caller::new(Identity::Principal(id), grants))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(value: serde_json::Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(value.to_string())
    }

    #[test]
    fn roles_and_the_object_id_come_from_the_claims() {
        let header = encode(json!({
            "auth_typ": "aad",
            "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
            "claims": [
                {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "oid-7"},
                {"typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "val": "Registry.Write:api"},
                {"typ": "roles", "val": "Registry.Read"},
                {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "val": "someone"}
            ]
        }));
        let caller = caller(&header).unwrap();
        assert_eq!(caller.identity, Identity::Principal("oid-7".into()));
        assert!(caller.grants().read_scope().is_everything());
        assert!(caller.grants().write_scope().covers("api", "x"));
        assert!(!caller.grants().write_scope().covers("db", "x"));
    }

    #[test]
    fn a_principal_without_roles_may_do_nothing_and_garbage_is_refused() {
        let header = encode(json!({"claims": [{"typ": "x", "val": "y"}], "name_typ": "x"}));
        let caller = caller(&header).unwrap();
        assert_eq!(caller.identity, Identity::Principal("y".into()));
        assert!(caller.grants().strongest().is_none());
        assert!(super::caller("not base64!").is_err());
        assert!(super::caller(&base64::engine::general_purpose::STANDARD.encode("[1]")).is_err());
        assert!(super::caller(&encode(json!({"claims": []}))).is_err());
    }
}
