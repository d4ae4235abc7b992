//! The sweep summary's counts by effective status: every live registration (TTL not lapsed, keys
//! this handler can address) judged, after this sweep's verdicts, by the same domain rule discovery
//! uses (`store::judge_rows`), so an operator reading `GET /api/Sweep` sees how many services are
//! held down by a dependency, not only how many failed their own probe.

use crate::domain::EffectiveStatus;
use crate::store::{judge_rows, HealthByKey, HealthRecord, ServiceRecord};
use chrono::{DateTime, Utc};

/// Live registrations by effective status.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct EffectiveCounts {
    pub healthy: u64,
    pub degraded: u64,
    pub unhealthy: u64,
    pub unknown: u64,
}

impl EffectiveCounts {
    /// The registry as read at the sweep's start with the verdicts it wrote laid over the health
    /// rows it read (a written verdict replaces the row with its keys).
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
        let mut counts = EffectiveCounts::default();
        for (service, judgement) in judge_rows(services, &health, now) {
            if service.is_expired(now) {
                continue;
            }
            *match judgement.status {
                EffectiveStatus::Healthy => &mut counts.healthy,
                EffectiveStatus::Degraded => &mut counts.degraded,
                EffectiveStatus::Unhealthy => &mut counts.unhealthy,
                EffectiveStatus::Unknown => &mut counts.unknown,
            } += 1;
        }
        counts
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
        let before = EffectiveCounts::of(&services, &previous, Vec::new(), now);
        assert_eq!(
            before,
            EffectiveCounts {
                healthy: 3,
                unknown: 1,
                ..EffectiveCounts::default()
            }
        );
        let after = EffectiveCounts::of(&services, &previous, vec![health("db", "unhealthy")], now);
        assert_eq!(
            after,
            EffectiveCounts {
                unhealthy: 3,
                unknown: 1,
                ..EffectiveCounts::default()
            }
        );
        let degraded =
            EffectiveCounts::of(&services, &previous, vec![health("db", "degraded")], now);
        assert_eq!((degraded.degraded, degraded.healthy), (3, 0));
    }
}
