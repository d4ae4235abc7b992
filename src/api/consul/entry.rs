//! One registration as Consul's clients see it: a row of either API turned, once per snapshot, into
//! Consul's model (docs/consul.md, "The model").
//!
//! - `Service.ID` is the row's `instanceId`, or its `serviceName` when it has none; `Service.Service`
//!   the `serviceName`, across every `serviceType` (Consul's namespace is flat).
//! - Address and Port come from the endpoint: the host (IPv6 without brackets) and the explicit
//!   port, else 443 or 80. The node is the host ("external node").
//! - `Meta` is the metadata with every value a string, plus `serviceType`, `version`, `scheme` and
//!   `endpoint`.
//! - Checks: a Consul registration's, as it named them; any other row has one, `service:<ID>`.
//!   Statuses follow `domain::consul::check_status`; a TTL check also follows what its client last
//!   set (`checkStatus`).
//! - Revisions: `ModifyIndex` is the largest of the row's revision, its health row's status revision
//!   and, while its TTL has lapsed, the lapse; `CreateIndex` the row's creation.

use crate::domain::consul::{check_status, CheckStatus, HealthFacts};
use crate::domain::{micros, row_revision, EffectiveStatus, HealthState, Judgement};
use crate::store::{HealthRecord, ServiceRecord, Stored};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// A registration in Consul's terms.
#[derive(Debug, Clone)]
pub struct Entry {
    pub partition_key: String,
    pub row_key: String,
    pub id: String,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight: u32,
    pub checks: Vec<Check>,
    pub create_index: u64,
    pub modify_index: u64,
    /// When its TTL lapses, if that is still to come: the snapshot is rebuilt then.
    pub lapses_at: Option<DateTime<Utc>>,
    /// Since when its checks have been critical, as far as the rows say (a lapse, an unhealthy
    /// verdict): what `DeregisterCriticalServiceAfter` counts from.
    pub critical_since: Option<DateTime<Utc>>,
    /// Its TTL has lapsed, and the lapse counts (critical, and in the index): `lapse_delay` after
    /// `expires_at`.
    pub lapsed: bool,
    /// When its TTL lapses by the row as read (`None`: no TTL).
    pub expires_at: Option<DateTime<Utc>>,
    /// The status a check update (or the register body) last set, if any.
    pub set_status: Option<CheckStatus>,
    /// Registered through the Consul API with checks of its own (possibly none).
    pub consul_checks: bool,
}

/// One check of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub id: String,
    pub name: String,
    /// `ttl`, `http` or `tcp`.
    pub kind: String,
    pub status: CheckStatus,
    /// What a dependency did to it (`blocked by api:orders, db:orders-sql`); empty otherwise.
    pub output: String,
}

impl Entry {
    /// The worst of its checks (Consul's aggregated status, maintenance aside).
    pub fn status(&self) -> CheckStatus {
        worst(self.checks.iter().map(|c| c.status))
    }

    pub fn node_id(&self) -> String {
        node_id(&self.address)
    }
}

fn worst(statuses: impl Iterator<Item = CheckStatus>) -> CheckStatus {
    let rank = |s: CheckStatus| match s {
        CheckStatus::Passing => 0,
        CheckStatus::Warning => 1,
        CheckStatus::Critical => 2,
    };
    statuses
        .max_by_key(|s| rank(*s))
        .unwrap_or(CheckStatus::Passing)
}

