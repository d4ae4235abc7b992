//! `ServiceDiscovery`: GET the instances matching the filters, with their health, in the recipe's
//! shape, with an `ETag` so that polling clients can ask "anything new?" for the price of a 304.

use super::listing::{with_matching_rows, InstanceView, Joined, Selection};
use super::openapi::{
    BadRequest, DiscoveryParams, Forbidden, InternalError, StorageUnavailable, Unauthorized,
};
use super::AppState;
use crate::domain::{continuation_token, healthy_only, DiscoveryQuery, Scope};
use crate::error::{ApiError, ApiResult};
use crate::security::Caller;
use crate::store::Weigh;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

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

/// One page of the answer, before it is serialised.
struct Page {
    services: Vec<InstanceView>,
    failed_open: Option<bool>,
    continuation_token: Option<String>,
}

/// A page as served: rendered once, then reused from the page cache (with the same TTL and the same
/// invalidation as the table reads) until it lapses or this process writes. A warm discovery, and
/// above all a 304, then costs a lookup and a comparison instead of a join and a serialisation.
pub struct RenderedPage {
    services: Box<RawValue>,
    count: usize,
    failed_open: Option<bool>,
    continuation_token: Option<String>,
    etag: HeaderValue,
}

impl Weigh for RenderedPage {
    fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.services.get().len()
            + self.continuation_token.as_ref().map_or(0, String::len)
    }
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
            headers(("ETag" = String, description = "A strong validator over everything but `timestamp`, the same on every replica."))),
        (status = 304, description = "`If-None-Match` holds the current tag: no body.",
            headers(("ETag" = String, description = "The current tag."))),
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
        .get_or_fetch(&format!("{visible}|{query:?}"), || {
            render(&state, &query, visible)
        })
        .await?;
    if if_none_match(&headers, &page.etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, page.etag.clone())],
        )
            .into_response());
    }
    let body = DiscoveryResponse {
        services: &page.services,
        count: page.count,
        timestamp: crate::now_iso(),
        failed_open: page.failed_open,
        continuation_token: page.continuation_token.clone(),
    };
    Ok(([(header::ETAG, page.etag.clone())], axum::Json(body)).into_response())
}

/// One page as `visible` may see it: rows outside it are gone before health, fail-open and paging
/// are judged, so neither the count nor `failedOpen` says anything about them.
async fn render(
    state: &AppState,
    query: &DiscoveryQuery,
    visible: &Scope,
) -> ApiResult<RenderedPage> {
    let now = chrono::Utc::now();
    let selection = Selection {
        keys: query.keys.clone(),
        attributes: &query.attributes,
        after: query.after.as_ref(),
        include_expired: query.include_expired,
        visible,
    };
    let page =
        with_matching_rows(state, &selection, now, |rows| paginate(query, rows, now)).await?;
    let services = serde_json::to_string(&page.services)
        .map_err(|e| ApiError::Internal(format!("cannot serialise services: {e}")))?;
    let etag = entity_tag(&services, &page);
    Ok(RenderedPage {
        services: RawValue::from_string(services)
            .map_err(|e| ApiError::Internal(format!("cannot serialise services: {e}")))?,
        count: page.services.len(),
        failed_open: page.failed_open,
        continuation_token: page.continuation_token,
        etag,
    })
}

/// Applies `healthyOnly` (with `failOpen`, by the domain's `healthy_only` rule) and `limit` to rows
/// already filtered by attributes.
fn paginate(
    query: &DiscoveryQuery,
    rows: Vec<Joined<'_>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Page {
    let (rows, failed_open) = if query.healthy_only {
        let (rows, failed_open) = healthy_only(rows, query.fail_open, Joined::health_state);
        (rows, Some(failed_open))
    } else {
        (rows, None)
    };
    let limit = query.limit.unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let page: Vec<&Joined> = rows.iter().take(limit).collect();
    let continuation_token = match (more, page.last()) {
        (true, Some(last)) => Some(continuation_token(
            &last.service.partition_key,
            &last.service.row_key,
        )),
        _ => None,
    };
    Page {
        services: page
            .iter()
            .map(|joined| InstanceView::of(joined, now))
            .collect(),
        failed_open,
        continuation_token,
    }
}

/// A strong validator over everything in the body but `timestamp`: it changes when any returned
/// instance, its health, the fail-open verdict or the paging changes, and is the same on every
/// replica (no per-process seed).
fn entity_tag(services: &str, page: &Page) -> HeaderValue {
    let mut hash = Sha256::new();
    hash.update(services.as_bytes());
    hash.update([0, page.failed_open.map_or(2, u8::from)]);
    if let Some(token) = &page.continuation_token {
        hash.update(token.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex in quotes is a valid header value")
}

/// `If-None-Match` as RFC 9110 §13.1.2 reads it: `*`, or a list compared weakly (`W/` ignored).
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
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
        let ours = HeaderValue::from_static("\"abc\"");
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
