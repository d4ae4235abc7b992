//! Storage Queues in the same account as the tables: the sweep's shards and the health-change
//! events travel on them.
//!
//! Why a wrapper: callers need six verbs (create, put, receive, renew, delete, length), each inside
//! the store's time budget and with the store's one error type, and message text in the encoding the
//! Functions host's queue trigger expects (base64 of UTF-8, the extension's default
//! `messageEncoding`). A queue that vanished is created again once and the call retried, as the
//! tables are (`Store::with_tables`). The crate is `azure_storage_queues`, the same 0.21 line as
//! the Tables crate, sharing its credentials and connection cap (`connection::clients`).

use super::error::{is_receipt_stale, is_status};
use super::{Store, StoreError};
use azure_core::StatusCode;
use azure_storage_queues::prelude::{NumberOfMessages, PopReceipt, QueueClient};
use azure_storage_queues::{MessageTTL, VisibilityTimeout};
use base64::Engine as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The service's limits: at most 32 messages per receive, a visibility timeout of at most 7 days,
/// a message of at most 64 KiB as sent (base64 included).
pub const MAX_RECEIVE: u8 = 32;
pub const MAX_VISIBILITY: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One queue, cheap to clone.
#[derive(Clone)]
pub struct StorageQueue {
    client: QueueClient,
    name: Arc<str>,
    budget: Duration,
}

/// A message taken from the queue: invisible to others until its visibility timeout passes, and
/// removable only with its latest pop receipt (`renew` replaces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub id: String,
    pub pop_receipt: String,
    /// How many times the message has been received, this time included.
    pub dequeue_count: u64,
    /// The message as its sender wrote it (base64 decoded when it was base64 of UTF-8).
    pub text: String,
    /// The text exactly as stored (what a renewal writes back).
    raw: String,
}

impl Store {
    /// The queue `name` of this account, or `None` when the storage source names no queue endpoint
    /// (a connection string with `TableEndpoint=` but no `QueueEndpoint=`). No network traffic.
    pub fn queue(&self, name: &str) -> Option<StorageQueue> {
        self.queues.as_ref().map(|service| StorageQueue {
            client: service.queue_client(name),
            name: Arc::from(name),
            budget: self.budget,
        })
    }
}

impl StorageQueue {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the queue if it does not exist (an existing one is success).
    pub async fn create_if_missing(&self) -> Result<(), StoreError> {
        self.within_budget(self.create()).await
    }

    /// Adds a message, base64 encoded; it expires after `ttl` (at most 7 days) and is first visible
    /// after `invisible_for`. Returns the message id.
    pub async fn put(
        &self,
        text: &str,
        ttl: Duration,
        invisible_for: Duration,
    ) -> Result<String, StoreError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        if encoded.len() > MAX_MESSAGE_BYTES {
            return Err(StoreError::unexpected(format!(
                "a message of {} bytes encoded is over the queue's {MAX_MESSAGE_BYTES}",
                encoded.len()
            )));
        }
        self.recreating(|| async {
            let mut put = self
                .client
                .put_message(encoded.clone())
                .ttl(MessageTTL::new(ttl.max(Duration::from_secs(1))));
            if !invisible_for.is_zero() {
                put = put.visibility_timeout(VisibilityTimeout::new(invisible_for));
            }
            Ok(put.await?.queue_message.message_id)
        })
        .await
    }

    /// Takes up to `max` (1 to 32) visible messages, each invisible to others for `visibility`.
    pub async fn receive(
        &self,
        max: u8,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, StoreError> {
        let max = max.clamp(1, MAX_RECEIVE);
        let visibility = visibility.clamp(Duration::from_secs(1), MAX_VISIBILITY);
        self.recreating(|| async {
            let answer = self
                .client
                .get_messages()
                .number_of_messages(NumberOfMessages::new(max))
                .visibility_timeout(VisibilityTimeout::new(visibility))
                .await?;
            Ok(answer
                .messages
                .into_iter()
                .map(|m| ReceivedMessage {
                    text: decode(&m.message_text),
                    raw: m.message_text,
                    id: m.message_id,
                    pop_receipt: m.pop_receipt,
                    dequeue_count: m.dequeue_count,
                })
                .collect())
        })
        .await
    }

    /// Keeps a message invisible for `visibility` from now (its text unchanged); the message's pop
    /// receipt is replaced. A message that was deleted, or became visible and was taken by another
    /// receiver, is no longer this caller's: `Ok(false)`.
    pub async fn renew(
        &self,
        message: &mut ReceivedMessage,
        visibility: Duration,
    ) -> Result<bool, StoreError> {
        let visibility = visibility.clamp(Duration::from_secs(1), MAX_VISIBILITY);
        let receipt = PopReceipt::new(message.id.clone(), message.pop_receipt.clone());
        let answer = self
            .within_budget(async {
                Ok(self
                    .client
                    .pop_receipt_client(receipt)
                    .update(message.raw.clone(), VisibilityTimeout::new(visibility))
                    .await)
            })
            .await?;
        match answer {
            Ok(updated) => {
                message.pop_receipt = updated.pop_receipt;
                Ok(true)
            }
            Err(error) if is_receipt_stale(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes a message for good. `Ok(false)` when it was already gone or its receipt is stale
    /// (another receiver has it now): at-least-once delivery, so the caller's work was not lost.
    pub async fn delete(&self, message: &ReceivedMessage) -> Result<bool, StoreError> {
        let receipt = PopReceipt::new(message.id.clone(), message.pop_receipt.clone());
        let answer = self
            .within_budget(async { Ok(self.client.pop_receipt_client(receipt).delete().await) })
            .await?;
        match answer {
            Ok(_) => Ok(true),
            Err(error) if is_receipt_stale(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// The service's approximate count of messages (visible or not); a missing queue holds none.
    pub async fn approximate_length(&self) -> Result<u64, StoreError> {
        let answer = self
            .within_budget(async { Ok(self.client.get_metadata().await) })
            .await?;
        match answer {
            Ok(metadata) => Ok(metadata.approximate_messages_count as u64),
            Err(error) if is_status(&error, StatusCode::NotFound) => Ok(0),
            Err(error) => Err(error.into()),
        }
    }

    async fn create(&self) -> Result<(), StoreError> {
        match self.client.create().await {
            Ok(_) => Ok(()),
            // Exists already with other metadata: still the queue we want.
            Err(error) if is_status(&error, StatusCode::Conflict) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Runs `operation`; when the queue does not exist, creates it and runs it once more.
    async fn recreating<T, F, Fut>(&self, operation: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, azure_core::Error>>,
    {
        self.within_budget(async {
            match operation().await {
                Err(error) if is_status(&error, StatusCode::NotFound) => {
                    self.create().await?;
                    operation().await.map_err(StoreError::from)
                }
                other => other.map_err(StoreError::from),
            }
        })
        .await
    }

    async fn within_budget<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.budget, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::unavailable(format!(
                    "no answer from the queue service within {} ms",
                    self.budget.as_millis()
                )))
            })
    }
}

/// Base64 of UTF-8 is decoded (what the host's queue trigger and our `put` write); anything else
/// (a message another tool wrote as plain text) is kept as it is.
fn decode(stored: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(stored.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| stored.to_owned())
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn base64_text_is_decoded_and_plain_text_kept() {
        assert_eq!(decode("eyJhIjoxfQ=="), "{\"a\":1}");
        assert_eq!(decode("{\"a\":1}"), "{\"a\":1}");
        assert_eq!(decode("not base64!"), "not base64!");
    }
}
