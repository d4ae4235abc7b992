//! A listing: the rows a discovery or a resolve selects, each registration joined with its health
//! row and with this process's newer heartbeat already laid over it, so a handler reads each row's
//! `lastHeartbeat`, expiry and health as they are and never sees how they were put together.
//!
//! Two reads run side by side, one on each table with the same key filter, and are joined in memory:
//! never one health read per service (the recipe's N+1). Both come from the read cache when warm, so
//! a hot discovery or resolve costs no storage round trip. Heartbeats this process recorded since
//! the rows were read do not invalidate that cache (see `heartbeats`): the join takes the newer
//! `lastHeartbeat` (and the expiry it moves) from there.

use super::heartbeats::{HeartbeatOverlay, RecordedHeartbeat};
use super::{Fetched, HealthByKey, HealthRecord, ServiceRecord, Store, StoreError, Stored};
use crate::domain::{AttributeFilter, HealthState, KeySelection, Scope, Standing};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Instant;

/// Which rows a handler wants: the keys storage evaluates, the attributes matched in memory, and
/// where paging and expiry cut.
pub struct ListingQuery<'q> {
    pub keys: &'q KeySelection,
    pub attributes: &'q AttributeFilter,
    /// Only rows after this one (a continuation token's position).
    pub after: Option<&'q (String, String)>,
    /// Keep expired rows too.
    pub include_expired: bool,
    /// Only the services the caller may read (by PartitionKey and the name half of the RowKey,
    /// the same key a write is judged by).
    pub visible: &'q Scope,
    /// Only rows read from storage after this instant (a page refreshing ahead of its TTL).
    pub read_after: Option<Instant>,
}

/// Both tables' reads for one query, and the heartbeats to lay over them: what `rows` joins, and
/// what a value rendered from them needs to stay fresh (`read_at`, `overlay`).
pub struct Listing<'q> {
    query: &'q ListingQuery<'q>,
    services: Fetched<Vec<ServiceRecord>>,
    health: Fetched<HealthByKey>,
    overlay: HeartbeatOverlay,
}

/// One registration with its health row and the newest `lastHeartbeat` this process knows.
pub struct InstanceRow<'a> {
    pub service: &'a ServiceRecord,
    /// The row's health, unless it is a former holder's of the same key (`describes`).
    pub health: Option<&'a HealthRecord>,
    /// A heartbeat this process recorded after the row was read; `None` when the row's own
    /// `lastHeartbeat` is the newest.
    heartbeat: Option<RecordedHeartbeat>,
}

impl Store {
    /// The listing `query` selects (both tables, from the read cache when warm), with this
    /// process's heartbeats laid over it.
    pub async fn select<'q>(&self, query: &'q ListingQuery<'q>) -> Result<Listing<'q>, StoreError> {
        // Taken before the rows are read: a heartbeat recorded meanwhile is then newer than the
        // listing, and one of a row it hides makes what is rendered from it stale at once.
        let overlay = self.heartbeats.overlay();
        let (services, health) = tokio::try_join!(
            self.find_services(query.keys, query.read_after),
            self.find_health(query.keys, query.read_after)
        )?;
        Ok(Listing {
            query,
            services,
            health,
            overlay,
        })
    }
}

impl Listing<'_> {
    /// How many registration rows were read: how much work joining them is.
    pub fn rows_read(&self) -> usize {
        self.services.len()
    }

    /// When the older of the two table reads was fetched: a value made from them lapses with them.
    pub fn read_at(&self) -> Instant {
        self.services.read_at.min(self.health.read_at)
    }

    /// The registry rows read (every row the key selection covers, before any filter).
    pub(super) fn services(&self) -> &Fetched<Vec<ServiceRecord>> {
        &self.services
    }

    pub(super) fn health(&self) -> &Fetched<HealthByKey> {
        &self.health
    }

    pub(super) fn selection(&self) -> &KeySelection {
        self.query.keys
    }

    pub(super) fn read_after(&self) -> Option<Instant> {
        self.query.read_after
    }

    /// The heartbeats laid over this listing, for a value rendered from it to keep.
    pub fn overlay(&self) -> &HeartbeatOverlay {
        &self.overlay
    }

    /// The joined rows the caller may see that pass every attribute filter (tags, metadata,
    /// version, expiry, continuation), in (serviceType, RowKey) order. Health is left to the
    /// caller: discovery and resolution treat it differently.
    pub fn rows(&self, now: DateTime<Utc>) -> Vec<InstanceRow<'_>> {
        let query = self.query;
        let heartbeats = self.overlay.view();
        self.services
            .iter()
            .filter(|service| match query.after {
                Some((pk, rk)) => (&service.partition_key, &service.row_key) > (pk, rk),
                None => true,
            })
            .filter(|service| {
                let name = service.row_key.split(':').next().unwrap_or_default();
                query.visible.covers(&service.partition_key, name)
            })
            .filter(|service| attributes_match(query.attributes, service))
            .map(|service| InstanceRow {
                service,
                health: self
                    .health
                    .get(&service.partition_key, &service.row_key)
                    .filter(|h| h.describes(service)),
                heartbeat: heartbeats
                    .newer(
                        &service.partition_key,
                        &service.row_key,
                        service.last_heartbeat.as_ref().and_then(Stored::value),
                    )
                    .cloned(),
            })
            .filter(|row| query.include_expired || !row.is_expired(now))
            .collect()
    }
}

