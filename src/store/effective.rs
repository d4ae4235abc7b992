//! Effective status for the rows a listing selected: each row that declares `dependsOn` judged
//! against the whole registry's stored verdicts (`domain::evaluate`), so the answer is the same on
//! every replica and costs no write.
//!
//! Why the whole registry and not a walk of the dependency graph, name by name: the walk needs one
//! read per level of the chain (a three-level cascade is three sequential round trips on a cold
//! cache), a cache entry per dependency name, and caps on depth and breadth that make a deep graph
//! judged on part of its facts. The whole-registry pair of reads is the one the sweep and every
//! unfiltered discovery already make, through the same read cache (refreshed ahead of its TTL), so a
//! warm process pays nothing, a cold one two parallel reads; the evaluation is linear in rows plus
//! declared edges, and no cap is needed because nothing is walked. Rows that declare nothing, and
//! listings where no row does, cost nothing at all: their effective status is their own verdict.

use super::{Fetched, HealthByKey, HealthRecord, Listing, ServiceRecord, Store, StoreError};
use crate::domain::{evaluate, EffectiveStatus, InstanceFacts, Judgement, KeySelection};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Instant;

/// The judgements of a listing's rows that declare dependencies; every other row's effective
/// status is its own verdict.
#[derive(Debug, Default)]
pub struct Effective {
    judged: HashMap<(String, String), Judgement>,
    /// When the older of the whole-registry reads was fetched (`None`: none was needed).
    pub read_at: Option<Instant>,
}

impl Effective {
    /// The row's judgement: the evaluation's, or its own verdict with nothing to blame.
    pub fn of(&self, service: &ServiceRecord, own: EffectiveStatus) -> Judgement {
        let judged = (!service.depends_on.is_empty())
            .then(|| {
                self.judged
                    .get(&(service.partition_key.clone(), service.row_key.clone()))
            })
            .flatten();
        judged.cloned().unwrap_or(Judgement {
            status: own,
            blocked_by: Vec::new(),
            dependencies: Vec::new(),
        })
    }
}

/// The whole registry's two reads, when a listing needs them to judge its rows.
pub struct DependencyReads {
    services: Fetched<Vec<ServiceRecord>>,
    health: Fetched<HealthByKey>,
}

impl DependencyReads {
    /// How many registry rows judging them goes over (for `cpu_heavy`).
    pub fn rows(&self) -> usize {
        self.services.len()
    }

    /// Every row judged (CPU only: a linear pass over the rows and their declared edges).
    pub fn judge(&self, now: DateTime<Utc>) -> Effective {
        judge(&self.services, &self.health, now)
    }
}

impl Store {
    /// The reads `listing`'s effective statuses need: `None` when none of its rows declares a
    /// dependency (see the module docs for what is read otherwise).
    pub async fn dependency_reads(
        &self,
        listing: &Listing<'_>,
    ) -> Result<Option<DependencyReads>, StoreError> {
        if listing.services().iter().all(|s| s.depends_on.is_empty()) {
            return Ok(None);
        }
        let (services, health) = if listing.selection() == &KeySelection::all() {
            (listing.services().clone(), listing.health().clone())
        } else {
            let all = KeySelection::all();
            let read_after = listing.read_after();
            tokio::try_join!(
                self.find_services(&all, read_after),
                self.find_health(&all, read_after)
            )?
        };
        Ok(Some(DependencyReads { services, health }))
    }
}

/// Every row of the registry judged; the judgements of rows that declare dependencies kept.
fn judge(
    services: &Fetched<Vec<ServiceRecord>>,
    health: &Fetched<HealthByKey>,
    now: DateTime<Utc>,
) -> Effective {
    let judged = judge_rows(services, health, now)
        .into_iter()
        .filter(|(service, _)| !service.depends_on.is_empty())
        .map(|(service, judgement)| {
            (
                (service.partition_key.clone(), service.row_key.clone()),
                judgement,
            )
        })
        .collect();
    Effective {
        judged,
        read_at: Some(services.read_at.min(health.read_at)),
    }
}

/// Each row with a valid key and its judgement: what the sweep's summary counts.
pub fn judge_rows<'s>(
    services: &'s [ServiceRecord],
    health: &HealthByKey,
    now: DateTime<Utc>,
) -> Vec<(&'s ServiceRecord, Judgement)> {
    let rows: Vec<(&ServiceRecord, String)> = services
        .iter()
        .filter_map(|s| s.key().map(|key| (s, key.service_id())))
        .collect();
    let facts: Vec<InstanceFacts> = rows
        .iter()
        .map(|(service, id)| InstanceFacts {
            service: id,
            own: own_status(
                service,
                health
                    .get(&service.partition_key, &service.row_key)
                    .filter(|h| h.describes(service)),
            ),
            depends_on: &service.depends_on,
            live: !service.is_expired(now),
        })
        .collect();
    let judged = evaluate(&facts);
    rows.into_iter()
        .map(|(service, _)| service)
        .zip(judged)
        .collect()
}

/// A row's own verdict: a registration the monitor does not probe by its Consul check status
/// (critical or not); otherwise its health row's `status`, `degraded` included, any other text
/// counting as unhealthy as everywhere in discovery, and no row as never checked.
pub fn own_status(service: &ServiceRecord, health: Option<&HealthRecord>) -> EffectiveStatus {
    if !service.probed() {
        return match service.consul.check_status.as_deref() {
            Some("critical") => EffectiveStatus::Unhealthy,
            _ => EffectiveStatus::Healthy,
        };
    }
    match health.map(|h| h.status.text()) {
        None => EffectiveStatus::Unknown,
        Some("healthy") => EffectiveStatus::Healthy,
        Some("degraded") => EffectiveStatus::Degraded,
        Some(_) => EffectiveStatus::Unhealthy,
    }
}
