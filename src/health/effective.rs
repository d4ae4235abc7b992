//! The sweep's view of effective status (own verdict and dependencies): the summary's counts by
//! effective status, and the events of a change in it. Every live registration (TTL not lapsed,
//! keys this handler can address) is judged by the same domain rule discovery uses
//! (`store::judge_rows`), before and after this sweep's verdicts, so an operator reading
//! `GET /api/Sweep` sees how many services are held down by a dependency, and an event consumer
//! learns when a dependency's failure reaches a service whose own check still passes.

use crate::domain::events::{effective_transition, Subject, Transition};
use crate::domain::{EffectiveStatus, InstanceKey};
use crate::store::{judge_rows, own_status, HealthByKey, HealthRecord, ServiceRecord};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Live registrations by effective status.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct EffectiveCounts {
    pub healthy: u64,
    pub degraded: u64,
    pub unhealthy: u64,
    pub unknown: u64,
}

/// One live registration as judged: its own status, its effective status and why.
struct Judged {
    key: InstanceKey,
    own: EffectiveStatus,
    status: EffectiveStatus,
    blocked_by: Vec<String>,
}

/// Every live registration judged against `health`, by row keys.
fn judge(
    services: &[ServiceRecord],
    health: &HealthByKey,
    now: DateTime<Utc>,
) -> HashMap<(String, String), Judged> {
    judge_rows(services, health, now)
        .into_iter()
        .filter(|(service, _)| !service.is_expired(now))
        .filter_map(|(service, judgement)| {
            let row = health
                .get(&service.partition_key, &service.row_key)
                .filter(|h| h.describes(service));
            Some((
                (service.partition_key.clone(), service.row_key.clone()),
                Judged {
                    key: service.key()?,
                    own: own_status(service, row),
                    status: judgement.status,
                    blocked_by: judgement.blocked_by,
                },
            ))
        })
        .collect()
}

/// What this sweep changed about effective status.
pub(super) struct EffectiveChange {
    pub counts: EffectiveCounts,
    before: HashMap<(String, String), Judged>,
    after: HashMap<(String, String), Judged>,
}

impl EffectiveChange {
    /// The registry as read at the sweep's start, judged with the health rows it read and again
    /// with the verdicts it wrote laid over them (a written verdict replaces the row with its keys).
    /// Without any declared dependency the effective status is the own one: nothing is judged twice.
    pub fn of(
        services: &[ServiceRecord],
        previous: &HealthByKey,
        written: Vec<HealthRecord>,
        now: DateTime<Utc>,
    ) -> Self {
        let health = if written.is_empty() {
            previous.clone()
        } else {
            HealthByKey::new(previous.values().cloned().chain(written).collect())
        };
        let after = judge(services, &health, now);
        let before = if services.iter().any(|s| !s.depends_on.is_empty()) {
            judge(services, previous, now)
        } else {
            HashMap::new()
        };
        let mut counts = EffectiveCounts::default();
        for judged in after.values() {
            *match judged.status {
                EffectiveStatus::Healthy => &mut counts.healthy,
                EffectiveStatus::Degraded => &mut counts.degraded,
                EffectiveStatus::Unhealthy => &mut counts.unhealthy,
                EffectiveStatus::Unknown => &mut counts.unknown,
            } += 1;
        }
        EffectiveChange {
            counts,
            before,
            after,
        }
    }

    /// Fills the effective statuses of this sweep's own transitions, and adds one transition for
    /// each registration whose own status held while its effective status moved.
    pub fn connect(&self, transitions: &mut Vec<Transition>, sweep_time: DateTime<Utc>) {
        if self.before.is_empty() {
            return;
        }
        let by_subject: HashMap<String, &(String, String)> = self
            .after
            .iter()
            .map(|(row, judged)| (subject_text(&judged.key), row))
            .collect();
        let mut announced = std::collections::HashSet::new();
        for transition in transitions.iter_mut() {
            let Some(row) = by_subject.get(&transition.subject()) else {
                continue;
            };
            announced.insert(*row);
            if let Some(before) = self.before.get(*row) {
                transition.effective_from = before.status.as_str().to_owned();
            }
            transition.effective_to = self.after[*row].status.as_str().to_owned();
        }
        let mut added: Vec<Transition> = self
            .after
            .iter()
            .filter(|(row, _)| !announced.contains(row))
            .filter_map(|(row, after)| {
                let before = self.before.get(row)?;
                if before.own != after.own || before.status == after.status {
                    return None;
                }
                effective_transition(
                    subject(&after.key),
                    after.own.as_str(),
                    (before.status.as_str(), after.status.as_str()),
                    &after.blocked_by,
                    sweep_time,
                )
            })
            .collect();
        added.sort_by_key(Transition::subject);
        transitions.extend(added);
    }
}

fn subject(key: &InstanceKey) -> Subject<'_> {
    Subject {
        service_type: key.service_type.as_str(),
        service_name: key.service_name.as_str(),
        instance_id: key.instance_id.as_ref().map(|i| i.as_str()),
    }
}

fn subject_text(key: &InstanceKey) -> String {
    match &key.instance_id {
        None => format!(
            "{}:{}",
            key.service_type.as_str(),
            key.service_name.as_str()
        ),
        Some(instance) => format!(
            "{}:{}/{}",
            key.service_type.as_str(),
            key.service_name.as_str(),
            instance.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, depends_on: &str) -> ServiceRecord {
        let mut entity = json!({"PartitionKey": "api", "RowKey": name, "endpoint": "http://x"});
        if !depends_on.is_empty() {
            entity["dependsOn"] = json!(depends_on);
        }
        ServiceRecord::from_entity(entity.as_object().unwrap())
    }

    fn health(name: &str, status: &str) -> HealthRecord {
        HealthRecord::from_entity(
            json!({"PartitionKey": "api", "RowKey": name, "status": status})
                .as_object()
                .unwrap(),
        )
    }

    #[test]
    fn this_sweeps_verdicts_replace_the_previous_and_cascade() {
        let services = [
            service("web", r#"["api:app"]"#),
            service("app", r#"["api:db"]"#),
            service("db", ""),
            service("new", ""),
        ];
        let previous = HealthByKey::new(vec![
            health("web", "healthy"),
            health("app", "healthy"),
            health("db", "healthy"),
        ]);
        let now = Utc::now();
        let before = EffectiveChange::of(&services, &previous, Vec::new(), now).counts;
        assert_eq!(
            before,
            EffectiveCounts {
                healthy: 3,
                unknown: 1,
                ..EffectiveCounts::default()
            }
        );
        let after =
            EffectiveChange::of(&services, &previous, vec![health("db", "unhealthy")], now).counts;
        assert_eq!(
            after,
            EffectiveCounts {
                unhealthy: 3,
                unknown: 1,
                ..EffectiveCounts::default()
            }
        );
        let degraded =
            EffectiveChange::of(&services, &previous, vec![health("db", "degraded")], now).counts;
        assert_eq!((degraded.degraded, degraded.healthy), (3, 0));
    }
}
