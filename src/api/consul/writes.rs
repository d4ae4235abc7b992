//! The Consul writes: registering and deregistering a service (agent and catalog forms), and a TTL
//! check's pass, warn, fail and update.
//!
//! A registration goes the native way: the body becomes a `Registration` (`ConsulRegistration`,
//! so every native limit applies), the caller must be allowed to write its key, an HTTP or TCP
//! check's literal address meets the SSRF guard up front (a refusal names the Consul field it
//! came from), and the store writes the row with the Consul-only properties beside it (its checks,
//! `DeregisterCriticalServiceAfter`, a check's initial status).
//!
//! Consul keeps one service per ID: registering an ID again under another `serviceType` (its
//! `Meta.serviceType` changed) removes the row it had, after the new one is written.
//!
//! Calls by ID find the row through the snapshot (`lookup`; on a miss, once more from a fresh
//! storage read): a `Service.ID` (deregister) or a `CheckID` (check updates; `service:<ID>` names
//! every row's check), among the rows the caller may write (a caller that may write nothing is a
//! 403 first). An ID two of those rows share is a 409 naming `ID`. Deregistering an ID nobody has
//! is a 200 that does nothing, as Consul documents; an ID only other scopes hold answers the same.
//!
//! A check update is a heartbeat: it moves `lastHeartbeat`, so a TTL that lapsed is alive again.
//! Every one also writes the status the client gives (`checkStatus`), which the TTL check shows
//! until the next update: a pass after a fail made through another instance is never lost. The
//! snapshot decides only the revision: a change of status (as far as it knows), or a revival,
//! takes a new one; a pass that changes nothing does not.

mod lookup;

use super::agent::shared_id;
use super::{consul, parse_query, AppState, ConsulApi};
use crate::domain::consul::{
    CheckStatus, CheckUpdate, ConsulCheckKind, ConsulDefaults, ConsulRegistration,
};
use crate::domain::InstanceKey;
use crate::error::{ApiError, ApiResult};
use crate::security::Caller;
use crate::store::{ConsulFields, JsonText};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Uri;
use lookup::{key_of, writable, writable_rows};
use serde_json::{json, Value};
use std::sync::Arc;

/// `PUT /v1/agent/service/register`.
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    body: Body,
) -> ApiResult<()> {
    let api = consul(&state);
    parse_query(&uri, &api.settings)?;
    let json = super::super::read_json_body(body).await?;
    let parsed = ConsulRegistration::parse(&json, &defaults(api))?;
    store_registration(&state, &caller, parsed).await
}

/// `PUT /v1/catalog/register`: a node and its service, with catalog checks.
pub async fn catalog_register(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    body: Body,
) -> ApiResult<()> {
    let api = consul(&state);
    parse_query(&uri, &api.settings)?;
    let json = super::super::read_json_body(body).await?;
    let parsed = ConsulRegistration::parse_catalog(&json, &defaults(api))?;
    store_registration(&state, &caller, parsed).await
}

fn defaults(api: &ConsulApi) -> ConsulDefaults {
    ConsulDefaults {
        service_type: api.settings.service_type.to_string(),
    }
}

async fn store_registration(
    state: &AppState,
    caller: &Caller,
    parsed: ConsulRegistration,
) -> ApiResult<()> {
    let registration = &parsed.registration;
    caller.may_write(&registration.key)?;
    let probed = parsed
        .checks
        .iter()
        .any(|c| matches!(c.kind, ConsulCheckKind::Http | ConsulCheckKind::Tcp));
    if probed {
        // The native guard, naming the Consul field the refused address came from.
        let field = parsed.probe_field;
        state
            .prober
            .check_endpoint(&registration.probe_target)
            .await
            .map_err(|refused| {
                ApiError::bad_request(field, format!("{field} is not allowed: {refused}"))
            })?;
    }
    // Consul keeps one service per ID: the same ID registered again under another type (its
    // `Meta.serviceType` changed) replaces the row it had, rather than leaving two.
    let snapshot = consul(state).catalog.current().await?;
    // Only rows this caller may write: another scope's row with the same ID stays where it is.
    let replaced: Vec<InstanceKey> = writable(caller, snapshot.with_id(&parsed.service_id))
        .into_iter()
        .filter(|e| e.name == registration.key.service_name.as_str())
        .filter_map(|e| InstanceKey::from_stored(&e.partition_key, &e.row_key).ok())
        .filter(|key| *key != registration.key)
        .collect();
    let fields = consul_fields(&parsed);
    state
        .store
        .register_with(registration, &fields, &crate::now_iso())
        .await?;
    for key in &replaced {
        state.deregister(key).await?;
    }
    tracing::info!(
        service_id = %registration.key.service_id(),
        row_key = %registration.key.row_key(),
        consul_id = %parsed.service_id,
        "service registered through the Consul API"
    );
    refresh(state);
    Ok(())
}

