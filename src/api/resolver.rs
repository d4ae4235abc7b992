//! `ServiceResolver`: GET one instance of a service to call, chosen among the eligible ones by
//! weight and recent response time. The rules are the domain's: which instances are eligible
//! (`domain::eligible`: not expired, weight above 0, healthy, or never checked while none is) and
//! the draw among them (`domain::choose`: in proportion to weight / cost). This file maps rows to
//! them and shapes the answer. When none is eligible, the 404 lists the instances it judged, as
//! discovery shows them, so the caller sees why (each one's health and `errorMessage`, when its
//! open circuit is tried next, expiry, weight) without a second request.

use super::instance_view::InstanceView;
use super::offload::cpu_heavy;
use super::openapi::{
    BadRequest, Forbidden, InternalError, NoEligibleInstance, ResolverParams, StorageUnavailable,
    Unauthorized,
};
use super::AppState;
use crate::domain::{choose, eligible, Candidate, HealthState, ResolveQuery};
use crate::error::{ApiError, ApiResult};
use crate::security::Caller;
use crate::store::{InstanceRow, ListingQuery};
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Resolved {
    /// The instance chosen, as discovery shows it.
    instance: InstanceView,
    /// How many instances were eligible.
    candidates: usize,
    timestamp: String,
}

#[utoipa::path(
    get,
    path = "/api/ServiceResolver",
    tag = "registry",
    operation_id = "resolve",
    summary = "Choose one instance of a service to call",
    description = "Eligible: not expired, weight above 0, and effectively healthy or degraded \
        (`effectiveStatus`: the own verdict with the declared dependencies' health; `effective=false` \
        judges the own verdict only), or, while none is, never checked. One random draw in proportion to `weight / cost`, where `cost = \
        (responseTimeEwma + 25) × (1 + consecutiveFailures)`.",
    params(ResolverParams),
    responses(
        (status = 200, description = "One instance.", body = Resolved),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No instance is eligible (`field`: `serviceName`): none registered, or all unhealthy, expired or weight 0. `instances` shows each one judged.", body = NoEligibleInstance),
        (status = 500, response = InternalError),
        (status = 503, response = StorageUnavailable),
    ),
)]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Resolved>> {
    let query = ResolveQuery::from_query_string(raw.as_deref().unwrap_or_default())?;
    let keys = query.keys.keys();
    caller.may_select(&keys)?;
    let listing_query = ListingQuery {
        keys: &keys,
        attributes: &query.attributes,
        after: None,
        // Expired rows too: expiry is part of eligibility, which the domain judges.
        include_expired: true,
        // Instances the caller may not read are never its answer.
        visible: caller.read_scope(),
        read_after: None,
    };
    let now = chrono::Utc::now();
    let listing = state.store.select(&listing_query).await?;
    let dependencies = state.store.dependency_reads(&listing).await?;
    let rows = listing.rows_read() + dependencies.as_ref().map_or(0, |d| d.rows());
    let chosen = cpu_heavy(rows, || {
        let effective = dependencies.map(|d| d.judge(now)).unwrap_or_default();
        let judge = |row: &InstanceRow<'_>| effective.of(row.service, row.own_status());
        let rows = listing.rows(now);
        let eligible = eligible(rows.iter().collect(), |row| {
            let mut standing = row.standing(now);
            standing.health = if query.own_verdict_only {
                standing.health.map(HealthState::healthy_or_not)
            } else {
                judge(row).status.admitted_as()
            };
            standing
        });
        let candidates: Vec<Candidate> = eligible.iter().map(|j| candidate(j)).collect();
        match choose(&candidates, &mut fastrand::Rng::new()) {
            Some(index) => Ok((
                InstanceView::of(eligible[index], judge(eligible[index]), now),
                eligible.len(),
            )),
            // Only now, so a successful resolve of a large service renders one item, not all.
            None => Err(rows
                .iter()
                .map(|row| InstanceView::of(row, judge(row), now))
                .collect::<Vec<_>>()),
        }
    });
    let (instance, candidates) = chosen.map_err(|judged| ApiError::NoEligibleInstance {
        message: format!(
            "service {}:{} has no healthy instance to resolve",
            query.keys.service_type.as_ref().map_or("*", |t| t.as_str()),
            query.keys.service_name
        ),
        instances: serde_json::to_value(judged).unwrap_or_default(),
    })?;
    Ok(Json(Resolved {
        instance,
        candidates,
        timestamp: crate::now_iso(),
    }))
}

fn candidate(row: &InstanceRow<'_>) -> Candidate {
    let health = row.health;
    Candidate {
        weight: row.service.weight_or_default(),
        response_time_ms: health
            .and_then(|h| h.response_time_ewma.or(h.response_time.map(|ms| ms as f64)))
            .unwrap_or(0.0),
        consecutive_failures: health.and_then(|h| h.consecutive_failures).unwrap_or(0),
    }
}
