//! `/v1/agent/*` and `/v1/status/*` reads. The registry is the one "agent" every registration was
//! made through, so `/v1/agent/services` lists every service and `/v1/agent/checks` every check.

use super::render::{agent_service, health_check, AgentService, HealthCheck};
use super::{answer, consul, filters, hold, parse_query, visible, AppState};
use crate::error::{ApiError, ApiResult};
use crate::security::Caller;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde_json::json;
use std::collections::BTreeMap;

/// The name this registry gives itself as a Consul node and server.
pub const NODE_NAME: &str = "service-registry";
/// What `/v1/status/leader` names: Consul answers with its server's RPC address.
const LEADER: &str = "127.0.0.1:8300";

/// `GET /v1/agent/self`: every top-level value an object (Go decodes a map of maps), with
/// `Config.Datacenter` (Prometheus, Fabio, vmagent) and `Config.NodeName` (consul-template).
pub async fn self_info(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let api = consul(&state);
    parse_query(&uri, &api.settings)?;
    let dc = &api.settings.datacenter;
    let body = json!({
        "Config": {
            "Datacenter": dc, "NodeName": NODE_NAME, "NodeID": super::entry::node_id(NODE_NAME),
            "Server": true, "Version": "1.17.0-registry", "Revision": "",
        },
        "Member": {
            "Name": NODE_NAME, "Addr": "127.0.0.1", "Port": 8301,
            "Tags": {"dc": dc, "role": "consul"}, "Status": 1,
        },
        "Meta": {},
        "Coord": {},
    });
    answer(1, &body)
}

pub async fn leader(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    parse_query(&uri, &consul(&state).settings)?;
    answer(1, &LEADER)
}

pub async fn peers(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    parse_query(&uri, &consul(&state).settings)?;
    answer(1, &[LEADER])
}

/// `GET /v1/agent/services`: ID → service (an ID two rows share shows the first, by type).
pub async fn services(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    let filter = filters::agent_filter(&query)?;
    let snapshot =
        hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| c.index).await?;
    let dc = api.settings.datacenter.as_str();
    let mut out: BTreeMap<&str, AgentService> = BTreeMap::new();
    for e in snapshot.entries.iter().filter(|e| visible(&caller, e)) {
        if filter
            .as_ref()
            .is_none_or(|f| f.matches(&filters::AgentSubject(e)))
        {
            out.entry(e.id.as_str())
                .or_insert_with(|| agent_service(e, dc));
        }
    }
    answer(snapshot.index, &out)
}

/// `GET /v1/agent/service/<id>`: one service; 404 when no row has that ID, 409 when two do.
pub async fn service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    // Blocks on the index it answers with (the entry's ModifyIndex), so a client that sends back
    // the index it was given is held until this service changes; once no row has the ID any
    // more, the catalog's index (a removal moves it) wakes it.
    let scope = |c: &super::snapshot::Catalog| {
        c.with_id(&id)
            .iter()
            .map(|e| e.modify_index)
            .max()
            .unwrap_or(c.index)
    };
    let snapshot =
        hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, scope).await?;
    let found: Vec<_> = snapshot
        .with_id(&id)
        .into_iter()
        .filter(|e| visible(&caller, e))
        .collect();
    match found.as_slice() {
        [] => Err(ApiError::NoSuchService {
            field: "ID",
            message: format!("unknown service ID: {id}"),
        }),
        // The catalog's index, the scope it was held on: a client that blocks with it again
        // must be held, not answered at once because a lower per-entry index was sent.
        [e] => answer(snapshot.index, &agent_service(e, &api.settings.datacenter)),
        _ => Err(shared_id(&id)),
    }
}

/// Two registrations (of different types) share one Consul ID: a call naming it cannot choose.
pub fn shared_id(id: &str) -> ApiError {
    ApiError::Conflict {
        field: "ID",
        message: format!(
            "ID {id} names registrations of more than one serviceType; use the native API to tell them apart"
        ),
    }
}

/// `GET /v1/agent/checks`: CheckID → check.
pub async fn checks(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<Response> {
    let api = consul(&state);
    let query = parse_query(&uri, &api.settings)?;
    let filter = filters::check_filter(&query)?;
    let snapshot =
        hold::wait_for_change(&api.catalog, &query, api.settings.max_hold, |c| c.index).await?;
    let mut out: BTreeMap<&str, HealthCheck> = BTreeMap::new();
    for e in snapshot.entries.iter().filter(|e| visible(&caller, e)) {
        for c in &e.checks {
            if filter
                .as_ref()
                .is_none_or(|f| f.matches(&filters::CheckSubject(e, c)))
            {
                out.entry(c.id.as_str())
                    .or_insert_with(|| health_check(e, c));
            }
        }
    }
    answer(snapshot.index, &out)
}
