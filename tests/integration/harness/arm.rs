//! A stand-in for Azure Resource Manager on 127.0.0.1, serving the three list operations the
//! Service Connector sync calls, in the shapes docs/arm-protocol.md records (with their sources):
//!
//! - `GET {app}/providers/Microsoft.ServiceLinker/linkers?api-version=2024-04-01`;
//! - `GET /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites?api-version=2023-12-01`;
//! - `GET …/providers/Microsoft.App/containerApps?api-version=2024-03-01`.
//!
//! Each answers `{"value": […], "nextLink": …}`; the test's knobs: the linkers of each app (which
//! it may change between syncs), the apps of a resource group, a page size (then `nextLink` carries
//! a `$skiptoken`), pages the test renders itself (`set_linker_pages`: big listings without a
//! `Value` per item in the test process), and faults for requests whose path starts with a prefix
//! (429 with a `Retry-After`, any status, a malformed body). It checks what ARM would refuse (no
//! bearer token, a wrong `api-version`) and records every request and token.

use super::query_of;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const LINKER_API: &str = "2024-04-01";
pub const SITES_API: &str = "2023-12-01";
pub const CONTAINER_APPS_API: &str = "2024-03-01";

#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 with this `Retry-After` (seconds).
    Throttle(u64),
    /// This status with an ARM error body.
    Status(u16),
    /// 200 with a body that is not a list.
    Malformed,
}

#[derive(Default)]
struct Arm {
    endpoint: String,
    /// App resource ID (lower case) → its linkers.
    linkers: Mutex<HashMap<String, Vec<Value>>>,
    /// App resource ID (lower case) → its linker pages, each the items' JSON text without brackets.
    pages: Mutex<HashMap<String, Arc<Vec<String>>>>,
    /// `/subscriptions/s/resourcegroups/g/providers/<type>` (lower case) → resource IDs.
    groups: Mutex<HashMap<String, Vec<String>>>,
    page_size: Mutex<Option<usize>>,
    /// (path prefix in lower case, fault, how many more requests it applies to).
    faults: Mutex<Vec<(String, Fault, u32)>>,
    requests: Mutex<Vec<String>>,
    tokens: Mutex<Vec<String>>,
    problems: Mutex<Vec<String>>,
}

pub struct ArmServer {
    /// The origin the handler is given as AZURE_RESOURCE_MANAGER_ENDPOINT.
    pub endpoint: String,
    state: Arc<Arm>,
}

fn error(status: StatusCode, code: &str) -> Response {
    let body = json!({"error": {"code": code, "message": format!("{code} (imitation)")}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn serve(State(arm): State<Arc<Arm>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = query_of(request.uri());
    arm.requests.lock().unwrap().push(
        request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
    );
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = bearer else {
        arm.problems
            .lock()
            .unwrap()
            .push(format!("no bearer token on {path}"));
        return error(StatusCode::UNAUTHORIZED, "AuthenticationFailed");
    };
    arm.tokens.lock().unwrap().push(token);
    let lower = path.to_ascii_lowercase();

    let fault = {
        let mut faults = arm.faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|(prefix, _, left)| *left > 0 && lower.starts_with(prefix.as_str()))
            .map(|(_, fault, left)| {
                *left -= 1;
                fault.clone()
            })
    };
    match fault {
        Some(Fault::Throttle(seconds)) => {
            let body =
                json!({"error": {"code": "TooManyRequests", "message": "throttled (imitation)"}});
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after", seconds.to_string()),
                    ("content-type", "application/json".into()),
                ],
                body.to_string(),
            )
                .into_response();
        }
        Some(Fault::Status(status)) => {
            return error(StatusCode::from_u16(status).unwrap(), "InternalServerError")
        }
        Some(Fault::Malformed) => {
            return (
                [("content-type", "application/json")],
                r#"{"items":"not a list"}"#,
            )
                .into_response()
        }
        None => {}
    }

    let rendered = lower
        .strip_suffix("/providers/microsoft.servicelinker/linkers")
        .and_then(|app| arm.pages.lock().unwrap().get(app).cloned());
    if let Some(pages) = rendered {
        return rendered_page(&arm, &path, &query, &pages);
    }
    let (items, api) =
        if let Some(app) = lower.strip_suffix("/providers/microsoft.servicelinker/linkers") {
            match arm.linkers.lock().unwrap().get(app) {
                Some(items) => (items.clone(), LINKER_API),
                None => return error(StatusCode::NOT_FOUND, "ResourceNotFound"),
            }
        } else if lower.ends_with("/providers/microsoft.web/sites") {
            (arm.group_listing(&lower, "Microsoft.Web/sites"), SITES_API)
        } else if lower.ends_with("/providers/microsoft.app/containerapps") {
            (
                arm.group_listing(&lower, "Microsoft.App/containerApps"),
                CONTAINER_APPS_API,
            )
        } else {
            arm.problems
                .lock()
                .unwrap()
                .push(format!("unknown path {path}"));
            return error(StatusCode::NOT_FOUND, "NoRegisteredProviderFound");
        };
    if query.get("api-version").map(String::as_str) != Some(api) {
        arm.problems.lock().unwrap().push(format!(
            "api-version {:?} on {path}",
            query.get("api-version")
        ));
        return error(StatusCode::BAD_REQUEST, "InvalidApiVersionParameter");
    }

    let skip: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let size = arm.page_size.lock().unwrap().unwrap_or(usize::MAX);
    let page: Vec<Value> = items.iter().skip(skip).take(size).cloned().collect();
    let mut body = json!({ "value": page });
    if skip.saturating_add(size) < items.len() {
        body["nextLink"] = json!(format!(
            "{}{path}?api-version={api}&$skiptoken={}",
            arm.endpoint,
            skip + size
        ));
    }
    ([("content-type", "application/json")], body.to_string()).into_response()
}