/// The row's Consul-only properties: the checks with their IDs (Consul's defaults, `service:<ID>`,
/// numbered `service:<ID>:<n>` from 1 when several lack one), the shortest
/// `DeregisterCriticalServiceAfter` (whole seconds, rounded up), and the initial status given.
fn consul_fields(parsed: &ConsulRegistration) -> ConsulFields {
    let unnamed = parsed
        .checks
        .iter()
        .filter(|c| c.check_id.is_none())
        .count();
    let mut n = 0;
    let checks: Vec<Value> = parsed
        .checks
        .iter()
        .map(|c| {
            let id = c.check_id.clone().unwrap_or_else(|| {
                n += 1;
                if unnamed > 1 {
                    format!("service:{}:{n}", parsed.service_id)
                } else {
                    format!("service:{}", parsed.service_id)
                }
            });
            let name = c.name.clone().unwrap_or_else(|| {
                format!("Service '{}' check", parsed.registration.key.service_name)
            });
            json!({"CheckID": id, "Name": name, "Type": c.kind.as_str()})
        })
        .collect();
    let initial = parsed
        .checks
        .iter()
        .find(|c| c.kind == ConsulCheckKind::Ttl)
        .or(parsed.checks.first())
        .and_then(|c| c.initial_status);
    ConsulFields {
        checks: Some(JsonText::of(&Value::Array(checks))),
        deregister_critical_after: parsed.deregister_critical_after.map(|d| {
            u32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(u32::MAX)
        }),
        check_status: initial.map(|s| s.as_str().to_owned()),
    }
}

/// Rebuilds the snapshot in the background, so watchers on this process wake at once.
fn refresh(state: &AppState) {
    let api: Arc<ConsulApi> = consul(state).clone();
    tokio::spawn(async move {
        let _ = api.catalog.current().await;
    });
}

/// `PUT /v1/agent/service/deregister/<id>`.
pub async fn deregister(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<()> {
    let api = consul(&state);
    parse_query(&uri, &api.settings)?;
    caller.may_write_any()?;
    let found = writable_rows(&state, &caller, |s| s.with_id(&id)).await?;
    let key = match found.as_slice() {
        [] => return Ok(()),
        [entry] => key_of(entry)?,
        _ => return Err(shared_id(&id)),
    };
    state.deregister(&key).await?;
    tracing::info!(service_id = %key.service_id(), row_key = %key.row_key(), consul_id = %id, "service deregistered through the Consul API");
    refresh(&state);
    Ok(())
}

/// `PUT /v1/catalog/deregister`: `{"Node", "ServiceID"}` removes the service with that ID; without
/// `ServiceID`, every service whose host is `Node` (this registry keeps nodes only as their
/// services' hosts).
pub async fn catalog_deregister(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    body: Body,
) -> ApiResult<()> {
    let api = consul(&state);
    parse_query(&uri, &api.settings)?;
    let json = super::super::read_json_body(body).await?;
    let field = |names: &[&str]| {
        json.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
                .and_then(|(_, v)| v.as_str())
                .map(str::to_owned)
        })
    };
    let node = field(&["Node"])
        .ok_or_else(|| ApiError::bad_request("Node", "Missing node name: Node is required"))?;
    let service_id = field(&["ServiceID", "service_id"]);
    caller.may_write_any()?;
    let targets = match &service_id {
        Some(id) => {
            // By ID alone: the node a catalog registration named is not kept (its node is
            // the endpoint's host), so the name a client sends back may not match it.
            let found = writable_rows(&state, &caller, |s| s.with_id(id)).await?;
            if found.len() > 1 {
                return Err(shared_id(id));
            }
            found
        }
        None => {
            writable_rows(&state, &caller, |s| {
                s.entries.iter().filter(|e| e.address == node).collect()
            })
            .await?
        }
    };
    let keys = targets.iter().map(key_of).collect::<ApiResult<Vec<_>>>()?;
    for key in &keys {
        state.deregister(key).await?;
    }
    refresh(&state);
    Ok(())
}

/// `PUT /v1/agent/check/{pass,warn,fail}/<check-id>?note=`.
pub async fn check_pass(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    uri: Uri,
) -> ApiResult<()> {
    check(state, caller, id, uri, CheckStatus::Passing).await
}

pub async fn check_warn(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    uri: Uri,
) -> ApiResult<()> {
    check(state, caller, id, uri, CheckStatus::Warning).await
}

pub async fn check_fail(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    uri: Uri,
) -> ApiResult<()> {
    check(state, caller, id, uri, CheckStatus::Critical).await
}

/// `PUT /v1/agent/check/update/<check-id>` with `{"Status": …, "Output": …}` (`Output` unused: a
/// changing text would move the index).
pub async fn check_update(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    uri: Uri,
    body: Body,
) -> ApiResult<()> {
    let json = super::super::read_json_body(body).await?;
    let status = CheckUpdate::parse(&json)?.status;
    check(state, caller, id, uri, status).await
}

async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path(check_id): Path<String>,
    uri: Uri,
    status: CheckStatus,
) -> ApiResult<()> {
    let api = consul(&state);
    parse_query(&uri, &api.settings)?;
    caller.may_write_any()?;
    let mut found = writable_rows(&state, &caller, |s| s.with_check(&check_id)).await?;
    if found.is_empty() {
        return Err(ApiError::NoSuchService {
            field: "CheckID",
            message: format!("Unknown check ID {check_id:?}"),
        });
    }
    if found.len() > 1 {
        return Err(shared_id(&check_id));
    }
    let entry = found.remove(0);
    let check = entry
        .checks
        .iter()
        .find(|c| c.id == check_id)
        .expect("found by this check ID");
    if entry.consul_checks && check.kind != "ttl" {
        return Err(ApiError::bad_request(
            "CheckID",
            format!("check {check_id:?} is not a TTL check"),
        ));
    }
    let key = key_of(&entry)?;
    let changed = entry.set_status != Some(status);
    let new_revision = changed || entry.lapsed;
    let beat = state
        .store
        .check_update(&key, &crate::now_iso(), Some(status.as_str()), new_revision)
        .await?;
    if !beat {
        return Err(ApiError::NoSuchService {
            field: "CheckID",
            message: format!("Unknown check ID {check_id:?}: its service is gone"),
        });
    }
    if new_revision {
        refresh(&state);
    }
    Ok(())
}
