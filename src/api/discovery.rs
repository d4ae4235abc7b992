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
use crate::store::{Beats, BeatsView, Weigh};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

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
struct Page<'a> {
    rows: Vec<&'a Joined<'a>>,
    failed_open: Option<bool>,
    continuation_token: Option<String>,
}

/// A page as served: rendered once, then reused from the page cache (with the same TTL and the same
/// invalidation as the table reads) until it lapses, this process writes, or the page itself goes
/// stale (`is_current`). A warm discovery, and above all a 304, then costs a lookup and a
/// comparison instead of a join and a serialisation; concurrent requests share one page.
///
/// Each item is kept as its JSON text with the two parts a heartbeat moves (`lastHeartbeat` and
/// `expiresAt`) marked, so a heartbeat this process recorded since is written into the body as it
/// is sent, without invalidating the page or moving its `ETag`.
pub struct RenderedPage {
    /// Every item's JSON text, back to back.
    text: String,
    items: Vec<Item>,
    count: usize,
    failed_open: Option<bool>,
    continuation_token: Option<String>,
    etag: HeaderValue,
    /// When the first row the page selected from lapses (a TTL running out changes what it shows).
    stale_at: Option<Instant>,
    /// Rows the page hides or shows as expired: a heartbeat of this process revives them.
    expired: Vec<(String, String)>,
    beats: Arc<Beats>,
    /// The newest heartbeat already read into the page.
    beats_seq: u64,
    /// When the older of the two table reads it was rendered from was fetched: the page lapses
    /// with its data, not a TTL after it was rendered.
    read_at: Instant,
}

/// One item's place in `RenderedPage::text`: `start..heartbeat` the fields before
/// `,"lastHeartbeat":`, then its value up to `middle`, the fields up to `expires`, the value of
/// `expiresAt` up to `tail`, and the rest up to `end`.
struct Item {
    partition_key: String,
    row_key: String,
    /// The `lastHeartbeat` the text holds, to tell whether a recorded beat is newer.
    heartbeat: Option<DateTime<Utc>>,
    ttl_seconds: Option<i64>,
    start: usize,
    heartbeat_at: usize,
    middle: usize,
    expires_at: usize,
    tail: usize,
    end: usize,
}

const HEARTBEAT_KEY: &str = ",\"lastHeartbeat\":";
const HEALTH_KEY: &str = ",\"healthStatus\":";
const EXPIRES_KEY: &str = ",\"expiresAt\":";
const EXPIRED_KEY: &str = ",\"expired\":";

impl Item {
    /// Appends one instance's JSON to `text` and marks its parts. The marks are found from the end:
    /// the fields after `lastHeartbeat` are all this handler's own (no caller text can hold a bare
    /// `"`), so the last `,"lastHeartbeat":` is the field, whatever a caller put in `metadata`.
    fn render(text: &mut String, joined: &Joined<'_>, now: DateTime<Utc>) -> ApiResult<Item> {
        let json = serde_json::to_string(&InstanceView::of(joined, now))
            .map_err(|e| ApiError::Internal(format!("cannot serialise services: {e}")))?;
        let mark = |key: &str| {
            json.rfind(key)
                .ok_or_else(|| ApiError::Internal(format!("no {key} in a rendered instance")))
        };
        let (heartbeat, health, expires, expired) = (
            mark(HEARTBEAT_KEY)?,
            mark(HEALTH_KEY)?,
            mark(EXPIRES_KEY)?,
            mark(EXPIRED_KEY)?,
        );
        let start = text.len();
        text.push_str(&json);
        Ok(Item {
            partition_key: joined.service.partition_key.clone(),
            row_key: joined.service.row_key.clone(),
            heartbeat: joined.last_heartbeat(),
            ttl_seconds: joined.service.ttl_seconds,
            start,
            heartbeat_at: start + heartbeat + HEARTBEAT_KEY.len(),
            middle: start + health,
            expires_at: start + expires + EXPIRES_KEY.len(),
            tail: start + expired,
            end: start + json.len(),
        })
    }

