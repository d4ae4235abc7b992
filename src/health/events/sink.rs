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
