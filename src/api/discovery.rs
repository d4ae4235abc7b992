//! `ServiceDiscovery`: GET the instances matching the filters, with their health, in the recipe's
//! shape, with an `ETag` so that polling clients can ask "anything new?" for the price of a 304.
//!
//! A discovery reads: parse the query, authorize it, look the page up in the rendered-page cache
//! (`page`; on a miss, render it from the store's listing), then answer: a 304, or the page's body.

mod page;

use super::instance_view::InstanceView;
use super::offload::cpu_heavy;
use super::openapi::{
    BadRequest, DiscoveryParams, Forbidden, InternalError, StorageUnavailable, Unauthorized,
};
use super::AppState;
use crate::domain::{DiscoveryQuery, Scope};
use crate::error::{ApiError, ApiResult};
use crate::security::Caller;
use crate::store::ListingQuery;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use page::{Body, SERVICES_OPEN};
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Instant;

pub use page::RenderedPage;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct DiscoveryResponse<'a> {
    /// In (`serviceType`, RowKey) order.
    #[schema(value_type = Vec<InstanceView>)]
    services: &'a RawValue,
    count: usize,
    /// When this answer was made (not part of the `ETag`).
    timestamp: String,
    /// With `healthyOnly=true` only: whether it failed open.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    failed_open: Option<bool>,
    /// When more results remain: pass it back for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    continuation_token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/ServiceDiscovery",
    tag = "registry",
    operation_id = "discover",
    summary = "List the matching instances with their health",
    params(
        DiscoveryParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer \
            (also as `W/\"…\"`, in a comma-separated list, or `*`): a 304 while nothing changed."),
    ),
    responses(
        (status = 200, description = "The matching instances.", body = DiscoveryResponse,
            headers(("ETag" = String, description = "A weak validator (`W/\"…\"`), the same on every \
                replica. It moves when an instance joins or leaves the answer (a registration, a \
                deregistration, a TTL lapsing or a heartbeat reviving an expired instance), when a \
                returned instance's registration, health row or `expired` changes, and with \
                `failedOpen` or the paging. It does not move with `timestamp`, `lastHeartbeat` or \
                `expiresAt`: heartbeats do not wake polling clients. `lastHeartbeat` is the newest \
                this replica knows: a heartbeat sent through it shows at once, one sent through \
                another replica within the read cache's TTL (`DISCOVERY_CACHE_TTL_MS`)."))),
        (status = 304, description = "`If-None-Match` holds the current tag: no body.",
            headers(("ETag" = String, description = "The current tag (weak)."))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
        (status = 503, response = StorageUnavailable),
    ),
)]
pub async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = DiscoveryQuery::from_query_string(raw.as_deref().unwrap_or_default())?;
    caller.may_select(&query.keys)?;
    // A scoped reader sees only its services, so what it may read is part of the page's key.
    let visible = caller.read_scope();
    // The parsed query is the cache key: `code`, order and spelling of the raw string do not matter.
    let page = state
        .pages
        .get_or_fetch(&format!("{visible}|{query:?}"), None, |refreshing| {
            let (state, query, visible) = (state.clone(), query.clone(), visible.clone());
            async move { render(&state, &query, &visible, refreshing).await }
        })
        .await?
        .value;
    if if_none_match(&headers, &page.etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, page.etag.clone())],
        )
            .into_response());
    }
    answer(page)
}

/// One page as `visible` may see it: rows outside it are gone before health, fail-open and paging
/// are judged, so neither the count nor `failedOpen` says anything about them. A page refreshing
/// ahead of its TTL (`refreshing`: when the page it replaces was read) is rendered from reads newer
/// than that one's.
async fn render(
    state: &AppState,
    query: &DiscoveryQuery,
    visible: &Scope,
    refreshing: Option<Instant>,
) -> ApiResult<RenderedPage> {
    let now = chrono::Utc::now();
    let listing_query = ListingQuery {
        keys: &query.keys,
        attributes: &query.attributes,
        after: query.after.as_ref(),
        // Expired rows are judged by the page, so that it knows which ones a heartbeat revives.
        include_expired: true,
        visible,
        read_after: refreshing,
    };
    let listing = state.store.select(&listing_query).await?;
    let dependencies = state.store.dependency_reads(&listing).await?;
    let rows = listing.rows_read() + dependencies.as_ref().map_or(0, |d| d.rows());
    cpu_heavy(rows, || {
        let effective = dependencies.map(|d| d.judge(now)).unwrap_or_default();
        RenderedPage::render(&listing, &effective, query, now)
    })
}

/// The page's body, with this answer's `timestamp` after its items.
fn answer(page: Arc<RenderedPage>) -> ApiResult<Response> {
    let empty = RawValue::from_string("[]".to_owned())
        .map_err(|e| ApiError::Internal(format!("cannot serialise services: {e}")))?;
    let rest = DiscoveryResponse {
        services: &empty,
        count: page.count,
        timestamp: crate::now_iso(),
        failed_open: page.failed_open,
        continuation_token: page.continuation_token.clone(),
    };
    let rest = serde_json::to_string(&rest)
        .map_err(|e| ApiError::Internal(format!("cannot serialise the answer: {e}")))?;
    // `{"services":[]…}`: the items go between the brackets.
    let trailer = rest[SERVICES_OPEN.len()..].to_owned();
    let etag = page.etag.clone();
    let mut body = Body::new(page, trailer);
    // An answer that fits one piece goes out with its length (and is compressed only when large).
    let first = body.next();
    let body = match first {
        Some(Ok(whole)) if body.is_done() => axum::body::Body::from(whole),
        first => {
            axum::body::Body::from_stream(futures::stream::iter(first.into_iter().chain(body)))
        }
    };
    Ok((
        [
            (header::ETAG, etag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response())
}

/// `If-None-Match` as RFC 9110 §13.1.2 reads it: `*`, or a list compared weakly (`W/` ignored).
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default().trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_reads_lists_weak_tags_and_star() {
        let ours = HeaderValue::from_static("W/\"abc\"");
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            if_none_match(&headers, &ours)
        };
        assert!(with("\"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("\"x\", \"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!with("abc"));
        assert!(!if_none_match(&HeaderMap::new(), &ours));
    }
}
