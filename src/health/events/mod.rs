//! Health-change events, the sweep's side: the hook that turns a verdict about to be written into a
//! transition (`verdict_transition`, called at the one place a verdict is compared with the stored
//! row, so every path that writes verdicts detects the same transitions), the transitions of a
//! removal, and what happens to them once the verdicts are written (`after_sweep` in `pipeline`:
//! publish, keep what was not delivered, remember the recent ones).
//!
//! - `pipeline`: after the writes, bounded in time, never failing the sweep;
//! - `sink`: where events go, behind one trait, and the Storage Queue's sink;
//! - `event_grid`: the Event Grid topic's sink (the CloudEvents batch form).
//!
//! The pure rules (what is a transition, its id, the CloudEvents shape) are the domain's
//! (`domain::events`, `domain::cloud_event`).

mod event_grid;
mod pipeline;
mod sink;

pub use pipeline::{EventCounts, EventPipeline};
pub use sink::{EventSink, PublishError};

use crate::domain::events::{
    health_transition, removal, Subject, Transition, TransitionKind, Verdicts,
};
use crate::domain::CircuitState;
use crate::store::{HealthRecord, ServiceRecord};
use chrono::{DateTime, Utc};

/// The hook: the transition a verdict makes, comparing the stored state (`prior`, `None` when the
/// instance was never checked or the row judged a former holder of its key) with the state about
/// to be written. `None` when the status holds, or when the row's keys cannot be addressed.
pub(crate) fn verdict_transition(
    service: &ServiceRecord,
    prior: Option<&CircuitState>,
    next: &CircuitState,
    reason: &str,
    sweep_time: DateTime<Utc>,
) -> Option<Transition> {
    let key = service.key()?;
    let instance = key.instance_id.as_ref().map(|i| i.as_str());
    let subject = Subject {
        service_type: key.service_type.as_str(),
        service_name: key.service_name.as_str(),
        instance_id: instance,
    };
    let verdicts = Verdicts {
        previous: prior.map(|p| p.status.as_str()),
        next: next.status.as_str(),
        circuit: Some(next.circuit.as_str()),
        reason,
    };
    health_transition(subject, verdicts, sweep_time)
}

/// The transition of a registration the sweep removed (its TTL lapsed beyond the grace period, or
/// a Consul check stayed critical too long), with the status last recorded for it.
pub(crate) fn expiry_transition(
    service: &ServiceRecord,
    health: Option<&HealthRecord>,
    sweep_time: DateTime<Utc>,
) -> Option<Transition> {
    let key = service.key()?;
    let lapsed = service.expires_at().is_some_and(|at| at <= sweep_time);
    let reason = if lapsed {
        "TTL lapsed"
    } else {
        "check critical longer than DeregisterCriticalServiceAfter"
    };
    let last = health.and_then(|h| h.status.value()).map(|s| s.as_str());
    Some(removal(
        TransitionKind::Expired,
        subject_of(&key),
        last,
        reason,
        sweep_time,
    ))
}

/// The transition of a deregistration its owner asked for. The health row is deleted without being
/// read, so the last status is `unknown`.
pub fn deregistration_transition(
    key: &crate::domain::InstanceKey,
    now: DateTime<Utc>,
) -> Transition {
    removal(
        TransitionKind::Deregistered,
        subject_of(key),
        None,
        "deregistered",
        now,
    )
}

fn subject_of(key: &crate::domain::InstanceKey) -> Subject<'_> {
    Subject {
        service_type: key.service_type.as_str(),
        service_name: key.service_name.as_str(),
        instance_id: key.instance_id.as_ref().map(|i| i.as_str()),
    }
}

/// The destinations the settings name: the Storage Queue (and, when configured, Event Grid).
pub(crate) fn sinks(
    settings: &crate::configuration::EventSettings,
    store: &crate::store::Store,
) -> Vec<std::sync::Arc<dyn EventSink>> {
    let mut sinks: Vec<std::sync::Arc<dyn EventSink>> = Vec::new();
    if let Some(name) = &settings.queue {
        match store.queue(name) {
            Some(queue) => sinks.push(std::sync::Arc::new(sink::QueueSink::new(queue))),
            None => tracing::warn!(
                "HEALTH_EVENTS_QUEUE is set but the storage connection names no queue endpoint: events are not published to a queue"
            ),
        }
    }
    if let Some(topic) = &settings.topic {
        let sink = event_grid::EventGridSink::new(topic, settings.publish_timeout);
        sinks.push(std::sync::Arc::new(sink));
    }
    sinks
}
