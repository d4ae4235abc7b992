//! A Consul registration (`PUT /v1/agent/service/register`, `PUT /v1/catalog/register`) read into
//! the registry's own `Registration`, plus what only Consul has (its checks and
//! `DeregisterCriticalServiceAfter`).
//!
//! The body is translated into the native registration JSON and parsed by `Registration::parse`,
//! so every native limit (key rules, tags, metadata size, TTL and weight ranges, the endpoint rules)
//! applies unchanged; errors name the Consul field (`Name`, `Port`, `Check.TTL`, ...), never a
//! value. Keys match as Consul matches them: in any case and in snake_case (`keys`). Sources:
//! `hashicorp/consul` `api/agent.go` (`AgentServiceRegistration`, `AgentServiceCheck`),
//! `agent/agent_endpoint.go` (`AgentRegisterService`), `agent/structs/check_type.go`,
//! `agent/structs/structs.go` (`ValidateServiceMetadata`, `ValidateWeights`), and
//! `website/content/api-docs/agent/service.mdx`.
//!
//! The mapping:
//!
//! - `Name` → `serviceName` (required: 400 `Name`, Consul's "Missing service name").
//! - `ID` → `instanceId`. Absent, empty or equal to `Name`: no instance id, a recipe-style row
//!   whose Consul ID is the name (Consul's own default, `ID` = `Name`), so IDs round-trip exactly.
//!   An ID the native key rules refuse (`:`, `/`, spaces, over 128 characters) is a 400 naming `ID`.
//! - `Address` + `Port` → `endpoint` `http://<address>:<port>` (`https` when `Meta.scheme` is
//!   `https`; IPv6 in brackets). Both are required: the registry has no agent whose address or port
//!   could stand in (Consul falls back to the agent's address). `0.0.0.0` and `::` are refused, as
//!   Consul refuses them ("Invalid service address"). In a catalog registration an empty
//!   `Service.Address` is the node's `Address`, as Consul documents.
//! - `Tags` → `tags`. `Meta` → `metadata`, under Consul's limits (64 pairs, keys
//!   `[A-Za-z0-9_-]{1,128}`, values up to 512 bytes and strings only, the `consul-` prefix reserved)
//!   and the native ones (8 KiB in all). `Meta.serviceType` (else the configured default) →
//!   `serviceType`, `Meta.version` → `version`, `Meta.scheme` → the endpoint's scheme; these three
//!   and `Meta.endpoint` are not stored as metadata (reads derive them).
//! - `Weights.Passing` → `weight` (1 to 1000; Consul refuses 0); absent → the native default.
//! - Checks (`Check` and `Checks`/`checks`, merged): see `register::checks`. At most one TTL check
//!   and one HTTP or TCP check, since a registration has one TTL and one health endpoint; a second
//!   of either is a 400 naming the list, not a silent choice.
//! - `Kind` other than empty/`typical`, and `SocketPath`, are refused; `TaggedAddresses`,
//!   `EnableTagOverride`, `Token`, `Namespace`, `Partition`, `Proxy`, `Connect` and keys Consul
//!   does not know are ignored (Go's decoder ignores unknown service keys).

mod checks;
mod fields;
mod keys;
mod names;
mod service;
#[cfg(test)]
mod tests;

use crate::domain::{Registration, ServiceType, ValidationError};
use checks::{parse_agent_check, parse_catalog_check, ParsedCheck};
use keys::Object;
use names::{ServiceNames, AGENT, CATALOG};
use serde_json::Value;
use service::read_service;
use std::time::Duration;

pub use checks::{ConsulCheck, ConsulCheckKind};

/// What a Consul registration leaves to settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulDefaults {
    /// The `serviceType` of a registration whose `Meta` names none.
    pub service_type: String,
}

impl Default for ConsulDefaults {
    fn default() -> Self {
        ConsulDefaults {
            service_type: ServiceType::default().to_string(),
        }
    }
}

