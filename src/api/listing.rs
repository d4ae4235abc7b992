//! What discovery and resolution share: read the rows a query selects, join each with its health,
//! apply the in-memory filters, and present an instance in the recipe's shape plus our fields.
//!
//! Two reads run side by side, one on each table with the same key filter, and are joined in memory:
//! never one health read per service (the recipe's N+1). Both come from the store's short-lived
//! cache when warm, so a hot discovery or resolve costs no storage round trip. Heartbeats this
//! process sent since the rows were read are joined too (`store::Beats`): they do not invalidate
//! the cache, so the newer `lastHeartbeat` (and the expiry it moves) is taken from there.

use super::AppState;
use crate::domain::{AttributeFilter, Circuit, HealthState, KeySelection, Scope, Standing};
use crate::error::ApiResult;
use crate::store::{Beat, BeatsView, HealthByKey, HealthRecord, JsonText, ServiceRecord, Stored};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::time::Instant;

/// One registration with its health row, as read.
pub struct Joined<'a> {
    pub service: &'a ServiceRecord,
    pub health: Option<&'a HealthRecord>,
    /// A heartbeat this process recorded after the row was read; `None` when the row's own
    /// `lastHeartbeat` is the newest.
    pub beat: Option<Beat>,
}

impl Joined<'_> {
    /// What the last sweep recorded; `None` when never checked. A status other than `healthy` (a
    /// row another client wrote) counts as unhealthy.
    pub fn health_state(&self) -> Option<HealthState> {
        self.health.map(|h| {
            if h.is_healthy() {
                HealthState::Healthy
            } else {
                HealthState::Unhealthy
            }
        })
    }

    /// The newest `lastHeartbeat` known: this process's, or the row's (`None`: unreadable).
    pub fn last_heartbeat(&self) -> Option<DateTime<Utc>> {
        match &self.beat {
            Some(beat) => Some(beat.at),
            None => self.service.last_heartbeat.as_ref().and_then(Stored::value),
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

/// Which rows a handler wants: the keys storage evaluates, the attributes matched in memory, and
/// where paging and expiry cut.
pub struct Selection<'q> {
    pub keys: KeySelection,
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

/// Reads both tables for the selection's keys (from the cache when warm) and hands the joined rows
/// the caller may see that pass every attribute filter (tags, metadata, version, expiry,
/// continuation) to `use_rows`, in (serviceType, RowKey) order, with when the older of the two
/// reads was fetched. Health is left to the caller: discovery and resolution treat it differently.
pub async fn with_matching_rows<T>(
    state: &AppState,
    selection: &Selection<'_>,
    now: DateTime<Utc>,
    use_rows: impl FnOnce(Vec<Joined<'_>>, Instant) -> T,
) -> ApiResult<T> {
    let (services, health) = tokio::try_join!(
        state
            .store
            .find_services(&selection.keys, selection.read_after),
        state
            .store
            .find_health(&selection.keys, selection.read_after)
    )?;
    let read_at = services.read_at.min(health.read_at);
    Ok(cpu_heavy(services.len(), || {
        join_matching(state, selection, &services, &health, now, |rows| {
            use_rows(rows, read_at)
        })
    }))
}

/// Past this many rows, joining and rendering is milliseconds of CPU (a 10,000-instance page: tens).
const HEAVY_ROWS: usize = 500;

/// Runs CPU-bound work over `rows` rows. Heavy work moves off the async worker thread it would
/// hold (`block_in_place`: the runtime hands that worker's other tasks to a new one), so the
/// cached discoveries and 304s queued behind it are answered meanwhile, time-sliced by the OS,
/// instead of waiting for the whole render. Only on the multi-threaded runtime the handler runs.
fn cpu_heavy<T>(rows: usize, work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if rows >= HEAVY_ROWS && multi_threaded {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

fn join_matching<T>(
    state: &AppState,
    selection: &Selection<'_>,
    services: &[ServiceRecord],
    health: &HealthByKey,
    now: DateTime<Utc>,
    use_rows: impl FnOnce(Vec<Joined<'_>>) -> T,
) -> T {
    let beats = state.store.beats().view();
    let rows = services
        .iter()
        .filter(|service| match selection.after {
            Some((pk, rk)) => (&service.partition_key, &service.row_key) > (pk, rk),
            None => true,
        })
        .filter(|service| {
            let name = service.row_key.split(':').next().unwrap_or_default();
            selection.visible.covers(&service.partition_key, name)
        })
        .filter(|service| attributes_match(selection.attributes, service))
        .map(|service| Joined {
            service,
            health: health
                .get(&service.partition_key, &service.row_key)
                .filter(|h| h.describes(service)),
            beat: newer_beat(&beats, service),
        })
        .filter(|joined| selection.include_expired || !joined.is_expired(now))
        .collect();
    drop(beats);
    use_rows(rows)
}

/// This process's heartbeat of the row, if it is newer than the row's own (or that is unreadable).
pub fn newer_beat(beats: &BeatsView<'_>, service: &ServiceRecord) -> Option<Beat> {
    let beat = beats.get(&service.partition_key, &service.row_key)?;
    let stored = service.last_heartbeat.as_ref().and_then(Stored::value);
    stored
        .is_none_or(|stored| beat.at > stored)
        .then(|| beat.clone())
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

/// One registration as discovery shows it: the recipe's fields, then this handler's.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    #[schema(example = "orders")]
    service_name: String,
    /// As registered: an `http(s)://` URL or `tcp://host:port`.
    #[schema(example = "http://127.0.0.1:7071/")]
    endpoint: String,
    /// What the health monitor probes (before `healthCheck.path` is applied).
    health_endpoint: String,
    #[schema(example = "api")]
    service_type: String,
    version: String,
    /// `[]` when the stored text is not a JSON array.
    #[schema(value_type = Vec<String>)]
    tags: JsonText,
    /// `{}` when the stored text is not a JSON object.
    #[schema(value_type = Object)]
    metadata: JsonText,
    /// As stored (ISO-8601 UTC with milliseconds when this handler or the recipe wrote it).
    #[schema(required = true)]
    registered_at: Option<String>,
    /// As stored; moved by every heartbeat and re-registration.
    #[schema(required = true)]
    last_heartbeat: Option<String>,
    /// `null` before the first sweep checked it.
    #[schema(required = true)]
    health_status: Option<HealthView>,
    // Beside the recipe's fields.
    /// `null` for a recipe-style (one row per name) registration.
    #[schema(required = true)]
    instance_id: Option<String>,
    /// The resolver's share (100 unless registered otherwise).
    weight: u32,
    #[schema(required = true)]
    ttl_seconds: Option<i64>,
    /// `lastHeartbeat + ttlSeconds`; `null` without a TTL.
    #[schema(required = true)]
    expires_at: Option<String>,
    /// The TTL lapsed: hidden from discovery unless `includeExpired=true`, never resolved.
    expired: bool,
    /// The registration's own check settings, when it gave any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<super::openapi::HealthCheckSettings>)]
    health_check: Option<Value>,
}

/// What the last sweep recorded. Times as stored: ISO-8601 UTC with milliseconds.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct HealthView {
    /// `healthy` or `unhealthy`: the circuit breaker's verdict, not the last probe's (another
    /// client's row may hold other text).
    #[schema(example = "healthy")]
    status: String,
    /// When the last probe finished.
    #[schema(required = true)]
    last_checked: Option<String>,
    /// The last probe's duration in ms.
    #[schema(required = true)]
    response_time: Option<i64>,
    // Beside the recipe's three fields: why the last probe failed and when an open circuit is
    // tried again (what an operator asks first about an unhealthy instance), then the circuit.
    /// Why the last probe failed (`HTTP 503`, `connection failed`, `no answer within 5000 ms`,
    /// `refused target …`); absent when it passed. Kept while the status is still healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "HTTP 503")]
    error_message: Option<String>,
    /// `closed`, `open` (isolated until `nextProbeAt`) or `half-open` (passing trials); absent on
    /// rows the recipe wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "closed")]
    circuit: Option<String>,
    /// The earliest next trial probe; only while the circuit is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    next_probe_at: Option<String>,
    /// The current run of failed probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    consecutive_failures: Option<u32>,
    /// The current run of passed probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    consecutive_successes: Option<u32>,
    /// When `status` last changed (the start of the sweep that changed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    last_transition: Option<String>,
    /// The process that probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    checked_by: Option<String>,
    /// Moving average of `responseTime` in ms (the newest probe weighs 0.3): what the resolver
    /// ranks by.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    response_time_ewma: Option<f64>,
}

impl InstanceView {
    pub fn of(joined: &Joined<'_>, now: DateTime<Utc>) -> Self {
        let service = joined.service;
        let expires = joined.expires_at();
        let text = |stored: &Option<Stored<_>>| stored.as_ref().map(|t| t.text().to_owned());
        InstanceView {
            service_name: service.service_name.clone(),
            endpoint: service.endpoint.clone(),
            health_endpoint: service.health_endpoint.clone(),
            service_type: service.service_type.clone(),
            version: service.version.clone(),
            tags: service.tags.clone(),
            metadata: service.metadata.clone(),
            registered_at: text(&service.registered_at),
            last_heartbeat: match &joined.beat {
                Some(beat) => Some(beat.text.clone()),
                None => text(&service.last_heartbeat),
            },
            health_status: joined.health.map(|h| HealthView {
                status: h.status.text().to_owned(),
                last_checked: text(&h.last_checked),
                response_time: h.response_time,
                error_message: Some(h.error_message.clone()).filter(|m| !m.is_empty()),
                circuit: h.circuit.as_ref().map(|c| c.text().to_owned()),
                // Only an open circuit waits for it; a stale value on another row would mislead.
                next_probe_at: h
                    .next_probe_at
                    .filter(|_| h.circuit.as_ref().and_then(Stored::value) == Some(Circuit::Open))
                    .map(crate::iso),
                consecutive_failures: h.consecutive_failures,
                consecutive_successes: h.consecutive_successes,
                last_transition: text(&h.last_transition),
                checked_by: h.checked_by.clone(),
                response_time_ewma: h.response_time_ewma,
            }),
            instance_id: service.instance_id.clone(),
            weight: service.weight_or_default(),
            ttl_seconds: service.ttl_seconds,
            expires_at: expires.map(crate::iso),
            expired: expires.is_some_and(|e| e <= now),
            health_check: service.health_check.as_ref().map(|c| c.to_json()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(health: Value) -> Value {
        let service = ServiceRecord::from_entity(
            json!({"PartitionKey": "api", "RowKey": "svc", "endpoint": "http://x.example"})
                .as_object()
                .unwrap(),
        );
        let health = HealthRecord::from_entity(health.as_object().unwrap());
        let joined = Joined {
            service: &service,
            health: Some(&health),
            beat: None,
        };
        serde_json::to_value(InstanceView::of(&joined, Utc::now())).unwrap()["healthStatus"].clone()
    }

    #[test]
    fn the_error_shows_when_there_is_one_and_the_next_probe_only_while_open() {
        let row = |circuit: &str, error: &str| {
            json!({"PartitionKey": "api", "RowKey": "svc", "status": "unhealthy", "circuit": circuit,
                   "errorMessage": error, "nextProbeAt": "2026-11-25T05:15:00Z"})
        };
        let open = view(row("open", "HTTP 503"));
        assert_eq!(open["errorMessage"], "HTTP 503");
        assert_eq!(open["nextProbeAt"], "2026-11-25T05:15:00.000Z");
        // A stale nextProbeAt on a row whose circuit is no longer open is not shown.
        let half_open = view(row("half-open", ""));
        assert!(half_open.get("nextProbeAt").is_none(), "{half_open}");
        assert!(half_open.get("errorMessage").is_none(), "{half_open}");
        // A recipe row (no circuit) shows its reason, and no next probe.
        let recipe = view(
            json!({"status": "unhealthy", "errorMessage": "timeout", "nextProbeAt": "2026-11-25T05:15:00Z"}),
        );
        assert_eq!(recipe["errorMessage"], "timeout");
        assert!(recipe.get("nextProbeAt").is_none(), "{recipe}");
    }
}