    /// The parts the `ETag` covers: everything but `lastHeartbeat` and `expiresAt`.
    fn fixed_parts<'t>(&self, text: &'t str) -> [&'t str; 3] {
        [
            &text[self.start..self.heartbeat_at],
            &text[self.middle..self.expires_at],
            &text[self.tail..self.end],
        ]
    }

    fn write(&self, text: &str, beats: &BeatsView<'_>, out: &mut String) {
        let newer = beats
            .get(&self.partition_key, &self.row_key)
            .filter(|beat| self.heartbeat.is_none_or(|at| beat.at > at));
        let Some(beat) = newer else {
            out.push_str(&text[self.start..self.end]);
            return;
        };
        let expires = crate::domain::expires_at(self.ttl_seconds, Some(beat.at));
        out.push_str(&text[self.start..self.heartbeat_at]);
        out.push_str(&json_text(&beat.text));
        out.push_str(&text[self.middle..self.expires_at]);
        match expires {
            Some(at) => out.push_str(&json_text(&crate::iso(at))),
            None => out.push_str("null"),
        }
        out.push_str(&text[self.tail..self.end]);
    }
}

fn json_text(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

impl Weigh for RenderedPage {
    fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.text.len()
            + self
                .items
                .iter()
                .map(|i| std::mem::size_of::<Item>() + i.partition_key.len() + i.row_key.len())
                .sum::<usize>()
            + self.continuation_token.as_ref().map_or(0, String::len)
    }

    fn read_at(&self) -> Option<Instant> {
        Some(self.read_at)
    }

    fn is_current(&self) -> bool {
        self.stale_at.is_none_or(|at| Instant::now() < at)
            && !self.beats.beaten_since(
                self.beats_seq,
                self.expired
                    .iter()
                    .map(|(pk, rk)| (pk.as_str(), rk.as_str())),
            )
    }
}

/// Bodies go out in pieces of about this size, each written when the connection takes it: a
/// 10,000-service answer never exists whole in memory per request, only the shared page does.
const CHUNK_BYTES: usize = 64 * 1024;

/// The body of one answer, written from the shared page as it is sent.
struct Body {
    page: Arc<RenderedPage>,
    next: usize,
    /// `],"count":…}`: what follows the items; `None` once sent.
    trailer: Option<String>,
}

impl Iterator for Body {
    type Item = Result<Bytes, Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        let trailer = self.trailer.as_ref()?;
        let mut out = String::with_capacity(CHUNK_BYTES + 1024);
        if self.next == 0 {
            out.push_str(SERVICES_OPEN);
        }
        let page = &self.page;
        {
            let beats = page.beats.view();
            while self.next < page.items.len() && out.len() < CHUNK_BYTES {
                if self.next > 0 {
                    out.push(',');
                }
                page.items[self.next].write(&page.text, &beats, &mut out);
                self.next += 1;
            }
        }
        if self.next == page.items.len() {
            out.push_str(trailer);
            self.trailer = None;
        }
        Some(Ok(Bytes::from(out)))
    }
}

const SERVICES_OPEN: &str = "{\"services\":[";

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
    let mut body = Body {
        page,
        next: 0,
        trailer: Some(trailer),
    };
    // An answer that fits one piece goes out with its length (and is compressed only when large).
    let first = body.next();
    let body = match first {
        Some(Ok(whole)) if body.trailer.is_none() => axum::body::Body::from(whole),
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
    let beats = state.store.beats().clone();
    // Read before the rows: a heartbeat recorded while the page renders is then newer than the
    // page, and one of an expired row makes it stale at once.
    let beats_seq = beats.view().seq();
    let selection = Selection {
        keys: query.keys.clone(),
        attributes: &query.attributes,
        after: query.after.as_ref(),
        // Expired rows are judged here, so that the page knows which ones a heartbeat revives.
        include_expired: true,
        visible,
        read_after: refreshing,
    };
    let rendered = with_matching_rows(state, &selection, now, |rows, read_at| {
        let mut expired = Vec::new();
        let mut first_lapse: Option<DateTime<Utc>> = None;
        let mut kept = Vec::with_capacity(rows.len());
        for joined in &rows {
            if joined.is_expired(now) {
                expired.push((
                    joined.service.partition_key.clone(),
                    joined.service.row_key.clone(),
                ));
                if !query.include_expired {
                    continue;
                }
            } else if let Some(at) = joined.expires_at() {
                first_lapse = Some(first_lapse.map_or(at, |first| first.min(at)));
            }
            kept.push(joined);
        }
        let page = paginate(query, kept);
        let mut text = String::new();
        let items = page
            .rows
            .iter()
            .map(|joined| Item::render(&mut text, joined, now))
            .collect::<ApiResult<Vec<Item>>>()?;
        // Held while the page is cached and served: without the slack the doubling left (a
        // 5 MB whole-registry text grew to an 8 MiB buffer).
        text.shrink_to_fit();
        let stale_at =
            first_lapse.map(|at| Instant::now() + (at - now).to_std().unwrap_or_default());
        let etag = entity_tag(&text, &items, &page);
        Ok::<_, ApiError>(RenderedPage {
            count: items.len(),
            text,
            items,
            failed_open: page.failed_open,
            continuation_token: page.continuation_token,
            etag,
            stale_at,
            expired,
            beats: beats.clone(),
            beats_seq,
            read_at,
        })
    })
    .await??;
    Ok(rendered)
}