/// A node's ID: UUID-shaped, derived from its name, so every instance gives the same one.
pub fn node_id(node: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(node.as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The entry a row makes; `None` when its endpoint has no host or port this model can show.
///
/// A lapse counts (the TTL check critical, the lapse in the index) only `lapse_delay` (the read
/// cache's TTL) after `expires_at`: a heartbeat that arrived just before the lapse may not be in
/// the rows yet, and an instance that counted a lapse that never happened would send the index up
/// and back down. Counted this late, a lapse was read while it was real, and the heartbeat that
/// ends it writes a revision above it (`api::heartbeat`).
pub fn entry(
    service: &ServiceRecord,
    health: Option<&HealthRecord>,
    judgement: &Judgement,
    now: DateTime<Utc>,
    never_checked: CheckStatus,
    lapse_delay: chrono::TimeDelta,
) -> Option<Entry> {
    let url = url::Url::parse(&service.endpoint).ok()?;
    let address = match url.host()? {
        url::Host::Ipv6(ip) => ip.to_string(),
        host => host.to_string(),
    };
    let port = url.port_or_known_default().filter(|p| *p != 0)?;
    let id = service
        .instance_id
        .clone()
        .unwrap_or_else(|| service.service_name.clone());

    let mut meta = BTreeMap::new();
    if let Value::Object(metadata) = service.metadata.value() {
        for (key, value) in metadata {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            meta.insert(key, text);
        }
    }
    meta.insert("serviceType".into(), service.service_type.clone());
    meta.insert("version".into(), service.version.clone());
    meta.insert("scheme".into(), url.scheme().to_owned());
    meta.insert("endpoint".into(), service.endpoint.clone());

    let tags = match service.tags.value() {
        Value::Array(tags) => tags
            .into_iter()
            .map(|t| match t {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };

    let expires_at = service.expires_at();
    let counted_at = expires_at.map(|at| at + lapse_delay);
    let lapsed = counted_at.is_some_and(|at| at <= now);
    let facts = HealthFacts {
        health: health.and_then(|h| h.status.value()),
        circuit: health.and_then(|h| h.circuit.as_ref().and_then(Stored::value)),
        ttl_lapsed: lapsed,
        degraded: judgement.status == EffectiveStatus::Degraded,
        blocked: judgement.status == EffectiveStatus::Unhealthy && !judgement.blocked_by.is_empty(),
    };
    let set_status = service
        .consul
        .check_status
        .as_deref()
        .and_then(|s| CheckStatus::parse("checkStatus", s).ok());
    let mut checks = checks(service, &id, facts, set_status, never_checked);
    if !judgement.blocked_by.is_empty() {
        let output = format!("blocked by {}", judgement.blocked_by.join(", "));
        for check in checks.iter_mut().filter(|c| c.kind != "ttl") {
            check.output.clone_from(&output);
        }
    }

    let revision = service.revision_or_timestamp();
    let health_revision = health.map_or(0, HealthRecord::revision_or_timestamp);
    let modify_index =
        row_revision(revision, expires_at.filter(|_| lapsed), now).max(health_revision);
    let create_index = service
        .create_revision
        .or_else(|| {
            service
                .registered_at
                .as_ref()
                .and_then(Stored::value)
                .map(micros)
        })
        .unwrap_or(revision);
    let unhealthy_since = health
        .filter(|h| h.status.value() == Some(HealthState::Unhealthy))
        .and_then(|h| h.last_transition.as_ref().and_then(Stored::value));
    let critical_since = service.critical_since(unhealthy_since, now);

    Some(Entry {
        partition_key: service.partition_key.clone(),
        row_key: service.row_key.clone(),
        name: service.service_name.clone(),
        id,
        address,
        port,
        tags,
        meta,
        weight: service.weight_or_default(),
        checks,
        create_index,
        modify_index: modify_index.max(1),
        lapses_at: counted_at.filter(|at| *at > now),
        critical_since,
        lapsed,
        expires_at,
        set_status,
        consul_checks: service.consul.checks.is_some(),
    })
}

/// The checks as Consul shows them (see the module comment).
fn checks(
    service: &ServiceRecord,
    id: &str,
    facts: HealthFacts,
    set_status: Option<CheckStatus>,
    never_checked: CheckStatus,
) -> Vec<Check> {
    let probed = check_status(
        HealthFacts {
            ttl_lapsed: false,
            ..facts
        },
        never_checked,
    );
    let ttl_status = if facts.ttl_lapsed {
        CheckStatus::Critical
    } else {
        set_status.unwrap_or(never_checked)
    };
    let named = match service.consul.checks.as_ref().map(|c| c.value()) {
        // A Consul registration's own checks, none included: Consul shows exactly those.
        Some(Value::Array(items)) => Some(items),
        _ => None,
    };
    if let Some(named) = named {
        return named
            .iter()
            .filter_map(|c| {
                let field = |name: &str| c.get(name).and_then(Value::as_str).map(str::to_owned);
                let kind = field("Type")?;
                let status = if kind == "ttl" { ttl_status } else { probed };
                Some(Check {
                    id: field("CheckID").unwrap_or_else(|| format!("service:{id}")),
                    name: field("Name")
                        .unwrap_or_else(|| format!("Service '{}' check", service.service_name)),
                    kind,
                    status,
                    output: String::new(),
                })
            })
            .collect();
    }
    {
        let kind = match service.health_check.as_ref().and_then(|c| c.kind) {
            Some(crate::domain::CheckKind::Tcp) => "tcp",
            Some(crate::domain::CheckKind::Http) => "http",
            Some(crate::domain::CheckKind::Grpc) => "grpc",
            None if service.health_endpoint.starts_with("tcp://") => "tcp",
            None if service.health_endpoint.starts_with("grpc") => "grpc",
            None => "http",
        };
        let status = check_status(facts, never_checked);
        vec![Check {
            id: format!("service:{id}"),
            name: format!("Service '{}' check", service.service_name),
            kind: kind.to_owned(),
            status: worst([status, set_status.unwrap_or(CheckStatus::Passing)].into_iter()),
            output: String::new(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConsulFields;
    use serde_json::json;

    fn own() -> Judgement {
        Judgement {
            status: EffectiveStatus::Unknown,
            blocked_by: Vec::new(),
            dependencies: Vec::new(),
        }
    }

    fn row(entity: Value) -> ServiceRecord {
        ServiceRecord::from_entity(entity.as_object().unwrap())
    }

    const NO_DELAY: chrono::TimeDelta = chrono::TimeDelta::zero();

    fn now() -> DateTime<Utc> {
        crate::parse_iso("2026-12-07T10:00:00.000Z").unwrap()
    }

    #[test]
    fn a_native_row_in_consul_terms() {
        let r = row(json!({
            "PartitionKey": "api", "RowKey": "orders:pod-7", "serviceName": "orders",
            "instanceId": "pod-7", "endpoint": "https://orders.example.com/x",
            "serviceType": "api", "version": "2.0.0", "tags": "[\"v1\"]",
            "metadata": "{\"DAPR_PORT\":50002,\"region\":\"eu\",\"obj\":{\"a\":1}}",
            "registeredAt": "2026-12-07T09:00:00.000Z", "lastHeartbeat": "2026-12-07T09:59:00.000Z",
            "weight": 3, "revision": "1765000000000000", "createRevision": "1764000000000000"
        }));
        let e = entry(&r, None, &own(), now(), CheckStatus::Warning, NO_DELAY).unwrap();
        assert_eq!((e.id.as_str(), e.name.as_str()), ("pod-7", "orders"));
        assert_eq!((e.address.as_str(), e.port), ("orders.example.com", 443));
        assert_eq!(e.meta["DAPR_PORT"], "50002");
        assert_eq!(e.meta["obj"], r#"{"a":1}"#);
        assert_eq!(e.meta["serviceType"], "api");
        assert_eq!(e.meta["scheme"], "https");
        assert_eq!(e.meta["endpoint"], "https://orders.example.com/x");
        assert_eq!(e.tags, vec!["v1"]);
        assert_eq!(e.weight, 3);
        assert_eq!(e.checks.len(), 1);
        assert_eq!(e.checks[0].id, "service:pod-7");
        assert_eq!(e.status(), CheckStatus::Warning, "never checked");
        assert_eq!(
            (e.create_index, e.modify_index),
            (1764000000000000, 1765000000000000)
        );
    }

    #[test]
    fn ports_default_by_scheme_and_ipv6_loses_its_brackets() {
        let r = row(json!({"PartitionKey": "p", "RowKey": "a", "endpoint": "http://[::1]/"}));
        let e = entry(&r, None, &own(), now(), CheckStatus::Warning, NO_DELAY).unwrap();
        assert_eq!(
            (e.address.as_str(), e.port, e.id.as_str()),
            ("::1", 80, "a")
        );
        let r = row(json!({"PartitionKey": "p", "RowKey": "a", "endpoint": "tcp://db:5432"}));
        let e = entry(&r, None, &own(), now(), CheckStatus::Warning, NO_DELAY).unwrap();
        assert_eq!((e.port, e.checks[0].kind.as_str()), (5432, "tcp"));
    }

    #[test]
    fn a_lapsed_ttl_is_critical_and_counts_in_the_index() {
        let mut r = row(json!({
            "PartitionKey": "p", "RowKey": "a", "endpoint": "http://a:1",
            "lastHeartbeat": "2026-12-07T09:59:00.000Z", "ttlSeconds": 30, "revision": "5"
        }));
        r.consul = ConsulFields {
            checks: Some(crate::store::JsonText::of(&json!([
                {"CheckID": "a-ttl", "Name": "ttl", "Type": "ttl"}
            ]))),
            deregister_critical_after: None,
            check_status: Some("passing".into()),
        };
        let e = entry(&r, None, &own(), now(), CheckStatus::Warning, NO_DELAY).unwrap();
        assert_eq!(e.checks[0].id, "a-ttl");
        assert_eq!(e.status(), CheckStatus::Critical);
        let lapsed = crate::parse_iso("2026-12-07T09:59:30.000Z").unwrap();
        assert_eq!(e.modify_index, micros(lapsed));
        assert_eq!(e.critical_since, Some(lapsed));
        // Before the lapse: the status its client set, and the lapse still to come.
        let before = crate::parse_iso("2026-12-07T09:59:10.000Z").unwrap();
        let e = entry(&r, None, &own(), before, CheckStatus::Warning, NO_DELAY).unwrap();
        assert_eq!((e.status(), e.modify_index), (CheckStatus::Passing, 5));
        assert_eq!(e.lapses_at, Some(lapsed));
        // Within the delay after the lapse: not counted yet, and due when the delay ends.
        let delay = chrono::TimeDelta::seconds(2);
        let just_after = lapsed + chrono::TimeDelta::seconds(1);
        let e = entry(&r, None, &own(), just_after, CheckStatus::Warning, delay).unwrap();
        assert_eq!((e.status(), e.modify_index), (CheckStatus::Passing, 5));
        assert_eq!(e.lapses_at, Some(lapsed + delay));
        assert_eq!(e.expires_at, Some(lapsed));
        // After it: counted from the lapse itself.
        let e = entry(
            &r,
            None,
            &own(),
            lapsed + delay,
            CheckStatus::Warning,
            delay,
        )
        .unwrap();
        assert_eq!(
            (e.status(), e.modify_index),
            (CheckStatus::Critical, micros(lapsed))
        );
    }

    #[test]
    fn node_ids_are_uuid_shaped_and_stable() {
        let id = node_id("orders.example.com");
        assert_eq!(id.len(), 36);
        assert_eq!(id, node_id("orders.example.com"));
        assert_ne!(id, node_id("other"));
    }
}
