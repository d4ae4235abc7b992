//! Where events are delivered, behind one trait: the Storage Queue (`HEALTH_EVENTS_QUEUE`) and,
//! optionally, an Event Grid topic. The pipeline retries and bounds every call; a sink only says
//! whether its destination accepted a batch.

use serde_json::Value;

/// Why a delivery failed; the text is safe to log (no keys, no tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// One destination of the sweep's events.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// For logs: `queue` or `eventgrid`.
    fn name(&self) -> &'static str;

    /// The most events one `deliver` call takes (a queue message holds one event).
    fn batch_size(&self) -> usize;

    /// Delivers these CloudEvents; `Ok` only when the destination accepted every one of them.
    async fn deliver(&self, events: &[Value]) -> Result<(), PublishError>;
}

/// The Storage Queue `HEALTH_EVENTS_QUEUE`: one message per event, the CloudEvents JSON as base64
/// text (the queue client's encoding, which a queue-triggered function reads as the host's trigger
/// does), kept for the service's longest time to live.
pub struct QueueSink {
    queue: crate::store::StorageQueue,
}

/// A message lives at most 7 days in a Storage Queue (the longest finite time to live).
const MESSAGE_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl QueueSink {
    pub fn new(queue: crate::store::StorageQueue) -> Self {
        QueueSink { queue }
    }
}

#[async_trait::async_trait]
impl EventSink for QueueSink {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn batch_size(&self) -> usize {
        1
    }

    async fn deliver(&self, events: &[Value]) -> Result<(), PublishError> {
        for event in events {
            self.queue
                .put(&event.to_string(), MESSAGE_TTL, std::time::Duration::ZERO)
                .await
                .map_err(|e| PublishError(format!("queue {}: {e}", self.queue.name())))?;
        }
        Ok(())
    }
}
