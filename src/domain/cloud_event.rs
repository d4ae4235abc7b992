//! A transition as a CloudEvents 1.0 JSON message (structured mode), the one shape every consumer
//! reads: the Storage Queue's messages, Event Grid's batch, and (shortened) the recent transitions
//! the dashboard shows.
//!
//! ```json
//! {"specversion":"1.0","id":"<32 hex>","source":"/service-registry","type":"registry.health.changed",
//!  "time":"2026-11-25T09:05:00.000Z","subject":"api:orders/pod-1","datacontenttype":"application/json",
//!  "circuit":"open",
//!  "data":{"serviceType":"api","serviceName":"orders","instanceId":"pod-1","from":"healthy",
//!          "to":"unhealthy","effectiveFrom":"healthy","effectiveTo":"unhealthy","reason":"HTTP 503"}}
//! ```
//!
//! `circuit` is a CloudEvents extension attribute (lowercase letters, as the specification asks),
//! present when the sweep recorded the circuit breaker's state; `instanceId` is `null` for a
//! recipe-style registration (one row per service name).

use super::events::Transition;
use serde_json::{json, Map, Value};

/// The CloudEvents version every message declares.
pub const SPEC_VERSION: &str = "1.0";
/// How `data` is encoded.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// Reasons longer than this are cut (on a character boundary) in messages and in the recent list:
/// a probe's reason is a short text, and an event must stay far below a queue message's 64 KiB.
pub const MAX_REASON_CHARS: usize = 256;

/// The transition as a CloudEvents 1.0 JSON object, `source` naming this registry.
pub fn cloud_event(transition: &Transition, source: &str) -> Value {
    let mut event = json!({
        "specversion": SPEC_VERSION,
        "id": transition.id(),
        "source": source,
        "type": transition.kind.event_type(),
        "time": transition.time_text(),
        "subject": transition.subject(),
        "datacontenttype": DATA_CONTENT_TYPE,
    });
    let fields = event.as_object_mut().expect("an object literal");
    if let Some(circuit) = &transition.circuit {
        fields.insert("circuit".into(), circuit.as_str().into());
    }
    fields.insert(
        "data".into(),
        json!({
            "serviceType": transition.service_type,
            "serviceName": transition.service_name,
            "instanceId": transition.instance_id,
            "from": transition.from,
            "to": transition.to,
            "effectiveFrom": transition.effective_from,
            "effectiveTo": transition.effective_to,
            "reason": shorten(&transition.reason),
        }),
    );
    event
}

/// One entry of the recent transitions (`GET /api/Sweep`'s `recentTransitions`) from a CloudEvent
/// this module made: `time`, `subject`, `type`, `from`, `to`, `reason`. `None` for anything else.
pub fn recent_entry(event: &Value) -> Option<Value> {
    let text = |value: &Value, name: &str| value.get(name)?.as_str().map(str::to_owned);
    let data = event.get("data")?;
    let mut entry = Map::new();
    for (name, value) in [
        ("time", text(event, "time")?),
        ("subject", text(event, "subject")?),
        ("type", text(event, "type")?),
        ("from", text(data, "from")?),
        ("to", text(data, "to")?),
        ("reason", text(data, "reason").unwrap_or_default()),
    ] {
        entry.insert(name.into(), value.into());
    }
    Some(Value::Object(entry))
}

fn shorten(reason: &str) -> String {
    match reason.char_indices().nth(MAX_REASON_CHARS) {
        None => reason.to_owned(),
        Some((cut, _)) => format!("{}…", &reason[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{health_transition, removal, Subject, TransitionKind, Verdicts};
    use chrono::{TimeZone, Utc};

    fn down() -> Transition {
        let subject = Subject {
            service_type: "api",
            service_name: "orders",
            instance_id: Some("pod-1"),
        };
        let verdicts = Verdicts {
            previous: Some("healthy"),
            next: "unhealthy",
            circuit: Some("open"),
            reason: "HTTP 503",
        };
        let time = Utc.with_ymd_and_hms(2026, 11, 25, 9, 5, 0).unwrap();
        health_transition(subject, verdicts, time).unwrap()
    }

    #[test]
    fn a_health_change_is_exactly_the_cloudevents_shape() {
        let transition = down();
        let event = cloud_event(&transition, "/service-registry");
        assert_eq!(
            event,
            json!({
                "specversion": "1.0",
                "id": transition.id(),
                "source": "/service-registry",
                "type": "registry.health.changed",
                "time": "2026-11-25T09:05:00.000Z",
                "subject": "api:orders/pod-1",
                "datacontenttype": "application/json",
                "circuit": "open",
                "data": {
                    "serviceType": "api",
                    "serviceName": "orders",
                    "instanceId": "pod-1",
                    "from": "healthy",
                    "to": "unhealthy",
                    "effectiveFrom": "healthy",
                    "effectiveTo": "unhealthy",
                    "reason": "HTTP 503"
                }
            })
        );
        // The attributes in the specification's order, `data` last (serde_json keeps the order).
        let names: Vec<&String> = event.as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            [
                "specversion",
                "id",
                "source",
                "type",
                "time",
                "subject",
                "datacontenttype",
                "circuit",
                "data"
            ]
        );
    }

    #[test]
    fn a_recipe_row_removal_has_a_null_instance_and_no_circuit() {
        let subject = Subject {
            service_type: "api",
            service_name: "orders",
            instance_id: None,
        };
        let time = Utc.with_ymd_and_hms(2026, 11, 25, 9, 5, 0).unwrap();
        let gone = removal(
            TransitionKind::Deregistered,
            subject,
            None,
            "deregistered",
            time,
        );
        let event = cloud_event(&gone, "/r");
        assert_eq!(event["type"], "registry.instance.deregistered");
        assert_eq!(event["subject"], "api:orders");
        assert_eq!(event["data"]["instanceId"], Value::Null);
        assert_eq!(
            (event["data"]["from"].as_str(), event["data"]["to"].as_str()),
            (Some("unknown"), Some("absent"))
        );
        assert!(event.get("circuit").is_none());
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let mut transition = down();
        transition.reason = "é".repeat(MAX_REASON_CHARS + 10);
        let event = cloud_event(&transition, "/r");
        let reason = event["data"]["reason"].as_str().unwrap();
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS + 1);
        assert!(reason.ends_with('…'));
    }

    #[test]
    fn the_recent_entry_keeps_the_six_fields_the_dashboard_reads() {
        let event = cloud_event(&down(), "/r");
        assert_eq!(
            recent_entry(&event),
            Some(json!({
                "time": "2026-11-25T09:05:00.000Z",
                "subject": "api:orders/pod-1",
                "type": "registry.health.changed",
                "from": "healthy",
                "to": "unhealthy",
                "reason": "HTTP 503"
            }))
        );
        assert_eq!(recent_entry(&json!({"id": "x"})), None);
    }
}
