//! The state rows of health-change events: the outbox of events not yet delivered, and the recent
//! transitions the dashboard shows. Both in the state table, beside the lease and the last sweep.
//!
//! - Outbox: partition `~outbox`, one row per event, RowKey the event's id (so keeping the same
//!   event twice writes one row), with `event` (the CloudEvents JSON as text) and `time` (the
//!   transition's time, to deliver and trim oldest first). Written by the sweep for what it could
//!   not deliver and by a deregistration for its event; read and emptied by the next sweep.
//! - Recent: the row `(~events, recent)`, `transitions` holding a JSON array, newest first, at most
//!   100 entries and at most `MAX_RECENT_CHARS` of text; written by the sweep only, once per
//!   sweep or shard, on the version it read (shards of one sweep finishing side by side read again
//!   and merge rather than overwrite each other's entries).
//!
//! This file stores texts it is given; what an event says is the domain's and the health module's.

use super::error::{is_row_missing, is_status};
use super::properties::{put_text, string};
use super::{Store, StoreError};
use azure_core::StatusCode;
use azure_data_tables::IfMatchCondition;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

const OUTBOX_PARTITION: &str = "~outbox";
const EVENTS_PARTITION: &str = "~events";
const RECENT_ROW: &str = "recent";
/// Table Storage's string properties hold at most 64 KiB (32 Ki UTF-16 units): the recent list
/// stays below this many characters, dropping its oldest entries when needed.
pub const MAX_RECENT_CHARS: usize = 30_000;
/// Table Storage's limit on operations in one entity-group transaction.
const MAX_BATCH: usize = 100;

/// One event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// The event's id (the row's key).
    pub id: String,
    /// The transition's time, ISO-8601 UTC text.
    pub time: String,
    /// The CloudEvents JSON, as text.
    pub event: String,
}

impl Store {
    /// Every event in the outbox, oldest first.
    pub async fn pending_events(&self) -> Result<Vec<PendingEvent>, StoreError> {
        self.within_budget(async {
            self.ensure_tables().await?;
            let pages = self
                .state
                .query()
                .filter(format!("PartitionKey eq '{OUTBOX_PARTITION}'"))
                .into_stream::<Map<String, Value>>();
            let mut pages = std::pin::pin!(pages);
            let mut events = Vec::new();
            while let Some(page) = pages.next().await.transpose()? {
                events.extend(page.entities.iter().filter_map(|entity| {
                    Some(PendingEvent {
                        id: string(entity, "RowKey")?,
                        time: string(entity, "time").unwrap_or_default(),
                        event: string(entity, "event")?,
                    })
                }));
            }
            events.sort_by(|a, b| (&a.time, &a.id).cmp(&(&b.time, &b.id)));
            Ok(events)
        })
        .await
    }

    /// Keeps events in the outbox (insert or replace by id), in transactions of up to 100.
    pub async fn keep_pending_events(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.within_budget(async {
            self.ensure_tables().await?;
            for chunk in events.chunks(MAX_BATCH) {
                let mut transaction = self
                    .state
                    .partition_key_client(OUTBOX_PARTITION)
                    .transaction();
                for pending in chunk {
                    transaction = transaction
                        .insert_or_replace(pending.id.as_str(), outbox_entity(pending))?;
                }
                let response = transaction.await?;
                if let Some(op) = response
                    .operation_responses
                    .iter()
                    .find(|op| !op.status_code.is_success())
                {
                    return Err(StoreError::unavailable(format!(
                        "outbox transaction operation failed with {}",
                        op.status_code
                    )));
                }
            }
            Ok(())
        })
        .await
    }

    /// Removes events from the outbox (delivered, or dropped past its bound). A row already gone
    /// counts as removed.
    pub async fn drop_pending_events(&self, ids: &[&str]) -> Result<(), StoreError> {
        let deletes: Vec<_> = ids
            .iter()
            .map(|id| self.within_budget(self.delete_row(&self.state, OUTBOX_PARTITION, id, None)))
            .collect();
        futures::stream::iter(deletes)
            .buffer_unordered(8)
            .try_collect::<Vec<bool>>()
            .await?;
        Ok(())
    }

    /// The recent transitions, newest first; empty before the first.
    pub async fn recent_transitions(&self) -> Result<Vec<Value>, StoreError> {
        Ok(self.recent_transitions_row().await?.entries)
    }

