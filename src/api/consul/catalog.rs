//! `/v1/catalog/*` reads: datacenters, services (name → tags), one service's instances as flat
//! `CatalogService` rows, and the nodes (one per endpoint host).

use super::render::{catalog_service, CatalogService};
use super::{answer, consul, filters, hold, parse_query, readable, AppState};
use crate::error::ApiResult;
use crate::security::Caller;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde_json::json;
use std::collections::BTreeMap;

pub async fn datacenters(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let api = consul(&state);
    parse_query(&uri, &api.settings)?;
    let snapshot = api.catalog.current().await?;
    answer(snapshot.index, &json!([api.settings.datacenter]))
}

/// `GET /v1/catalog/services`: every service name with the union of its instances' tags.
pub async fn services(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    let filter = filters::catalog_filter(&query)?;
    let snapshot =
        hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| c.index).await?;
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, entries) in snapshot.services() {
        let mut tags: Vec<&str> = Vec::new();
        let mut any = false;
        for e in readable(entries, &caller, &query) {
            if let Some(f) = &filter {
                if !f.matches(&filters::CatalogSubject(e, &api.settings.datacenter)) {
                    continue;
                }
            }
            any = true;
            for t in &e.tags {
                if !tags.contains(&t.as_str()) {
                    tags.push(t);
                }
            }
        }
        if any {
            out.insert(name, tags);
        }
    }
    answer(snapshot.index, &out)
}

/// `GET /v1/catalog/service/<name>`: its instances; an unknown name is `200 []`.
pub async fn service(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    let filter = filters::catalog_filter(&query)?;
    let snapshot = hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| {
        c.service_index(&name)
    })
    .await?;
    let dc = api.settings.datacenter.as_str();
    let items: Vec<CatalogService> = readable(snapshot.service(&name), &caller, &query)
        .filter(|e| query.tags.iter().all(|t| e.tags.contains(t)))
        .filter(|e| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&filters::CatalogSubject(e, dc)))
        })
        .map(|e| catalog_service(e, dc))
        .collect();
    answer(snapshot.service_index(&name), &items)
}

/// `GET /v1/catalog/nodes`: one node per endpoint host.
pub async fn nodes(State(state): State<AppState>, caller: Caller, uri: Uri) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    let snapshot =
        hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| c.index).await?;
    let dc = api.settings.datacenter.as_str();
    let mut nodes = BTreeMap::new();
    for e in readable(&snapshot.entries, &caller, &query) {
        nodes
            .entry(e.address.as_str())
            .or_insert_with(|| super::render::node(e, dc));
    }
    let nodes: Vec<_> = nodes.into_values().collect();
    answer(snapshot.index, &nodes)
}
