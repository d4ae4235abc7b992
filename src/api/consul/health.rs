//! `/v1/health/*` reads: one service's entries (node, service, checks), one service's checks, and
//! every check in a state.

use super::render::{health_check, service_entry, HealthCheck, ServiceEntry};
use super::{answer, consul, filters, hold, parse_query, readable, AppState};
use crate::domain::consul::{CheckStatus, StateFilter};
use crate::error::ApiResult;
use crate::security::Caller;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;

/// `GET /v1/health/service/<name>`: `passing` keeps entries whose every check passes, each `tag`
/// must be carried, `node-meta` and `filter` select; an unknown name is `200 []`.
pub async fn service(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    let filter = filters::health_filter(&query)?;
    let snapshot = hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| {
        c.service_index(&name)
    })
    .await?;
    let dc = api.settings.datacenter.as_str();
    let items: Vec<ServiceEntry> = readable(snapshot.service(&name), &caller, &query)
        .filter(|e| query.tags.iter().all(|t| e.tags.contains(t)))
        .filter(|e| !query.passing || e.status() == CheckStatus::Passing)
        .filter(|e| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&filters::HealthSubject(e, dc)))
        })
        .map(|e| service_entry(e, dc))
        .collect();
    answer(snapshot.service_index(&name), &items)
}

/// `GET /v1/health/checks/<name>`: the checks of one service's instances.
pub async fn checks(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    let filter = filters::check_filter(&query)?;
    let snapshot = hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| {
        c.service_index(&name)
    })
    .await?;
    let items: Vec<HealthCheck> = readable(snapshot.service(&name), &caller, &query)
        .flat_map(|e| e.checks.iter().map(move |c| (e, c)))
        .filter(|(e, c)| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&filters::CheckSubject(e, c)))
        })
        .map(|(e, c)| health_check(e, c))
        .collect();
    answer(snapshot.service_index(&name), &items)
}

/// `GET /v1/health/state/<any|passing|warning|critical>`: every check in that state.
pub async fn state(
    State(state): State<AppState>,
    caller: Caller,
    Path(wanted): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let wanted = StateFilter::parse(&wanted)?;
    let query = parse_query(&uri, &api.settings)?;
    let filter = filters::check_filter(&query)?;
    let snapshot =
        hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| c.index).await?;
    let items: Vec<HealthCheck> = readable(&snapshot.entries, &caller, &query)
        .flat_map(|e| e.checks.iter().map(move |c| (e, c)))
        .filter(|(_, c)| wanted.admits(c.status))
        .filter(|(e, c)| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&filters::CheckSubject(e, c)))
        })
        .map(|(e, c)| health_check(e, c))
        .collect();
    answer(snapshot.index, &items)
}
