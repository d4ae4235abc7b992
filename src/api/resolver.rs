//! `ServiceResolver`: GET one instance of a service to call, chosen among the healthy ones by weight
//! and recent response time (`domain::choose`: a draw in proportion to weight / cost).
//!
//! Eligible: not expired, weight above 0, and healthy. When no instance has been found healthy yet,
//! instances never checked are eligible (a service registered a minute ago must be reachable before
//! its first sweep); an instance recorded unhealthy is never chosen.

use super::discovery::{parse_pairs, query_pairs};
use super::listing::{with_matching_rows, InstanceView, Joined};
use super::AppState;
use crate::domain::{choose, Candidate};
use crate::error::{ApiError, ApiResult};
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;

#[derive(Serialize)]
pub struct Resolved {
    instance: InstanceView,
    candidates: usize,
    timestamp: String,
}

pub async fn resolve(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Resolved>> {
    // The one required parameter is reported first, before anything else about the query.
    let pairs = query_pairs(raw.as_deref());
    let names_a_service = pairs
        .iter()
        .any(|(key, value)| key == "serviceName" && !value.is_empty());
    if !names_a_service {
        return Err(ApiError::bad_request(
            "serviceName",
            "serviceName is required",
        ));
    }
    let mut query = parse_pairs(&pairs)?;
    let service_name = query
        .keys
        .service_name
        .clone()
        .expect("checked above, and parsing keeps a non-empty serviceName");
    // Expiry always applies, and health is judged here rather than by the discovery flags.
    query.include_expired = false;
    query.limit = None;
    query.after = None;
    let now = chrono::Utc::now();
    let chosen = with_matching_rows(&state, &query, now, |rows| {
        let usable: Vec<&Joined> = rows
            .iter()
            .filter(|joined| joined.service.weight_or_default() > 0)
            .collect();
        let healthy: Vec<&Joined> = usable.iter().copied().filter(|j| j.is_healthy()).collect();
        let eligible = if healthy.is_empty() {
            usable.into_iter().filter(|j| j.health.is_none()).collect()
        } else {
            healthy
        };
        let candidates: Vec<Candidate> = eligible.iter().map(|joined| candidate(joined)).collect();
        choose(&candidates, &mut fastrand::Rng::new())
            .map(|index| (InstanceView::of(eligible[index], now), eligible.len()))
    })
    .await?;
    let (instance, candidates) = chosen.ok_or_else(|| ApiError::NoSuchService {
        field: "serviceName",
        message: format!(
            "service {}:{service_name} has no healthy instance to resolve",
            query.keys.service_type.as_ref().map_or("*", |t| t.as_str())
        ),
    })?;
    Ok(Json(Resolved {
        instance,
        candidates,
        timestamp: crate::now_iso(),
    }))
}

fn candidate(joined: &Joined<'_>) -> Candidate {
    let health = joined.health;
    Candidate {
        weight: joined.service.weight_or_default(),
        response_time_ms: health
            .and_then(|h| h.response_time_ewma.or(h.response_time.map(|ms| ms as f64)))
            .unwrap_or(0.0),
        consecutive_failures: health.and_then(|h| h.consecutive_failures).unwrap_or(0),
    }
}