    /// The recent transitions with the version of the row they were read from, for
    /// `record_recent_transitions`.
    pub async fn recent_transitions_row(&self) -> Result<RecentTransitions, StoreError> {
        self.within_budget(async {
            self.ensure_tables().await?;
            let entity = self
                .state
                .partition_key_client(EVENTS_PARTITION)
                .entity_client(RECENT_ROW);
            match entity.get::<Map<String, Value>>().await {
                Ok(found) => Ok(RecentTransitions {
                    entries: string(&found.entity, "transitions")
                        .and_then(|text| serde_json::from_str::<Vec<Value>>(&text).ok())
                        .unwrap_or_default(),
                    etag: Some(found.etag.to_string()),
                }),
                Err(e) if is_row_missing(&e) => Ok(RecentTransitions::default()),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Replaces the recent transitions with `entries` (newest first), cut to `max` entries and to
    /// `MAX_RECENT_CHARS` of text, oldest dropped first, if the row is still the version `read`
    /// was (no row, when it had none). `Ok(false)`: another writer came first (shards of one
    /// sweep finish side by side); read again and merge.
    pub async fn record_recent_transitions(
        &self,
        read: &RecentTransitions,
        entries: &[Value],
        max: usize,
    ) -> Result<bool, StoreError> {
        let text = bounded_json(entries, max);
        self.within_budget(async {
            self.ensure_tables().await?;
            let mut entity = json!({"PartitionKey": EVENTS_PARTITION, "RowKey": RECENT_ROW});
            if let Some(row) = entity.as_object_mut() {
                put_text(row, "transitions", &text);
            }
            let client = self
                .state
                .partition_key_client(EVENTS_PARTITION)
                .entity_client(RECENT_ROW);
            let written = match &read.etag {
                Some(etag) => client
                    .update(entity, IfMatchCondition::Etag(etag.clone().into()))?
                    .await
                    .map(|_| ()),
                None => self
                    .state
                    .insert::<_, Map<String, Value>>(entity)?
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(_) => Ok(true),
                Err(e)
                    if is_status(&e, StatusCode::PreconditionFailed)
                        || is_status(&e, StatusCode::Conflict)
                        || is_row_missing(&e) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }
}

/// The recent transitions as read, and the row's version (none: there was no row).
#[derive(Debug, Default)]
pub struct RecentTransitions {
    pub entries: Vec<Value>,
    etag: Option<String>,
}

fn outbox_entity(pending: &PendingEvent) -> Value {
    let mut entity = json!({"PartitionKey": OUTBOX_PARTITION, "RowKey": pending.id});
    if let Some(row) = entity.as_object_mut() {
        put_text(row, "time", &pending.time);
        put_text(row, "event", &pending.event);
    }
    entity
}

/// The JSON array of the first `max` entries, fewer when the text would pass `MAX_RECENT_CHARS`.
fn bounded_json(entries: &[Value], max: usize) -> String {
    let mut kept = &entries[..entries.len().min(max)];
    loop {
        let text = Value::from(kept.to_vec()).to_string();
        if text.chars().count() <= MAX_RECENT_CHARS || kept.is_empty() {
            return text;
        }
        kept = &kept[..kept.len() - 1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_list_is_cut_to_its_count_and_its_size_oldest_first() {
        let entries: Vec<Value> = (0..150).map(|i| json!({"n": i})).collect();
        let text = bounded_json(&entries, 100);
        let read: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(read.len(), 100);
        assert_eq!(
            (read[0]["n"].as_i64(), read[99]["n"].as_i64()),
            (Some(0), Some(99))
        );
        let big: Vec<Value> = (0..100)
            .map(|i| json!({"n": i, "reason": "x".repeat(1000)}))
            .collect();
        let read: Vec<Value> = serde_json::from_str(&bounded_json(&big, 100)).unwrap();
        assert!(read.len() < 30 && !read.is_empty(), "{}", read.len());
        assert_eq!(read[0]["n"].as_i64(), Some(0));
    }

    #[test]
    fn an_outbox_row_holds_the_event_text_and_its_time() {
        let pending = PendingEvent {
            id: "ab12".into(),
            time: "2026-11-25T09:05:00.000Z".into(),
            event: r#"{"id":"ab12"}"#.into(),
        };
        let entity = outbox_entity(&pending);
        assert_eq!(entity["PartitionKey"], "~outbox");
        assert_eq!(entity["RowKey"], "ab12");
        assert_eq!(entity["event"], r#"{"id":"ab12"}"#);
        assert_eq!(entity["time"], "2026-11-25T09:05:00.000Z");
    }
}
