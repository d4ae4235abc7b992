//! `ServiceDiscovery`: GET the services matching the filters, with their health, in the recipe's shape.
//!
//! Two queries run side by side, one on each table with the same filter, and are joined in memory:
//! never one health read per service (the recipe's N+1).

use super::AppState;
use crate::domain::{DiscoveryQuery, HealthState};
use crate::error::ApiResult;
use crate::store::{HealthRecord, ServiceRecord};
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
pub struct DiscoveryResponse {
    services: Vec<DiscoveredService>,
    count: usize,
    timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoveredService {
    service_name: String,
    endpoint: String,
    health_endpoint: String,
    service_type: String,
    version: String,
    tags: Value,
    metadata: Value,
    registered_at: Option<String>,
    last_heartbeat: Option<String>,
    health_status: Option<HealthSummary>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthSummary {
    status: String,
    last_checked: Option<String>,
    response_time: Option<i64>,
    // Beside the recipe's three fields: the circuit breaker's view (absent on recipe-written rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consecutive_failures: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consecutive_successes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_transition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checked_by: Option<String>,
}

pub async fn discover(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<DiscoveryResponse>> {
    let raw = raw.unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    let query = DiscoveryQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;

    let (services, mut health) = tokio::try_join!(
        state.store.find_services(&query),
        state.store.find_health(&query)
    )?;

    let services: Vec<DiscoveredService> = services
        .into_iter()
        .filter_map(|service| {
            let health = health.remove(&(service.partition_key.clone(), service.row_key.clone()));
            let is_healthy = health
                .as_ref()
                .is_some_and(|h| h.status == HealthState::Healthy.as_str());
            (!query.healthy_only || is_healthy).then(|| present(service, health))
        })
        .collect();

    Ok(Json(DiscoveryResponse {
        count: services.len(),
        services,
        timestamp: crate::now_iso(),
    }))
}

fn present(service: ServiceRecord, health: Option<HealthRecord>) -> DiscoveredService {
    DiscoveredService {
        service_name: service.service_name,
        endpoint: service.endpoint,
        health_endpoint: service.health_endpoint,
        service_type: service.service_type,
        version: service.version,
        tags: service.tags,
        metadata: service.metadata,
        registered_at: service.registered_at,
        last_heartbeat: service.last_heartbeat,
        health_status: health.map(|h| HealthSummary {
            status: h.status,
            last_checked: h.last_checked,
            response_time: h.response_time,
            circuit: h.circuit,
            consecutive_failures: h.consecutive_failures,
            consecutive_successes: h.consecutive_successes,
            last_transition: h.last_transition,
            checked_by: h.checked_by,
        }),
    }
}