/// Applies `healthyOnly` (with `failOpen`, by the domain's `healthy_only` rule) and `limit` to rows
/// already filtered by attributes and expiry.
fn paginate<'a>(query: &DiscoveryQuery, rows: Vec<&'a Joined<'a>>) -> Page<'a> {
    let (rows, failed_open) = if query.healthy_only {
        let (rows, failed_open) = healthy_only(rows, query.fail_open, |j| j.health_state());
        (rows, Some(failed_open))
    } else {
        (rows, None)
    };
    let limit = query.limit.unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let rows: Vec<&Joined> = rows.into_iter().take(limit).collect();
    let continuation_token = match (more, rows.last()) {
        (true, Some(last)) => Some(continuation_token(
            &last.service.partition_key,
            &last.service.row_key,
        )),
        _ => None,
    };
    Page {
        rows,
        failed_open,
        continuation_token,
    }
}

/// A weak validator over everything in the body but `timestamp`, `lastHeartbeat` and `expiresAt`:
/// it changes when an instance joins or leaves the answer, when any returned instance's
/// registration, health or `expired` changes, and with the fail-open verdict or the paging; a
/// heartbeat alone does not move it. Weak, because two bodies with one tag may differ in those
/// timestamps. The same on every replica (no per-process seed).
fn entity_tag(text: &str, items: &[Item], page: &Page) -> HeaderValue {
    let mut hash = Sha256::new();
    for item in items {
        for part in item.fixed_parts(text) {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
    }
    hash.update([0, page.failed_open.map_or(2, u8::from)]);
    if let Some(token) = &page.continuation_token {
        hash.update(token.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("W/\"{hex}\"")).expect("hex in quotes is a valid header value")
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

    fn record(entity: serde_json::Value) -> crate::store::ServiceRecord {
        crate::store::ServiceRecord::from_entity(entity.as_object().unwrap())
    }

    #[test]
    fn a_recorded_heartbeat_is_written_into_the_item_and_nothing_else_moves() {
        // Caller text that looks like the marked fields, where a caller can put it.
        let service = record(serde_json::json!({
            "PartitionKey": "api", "RowKey": "svc", "endpoint": "http://x.example",
            "ttlSeconds": 60, "lastHeartbeat": "2026-11-25T05:00:00.000Z",
            "registeredAt": "2026-11-25T04:00:00.000Z",
            "metadata": "{\"a\":1,\"lastHeartbeat\":\",\\\"lastHeartbeat\\\":\",\"expiresAt\":2}",
            "tags": "[\",\\\"expired\\\":\"]"}));
        let now = crate::parse_iso("2026-11-25T05:00:30.000Z").unwrap();
        let joined = Joined {
            service: &service,
            health: None,
            beat: None,
        };
        let mut text = String::new();
        let item = Item::render(&mut text, &joined, now).unwrap();
        let beats = Beats::new(std::time::Duration::from_secs(60));
        let mut out = String::new();
        item.write(&text, &beats.view(), &mut out);
        assert_eq!(out, text, "without a newer beat the item is as rendered");
        let fixed = item.fixed_parts(&text).map(str::to_owned);

        let beat = "2026-11-25T05:00:40.000Z";
        assert!(beats
            .record("api", "svc", crate::parse_iso(beat).unwrap(), beat)
            .is_ok());
        let mut out = String::new();
        item.write(&text, &beats.view(), &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["lastHeartbeat"], beat);
        assert_eq!(v["expiresAt"], "2026-11-25T05:01:40.000Z");
        assert_eq!(v["expired"], false);
        assert_eq!(v["metadata"]["expiresAt"], 2);
        let mut expected: serde_json::Value = serde_json::from_str(&text).unwrap();
        expected["lastHeartbeat"] = beat.into();
        expected["expiresAt"] = "2026-11-25T05:01:40.000Z".into();
        assert_eq!(v, expected);
        // The marks cut the same text whatever the beat: the ETag's parts.
        assert_eq!(item.fixed_parts(&text).map(str::to_owned), fixed);
        assert!(!fixed
            .iter()
            .any(|part| part.contains("05:00:00.000Z\",\"health")));
    }
}