/// Page `$skiptoken` (0 when absent) of a listing the test rendered, with a `nextLink` to the next
/// page while there is one.
fn rendered_page(
    arm: &Arm,
    path: &str,
    query: &HashMap<String, String>,
    pages: &[String],
) -> Response {
    if query.get("api-version").map(String::as_str) != Some(LINKER_API) {
        arm.problems
            .lock()
            .unwrap()
            .push(format!("api-version on {path}"));
        return error(StatusCode::BAD_REQUEST, "InvalidApiVersionParameter");
    }
    let n: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let Some(items) = pages.get(n) else {
        arm.problems
            .lock()
            .unwrap()
            .push(format!("page {n} of {path}"));
        return error(StatusCode::BAD_REQUEST, "InvalidSkipToken");
    };
    let mut body = String::with_capacity(items.len() + 300);
    body.push_str(r#"{"value":["#);
    body.push_str(items);
    body.push(']');
    if n + 1 < pages.len() {
        body.push_str(&format!(
            r#","nextLink":"{}{path}?api-version={LINKER_API}&$skiptoken={}""#,
            arm.endpoint,
            n + 1
        ));
    }
    body.push('}');
    ([("content-type", "application/json")], body).into_response()
}

/// A tracked resource as the list operations show it (the fields the sync reads, and a few more).
impl Arm {
    /// The resources of one type listed in a resource group (the path, lower case, is the key).
    fn group_listing(&self, path: &str, kind: &str) -> Vec<Value> {
        let groups = self.groups.lock().unwrap();
        let ids = groups.get(path).map(Vec::as_slice).unwrap_or_default();
        ids.iter().map(|id| resource(id, kind)).collect()
    }
}

fn resource(id: &str, kind: &str) -> Value {
    json!({"id": id, "name": id.rsplit('/').next().unwrap(), "type": kind, "location": "westeurope"})
}

/// A linker as "Linker - List" shows it.
pub fn linker(app: &str, name: &str, target_id: &str, auth_type: &str) -> Value {
    json!({
        "id": format!("{app}/providers/Microsoft.ServiceLinker/linkers/{name}"),
        "name": name,
        "type": "Microsoft.ServiceLinker/linkers",
        "properties": {
            "targetService": {"type": "AzureResource", "id": target_id},
            "authInfo": {"authType": auth_type},
            "clientType": "dotnet",
            "provisioningState": "Succeeded"
        },
        "systemData": {"createdAt": "2026-11-30T10:00:00Z"}
    })
}

impl ArmServer {
    pub async fn start() -> ArmServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Arm {
            endpoint: endpoint.clone(),
            ..Arm::default()
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        ArmServer { endpoint, state }
    }

    /// The audience the handler asks its identity for by default: the endpoint and a slash.
    pub fn audience(&self) -> String {
        format!("{}/", self.endpoint)
    }

    pub fn set_linkers(&self, app: &str, linkers: Vec<Value>) {
        self.state
            .linkers
            .lock()
            .unwrap()
            .insert(app.to_ascii_lowercase(), linkers);
    }

    /// `app`'s linker listing as these pages: each the JSON text of its items, comma-separated,
    /// without the brackets (the page adds them, and the `nextLink`).
    pub fn set_linker_pages(&self, app: &str, pages: Vec<String>) {
        self.state
            .pages
            .lock()
            .unwrap()
            .insert(app.to_ascii_lowercase(), Arc::new(pages));
    }

    /// The sites and container apps `GET …/resourceGroups/{g}/providers/<type>` lists.
    pub fn set_group(&self, group_id: &str, sites: &[&str], container_apps: &[&str]) {
        let mut groups = self.state.groups.lock().unwrap();
        let base = group_id.to_ascii_lowercase();
        groups.insert(
            format!("{base}/providers/microsoft.web/sites"),
            sites.iter().map(|s| s.to_string()).collect(),
        );
        groups.insert(
            format!("{base}/providers/microsoft.app/containerapps"),
            container_apps.iter().map(|s| s.to_string()).collect(),
        );
    }

    pub fn set_page_size(&self, size: usize) {
        *self.state.page_size.lock().unwrap() = Some(size);
    }

    /// The next `times` requests whose path starts with `prefix` get `fault`.
    pub fn fault(&self, prefix: &str, fault: Fault, times: u32) {
        self.state
            .faults
            .lock()
            .unwrap()
            .push((prefix.to_ascii_lowercase(), fault, times));
    }

    /// Every request's path and query, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn tokens(&self) -> Vec<String> {
        self.state.tokens.lock().unwrap().clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }
}
