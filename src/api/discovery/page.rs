//! The rendered-page cache's value: one discovery page, rendered once from a store listing and then
//! served to every request for it (with the same TTL and the same invalidation as the table reads)
//! until it lapses, this process writes, or the page itself goes stale (`is_current`). A warm
//! discovery, and above all a 304, then costs a lookup and a comparison instead of a join and a
//! serialisation; concurrent requests share one page.
//!
//! Each item is kept as its JSON text with the two parts a heartbeat moves (`lastHeartbeat` and
//! `expiresAt`) marked, so a heartbeat this process recorded since is written into the body as it
//! is sent (by the store's rule, `HeartbeatsView::newer`), without invalidating the page or moving
//! its `ETag`, which covers everything else.

use crate::api::instance_view::InstanceView;
use crate::domain::{continuation_token, healthy_only, DiscoveryQuery, HealthState};
use crate::error::{ApiError, ApiResult};
use crate::store::{Cacheable, Effective, HeartbeatOverlay, HeartbeatsView, InstanceRow, Listing};
use axum::body::Bytes;
use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// One page of the answer, before it is serialised.
struct Page<'a> {
    rows: Vec<&'a InstanceRow<'a>>,
    failed_open: Option<bool>,
    continuation_token: Option<String>,
}

/// A page as served: its items' text and what the rest of the answer says.
pub struct RenderedPage {
    /// Every item's JSON text, back to back.
    text: String,
    items: Vec<Item>,
    pub(super) count: usize,
    pub(super) failed_open: Option<bool>,
    pub(super) continuation_token: Option<String>,
    pub(super) etag: HeaderValue,
    /// When the first row the page selected from lapses (a TTL running out changes what it shows).
    stale_at: Option<Instant>,
    /// Rows the page hides or shows as expired: a heartbeat of this process revives them.
    expired: Vec<(String, String)>,
    /// This process's heartbeats (a live handle), and where they stood when the listing the page
    /// was rendered from was read.
    overlay: HeartbeatOverlay,
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
    /// The `lastHeartbeat` the text holds, to tell whether a recorded heartbeat is newer.
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

impl RenderedPage {
    /// The page `query` asks for, from `listing` (read with expired rows included, so that the
    /// page knows which ones a heartbeat revives).
    pub(super) fn render(
        listing: &Listing<'_>,
        effective: &Effective,
        query: &DiscoveryQuery,
        now: DateTime<Utc>,
    ) -> ApiResult<RenderedPage> {
        let rows = listing.rows(now);
        let mut expired = Vec::new();
        let mut first_lapse: Option<DateTime<Utc>> = None;
        let mut kept = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.is_expired(now) {
                expired.push((
                    row.service.partition_key.clone(),
                    row.service.row_key.clone(),
                ));
                if !query.include_expired {
                    continue;
                }
            } else if let Some(at) = row.expires_at() {
                first_lapse = Some(first_lapse.map_or(at, |first| first.min(at)));
            }
            kept.push(row);
        }
        let page = paginate(query, effective, kept);
        let mut text = String::new();
        let items = page
            .rows
            .iter()
            .map(|row| {
                let judgement = effective.of(row.service, row.own_status());
                Item::render(&mut text, row, judgement, now)
            })
            .collect::<ApiResult<Vec<Item>>>()?;
        // Held while the page is cached and served: without the slack the doubling left (a
        // 5 MB whole-registry text grew to an 8 MiB buffer).
        text.shrink_to_fit();
        let stale_at =
            first_lapse.map(|at| Instant::now() + (at - now).to_std().unwrap_or_default());
        let etag = entity_tag(&text, &items, &page);
        Ok(RenderedPage {
            count: items.len(),
            text,
            items,
            failed_open: page.failed_open,
            continuation_token: page.continuation_token,
            etag,
            stale_at,
            expired,
            overlay: listing.overlay().clone(),
            // The dependencies' rows lapse too: the page with the older of the reads.
            read_at: effective
                .read_at
                .map_or(listing.read_at(), |at| at.min(listing.read_at())),
        })
    }
}