/// A Consul registration, parsed: the native registration and the Consul-only parts.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsulRegistration {
    pub registration: Registration,
    /// The Consul service ID as registered: `ID`, or `Name` when absent.
    pub service_id: String,
    /// Its checks, in body order (`Check` first, then `Checks`).
    pub checks: Vec<ConsulCheck>,
    /// The shortest `DeregisterCriticalServiceAfter` among the checks.
    pub deregister_critical_after: Option<Duration>,
    /// The node a catalog registration names (`parse_catalog` only).
    pub node: Option<String>,
    /// The Consul field the address the sweep probes came from (`Check.HTTP`, `Checks.TCP`, ...;
    /// `Address` without an HTTP or TCP check): what a refusal of that address names.
    pub probe_field: &'static str,
}

impl ConsulRegistration {
    /// `PUT /v1/agent/service/register`: the body is the service definition.
    pub fn parse(body: &Value, defaults: &ConsulDefaults) -> Result<Self, ValidationError> {
        let object = Object::of(body, "body")?;
        let service = read_service(object, &AGENT, None)?;
        let parsed = agent_checks(object, &AGENT)?;
        service.finish(parsed, defaults, None)
    }

    /// `PUT /v1/catalog/register`: `Node` and `Address` (both required, as in Consul), the service
    /// under `Service` (required: the registry keeps no node without a service), and catalog
    /// checks under `Check`/`Checks`, each naming the service by `ServiceID` and carrying an HTTP
    /// or TCP `Definition`.
    pub fn parse_catalog(body: &Value, defaults: &ConsulDefaults) -> Result<Self, ValidationError> {
        let object = Object::of(body, "body")?;
        let node = object
            .string("Node", "Node")?
            .ok_or_else(|| ValidationError::new("Node", "Missing node name: Node is required"))?;
        let node_address = object.string("Address", "Address")?.ok_or_else(|| {
            ValidationError::new("Address", "Missing node address: Address is required")
        })?;
        let service = match object.get("Service", "Service")? {
            Some(value) => Object::of(value, "Service")?,
            None => {
                return Err(ValidationError::new(
                    "Service",
                    "Service is required: this registry keeps services, not bare nodes",
                ))
            }
        };
        let service = read_service(service, &CATALOG, Some(node_address))?;
        let mut parsed = Vec::new();
        for (value, names) in list_of_checks(object, "Check", "Checks")? {
            let names = if names {
                &names::CATALOG_CHECKS
            } else {
                &names::CATALOG_CHECK
            };
            let check = Object::of(value, names.parent)?;
            parsed.push(parse_catalog_check(check, names, &service.service_id)?);
        }
        service.finish(parsed, defaults, Some(node.to_owned()))
    }
}

/// The `Check` object and the `Checks` list, each value with `true` when it came from the list.
fn list_of_checks<'a>(
    object: Object<'a>,
    single: &'static str,
    list: &'static str,
) -> Result<Vec<(&'a Value, bool)>, ValidationError> {
    let mut found: Vec<(&Value, bool)> = object
        .get("Check", single)?
        .map(|v| (v, false))
        .into_iter()
        .collect();
    match object.get("Checks", list)? {
        None => {}
        Some(Value::Array(items)) => {
            found.extend(items.iter().filter(|v| !v.is_null()).map(|v| (v, true)))
        }
        Some(_) => {
            return Err(ValidationError::new(
                list,
                format!("{list} must be an array of check objects"),
            ))
        }
    }
    Ok(found)
}

fn agent_checks(
    object: Object<'_>,
    names: &'static ServiceNames,
) -> Result<Vec<ParsedCheck>, ValidationError> {
    let mut parsed = Vec::new();
    for (value, from_list) in list_of_checks(object, names.check.parent, names.checks.parent)? {
        let names = if from_list { names.checks } else { names.check };
        let check = Object::of(value, names.parent)?;
        parsed.extend(parse_agent_check(check, names)?);
    }
    Ok(parsed)
}