impl<'a> InstanceRow<'a> {
    /// A row as stored, without a heartbeat of this process.
    #[cfg(test)]
    pub fn as_stored(service: &'a ServiceRecord, health: Option<&'a HealthRecord>) -> Self {
        InstanceRow {
            service,
            health,
            heartbeat: None,
        }
    }
}

impl InstanceRow<'_> {
    /// What the last sweep recorded; `None` when never checked. A status other than `healthy` or
    /// `degraded` (a row another client wrote) counts as unhealthy.
    ///
    /// A registration the monitor does not probe (`ServiceRecord::probed`) is judged by its TTL
    /// (expiry is separate, `is_expired`) and its Consul check status: healthy unless a check
    /// update set it critical; a health row it may have from before is ignored.
    pub fn health_state(&self) -> Option<HealthState> {
        if !self.service.probed() {
            let critical = self.service.consul.check_status.as_deref() == Some("critical");
            return Some(if critical {
                HealthState::Unhealthy
            } else {
                HealthState::Healthy
            });
        }
        self.health
            .map(|h| h.status.value().unwrap_or(HealthState::Unhealthy))
    }

    /// The own verdict as effective status reads it (`degraded` included; `store::own_status`).
    pub fn own_status(&self) -> crate::domain::EffectiveStatus {
        super::own_status(self.service, self.health)
    }

    /// The newest `lastHeartbeat` known: this process's, or the row's (`None`: unreadable).
    pub fn last_heartbeat(&self) -> Option<DateTime<Utc>> {
        match &self.heartbeat {
            Some(heartbeat) => Some(heartbeat.at),
            None => self.service.last_heartbeat.as_ref().and_then(Stored::value),
        }
    }

    /// The same `lastHeartbeat` as text: as this process wrote it, or as stored.
    pub fn last_heartbeat_text(&self) -> Option<&str> {
        match &self.heartbeat {
            Some(heartbeat) => Some(&heartbeat.text),
            None => self.service.last_heartbeat.as_ref().map(Stored::text),
        }
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        crate::domain::expires_at(self.service.ttl_seconds, self.last_heartbeat())
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at().is_some_and(|expires| expires <= now)
    }

    /// The row as the domain's selection rules see it.
    pub fn standing(&self, now: DateTime<Utc>) -> Standing {
        Standing {
            weight: self.service.weight_or_default(),
            health: self.health_state(),
            expired: self.is_expired(now),
        }
    }
}

/// Tags (all of), metadata `key=value` (each), version (exact).
fn attributes_match(query: &AttributeFilter, service: &ServiceRecord) -> bool {
    let version_ok = query.version.as_ref().is_none_or(|v| *v == service.version);
    // Stored as text: parsed here, only for a query that filters on them.
    let tags = (!query.tags.is_empty()).then(|| service.tags.value());
    let tags_ok = query.tags.iter().all(|wanted| {
        tags.as_ref()
            .and_then(Value::as_array)
            .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(wanted.as_str())))
    });
    let metadata = (!query.metadata.is_empty()).then(|| service.metadata.value());
    let metadata_ok = query.metadata.iter().all(|(key, wanted)| {
        match metadata.as_ref().and_then(|m| m.get(key)) {
            Some(Value::String(text)) => text == wanted,
            // Numbers and booleans compare by their JSON text: `metadata=port=443`.
            Some(other @ (Value::Number(_) | Value::Bool(_))) => {
                serde_json::from_str::<Value>(wanted).is_ok_and(|w| w == *other)
            }
            _ => false,
        }
    });
    version_ok && tags_ok && metadata_ok
}
