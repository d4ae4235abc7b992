//! What discovery and resolution share: read the rows a query selects, join each with its health,
//! apply the in-memory filters, and present an instance in the recipe's shape plus our fields.
//!
//! Two reads run side by side, one on each table with the same key filter, and are joined in memory:
//! never one health read per service (the recipe's N+1). Both come from the store's short-lived
//! cache when warm, so a hot discovery or resolve costs no storage round trip.

use super::AppState;
use crate::domain::{AttributeFilter, HealthState, KeySelection, Scope, Standing};
use crate::error::ApiResult;
use crate::store::{HealthRecord, ServiceRecord, Stored};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One registration with its health row, as read.
pub struct Joined<'a> {
    pub service: &'a ServiceRecord,
    pub health: Option<&'a HealthRecord>,
}

impl Joined<'_> {
    /// What the last sweep recorded; `None` when never checked. A status other than `healthy` (a
    /// row another client wrote) counts as unhealthy.
    pub fn health_state(&self) -> Option<HealthState> {
        self.health.map(|h| {
            if h.is_healthy() {
                HealthState::Healthy
            } else {
                HealthState::Unhealthy
            }
        })
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.service.is_expired(now)
    }

    /// The row as the domain's selection rules see it.
    pub fn standing(&self, now: DateTime<Utc>) -> Standing {
        Standing {
            weight: self.service.weight_or_default(),
            health: self.health_state(),
            expired: self.is_expired(now),
        }
    }
}

/// Which rows a handler wants: the keys storage evaluates, the attributes matched in memory, and
/// where paging and expiry cut.
pub struct Selection<'q> {
    pub keys: KeySelection,
    pub attributes: &'q AttributeFilter,
    /// Only rows after this one (a continuation token's position).
    pub after: Option<&'q (String, String)>,
    /// Keep expired rows too.
    pub include_expired: bool,
    /// Only the services the caller may read (by PartitionKey and the name half of the RowKey,
    /// the same key a write is judged by).
    pub visible: &'q Scope,
}

/// Reads both tables for the selection's keys (from the cache when warm) and hands the joined rows
/// the caller may see that pass every attribute filter (tags, metadata, version, expiry,
/// continuation) to `use_rows`, in (serviceType, RowKey) order. Health is left to the caller:
/// discovery and resolution treat it differently.
pub async fn with_matching_rows<T>(
    state: &AppState,
    selection: &Selection<'_>,
    now: DateTime<Utc>,
    use_rows: impl FnOnce(Vec<Joined<'_>>) -> T,
) -> ApiResult<T> {
    let (services, health) = tokio::try_join!(
        state.store.find_services(&selection.keys),
        state.store.find_health(&selection.keys)
    )?;
    let rows = services
        .iter()
        .filter(|service| match selection.after {
            Some((pk, rk)) => (&service.partition_key, &service.row_key) > (pk, rk),
            None => true,
        })
        .filter(|service| {
            let name = service.row_key.split(':').next().unwrap_or_default();
            selection.visible.covers(&service.partition_key, name)
        })
        .filter(|service| attributes_match(selection.attributes, service))
        .map(|service| Joined {
            service,
            health: health.get(&(service.partition_key.clone(), service.row_key.clone())),
        })
        .filter(|joined| selection.include_expired || !joined.is_expired(now))
        .collect();
    Ok(use_rows(rows))
}

/// Tags (all of), metadata `key=value` (each), version (exact).
fn attributes_match(query: &AttributeFilter, service: &ServiceRecord) -> bool {
    let version_ok = query.version.as_ref().is_none_or(|v| *v == service.version);
    let tags_ok = query.tags.iter().all(|wanted| {
        service
            .tags
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(wanted.as_str())))
    });
    let metadata_ok = query.metadata.iter().all(|(key, wanted)| {
        match service.metadata.get(key) {
            Some(Value::String(text)) => text == wanted,
            // Numbers and booleans compare by their JSON text: `metadata=port=443`.
            Some(other @ (Value::Number(_) | Value::Bool(_))) => {
                serde_json::from_str::<Value>(wanted).is_ok_and(|w| w == *other)
            }
            _ => false,
        }
    });
    version_ok && tags_ok && metadata_ok
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    service_name: String,
    endpoint: String,
    health_endpoint: String,
    service_type: String,
    version: String,
    tags: Value,
    metadata: Value,
    registered_at: Option<String>,
    last_heartbeat: Option<String>,
    health_status: Option<HealthView>,
    // Beside the recipe's fields.
    instance_id: Option<String>,
    weight: u32,
    ttl_seconds: Option<i64>,
    expires_at: Option<String>,
    expired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthView {
    status: String,
    last_checked: Option<String>,
    response_time: Option<i64>,
    // Beside the recipe's three fields: the circuit breaker's view (absent on recipe-written rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consecutive_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consecutive_successes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_transition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checked_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_time_ewma: Option<f64>,
}

impl InstanceView {
    pub fn of(joined: &Joined<'_>, now: DateTime<Utc>) -> Self {
        let service = joined.service;
        let expires = service.expires_at();
        let text = |stored: &Option<Stored<_>>| stored.as_ref().map(|t| t.text().to_owned());
        InstanceView {
            service_name: service.service_name.clone(),
            endpoint: service.endpoint.clone(),
            health_endpoint: service.health_endpoint.clone(),
            service_type: service.service_type.clone(),
            version: service.version.clone(),
            tags: service.tags.clone(),
            metadata: service.metadata.clone(),
            registered_at: text(&service.registered_at),
            last_heartbeat: text(&service.last_heartbeat),
            health_status: joined.health.map(|h| HealthView {
                status: h.status.text().to_owned(),
                last_checked: text(&h.last_checked),
                response_time: h.response_time,
                circuit: h.circuit.as_ref().map(|c| c.text().to_owned()),
                consecutive_failures: h.consecutive_failures,
                consecutive_successes: h.consecutive_successes,
                last_transition: text(&h.last_transition),
                checked_by: h.checked_by.clone(),
                response_time_ewma: h.response_time_ewma,
            }),
            instance_id: service.instance_id.clone(),
            weight: service.weight_or_default(),
            ttl_seconds: service.ttl_seconds,
            expires_at: expires.map(crate::iso),
            expired: expires.is_some_and(|e| e <= now),
            health_check: service.health_check.as_ref().map(|c| c.to_json()),
        }
    }
}