impl Item {
    /// Appends one instance's JSON to `text` and marks its parts. The marks are found from the end:
    /// the fields after `lastHeartbeat` are all this handler's own (no caller text can hold a bare
    /// `"`), so the last `,"lastHeartbeat":` is the field, whatever a caller put in `metadata`.
    fn render(
        text: &mut String,
        row: &InstanceRow<'_>,
        judgement: crate::domain::Judgement,
        now: DateTime<Utc>,
    ) -> ApiResult<Item> {
        let json = serde_json::to_string(&InstanceView::of(row, judgement, now))
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
            partition_key: row.service.partition_key.clone(),
            row_key: row.service.row_key.clone(),
            heartbeat: row.last_heartbeat(),
            ttl_seconds: row.service.ttl_seconds,
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

    /// Writes the item as rendered, or with this process's newer heartbeat and the expiry it moves.
    fn write(&self, text: &str, heartbeats: &HeartbeatsView<'_>, out: &mut String) {
        let newer = heartbeats.newer(&self.partition_key, &self.row_key, self.heartbeat);
        let Some(heartbeat) = newer else {
            out.push_str(&text[self.start..self.end]);
            return;
        };
        let expires = crate::domain::expires_at(self.ttl_seconds, Some(heartbeat.at));
        out.push_str(&text[self.start..self.heartbeat_at]);
        out.push_str(&json_text(&heartbeat.text));
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

impl Cacheable for RenderedPage {
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
            && !self.overlay.beat_since(
                self.expired
                    .iter()
                    .map(|(pk, rk)| (pk.as_str(), rk.as_str())),
            )
    }
}

/// Bodies go out in pieces of about this size, each written when the connection takes it: a
/// 10,000-service answer never exists whole in memory per request, only the shared page does.
const CHUNK_BYTES: usize = 64 * 1024;

/// What an answer starts with; its items follow.
pub(super) const SERVICES_OPEN: &str = "{\"services\":[";

/// The body of one answer, written from the shared page as it is sent.
pub(super) struct Body {
    page: Arc<RenderedPage>,
    next: usize,
    /// `],"count":…}`: what follows the items; `None` once sent.
    trailer: Option<String>,
}

impl Body {
    pub(super) fn new(page: Arc<RenderedPage>, trailer: String) -> Self {
        Body {
            page,
            next: 0,
            trailer: Some(trailer),
        }
    }

    /// Whether the whole answer has been written.
    pub(super) fn is_done(&self) -> bool {
        self.trailer.is_none()
    }
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
            let heartbeats = page.overlay.view();
            while self.next < page.items.len() && out.len() < CHUNK_BYTES {
                if self.next > 0 {
                    out.push(',');
                }
                page.items[self.next].write(&page.text, &heartbeats, &mut out);
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

/// Applies `healthyOnly` (with `failOpen`, by the domain's `healthy_only` rule) and `limit` to rows
/// already filtered by attributes and expiry. `healthyOnly` judges the effective status (healthy and
/// degraded pass), or with `effective=false` the own verdict as it always did (healthy only).
fn paginate<'a>(
    query: &DiscoveryQuery,
    effective: &Effective,
    rows: Vec<&'a InstanceRow<'a>>,
) -> Page<'a> {
    let health = |row: &&InstanceRow<'_>| {
        if query.own_verdict_only {
            row.health_state().map(HealthState::healthy_or_not)
        } else {
            effective
                .of(row.service, row.own_status())
                .status
                .admitted_as()
        }
    };
    let (rows, failed_open) = if query.healthy_only {
        let (rows, failed_open) = healthy_only(rows, query.fail_open, health);
        (rows, Some(failed_open))
    } else {
        (rows, None)
    };
    let limit = query.limit.unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let rows: Vec<&InstanceRow> = rows.into_iter().take(limit).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecentHeartbeats;

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
        let row = InstanceRow::as_stored(&service, None);
        let mut text = String::new();
        let own = Effective::default().of(&service, row.own_status());
        let item = Item::render(&mut text, &row, own, now).unwrap();
        let heartbeats = RecentHeartbeats::new(std::time::Duration::from_secs(60));
        let mut out = String::new();
        item.write(&text, &heartbeats.view(), &mut out);
        assert_eq!(out, text, "without a newer beat the item is as rendered");
        let fixed = item.fixed_parts(&text).map(str::to_owned);

        let beat = "2026-11-25T05:00:40.000Z";
        assert!(heartbeats
            .record("api", "svc", crate::parse_iso(beat).unwrap(), beat)
            .is_ok());
        let mut out = String::new();
        item.write(&text, &heartbeats.view(), &mut out);
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
