//! The row both Service Connector halves write: a backing service as the shared convention
//! registers it (`serviceType`, `serviceName`, endpoint, check), built into the body a client would
//! POST by the one builder here, and the metadata marks that say which rows Service Connector (and
//! of those, the ARM sync) wrote, so each half knows which rows it may replace or remove.

use super::kinds::ServiceKind;
use serde_json::{json, Map, Value};

/// `metadata.source` of every row Service Connector discovery writes: the mark that it may replace
/// the row.
pub const SOURCE: &str = "service-connector";

/// The mark (`metadata.syncedBy`, beside `source`) of rows the ARM sync created.
pub const SYNCED_BY: &str = "arm";

/// A backing service an app is connected to, as its row names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingService {
    pub kind: ServiceKind,
    pub service_name: String,
    pub endpoint: String,
}

impl BackingService {
    /// The registration a client would POST for it: metadata `source` and `authType` first, then
    /// `details` (what says where the row came from) in their order. An https service gets a TCP
    /// check (on 443): these services answer no anonymous GET with a 2xx.
    pub fn registration_body(&self, auth_type: &str, details: &[(&str, &str)]) -> Value {
        let mut metadata = Map::new();
        metadata.insert("source".into(), json!(SOURCE));
        metadata.insert("authType".into(), json!(auth_type));
        for (name, value) in details {
            metadata.insert((*name).into(), json!(value));
        }
        let mut body = json!({
            "serviceName": self.service_name,
            "serviceType": self.kind.service_type(),
            "endpoint": self.endpoint,
            "metadata": metadata,
        });
        if self.kind.is_https() {
            body["healthCheck"] = json!({"kind": "tcp"});
        }
        body
    }
}

/// Whether a stored row's metadata says the ARM sync created it (the only rows it may delete).
pub fn is_synced(metadata: &Value) -> bool {
    metadata.get("source").and_then(Value::as_str) == Some(SOURCE)
        && metadata.get("syncedBy").and_then(Value::as_str) == Some(SYNCED_BY)
}

/// Whether a stored row came from Service Connector at all (either half): the only rows either
/// may overwrite.
pub fn is_service_connector(metadata: &Value) -> bool {
    metadata.get("source").and_then(Value::as_str) == Some(SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rows_this_sync_marked_count_as_its_own() {
        assert!(is_synced(
            &json!({"source": "service-connector", "syncedBy": "arm"})
        ));
        assert!(!is_synced(
            &json!({"source": "service-connector", "variable": "AZURE_REDIS_HOST"})
        ));
        assert!(!is_synced(&json!({"syncedBy": "arm"})));
        assert!(is_service_connector(
            &json!({"source": "service-connector"})
        ));
        assert!(!is_service_connector(&json!({"source": "manual"})));
        assert!(!is_service_connector(&json!({})));
    }

    #[test]
    fn the_metadata_keeps_the_conventions_order() {
        let service = BackingService {
            kind: ServiceKind::KeyVault,
            service_name: "v".into(),
            endpoint: "https://v.vault.azure.net".into(),
        };
        let body = service.registration_body("secret", &[("variable", "AZURE_KEYVAULT_X")]);
        assert_eq!(
            body.to_string(),
            r#"{"serviceName":"v","serviceType":"keyvault","endpoint":"https://v.vault.azure.net","metadata":{"source":"service-connector","authType":"secret","variable":"AZURE_KEYVAULT_X"},"healthCheck":{"kind":"tcp"}}"#
        );
    }
}
