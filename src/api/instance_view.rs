//! The wire shape of one instance, as discovery lists it and the resolver answers with it (and
//! lists the instances it judged when none is eligible): the recipe's fields, then this handler's.
//! Made from a store `InstanceRow`, whose `lastHeartbeat` and expiry already include this
//! process's newer heartbeats.

use crate::domain::{Circuit, DependencyState, Judgement};
use crate::store::{InstanceRow, JsonText, Stored};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

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
    /// The services it declared it needs, as stored (only when it declared any).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    depends_on: Option<Vec<DeclaredView>>,
    /// `healthy`, `degraded`, `unhealthy` or `unknown`: the own verdict (`healthStatus`) combined
    /// with the health of the services it depends on. Without `dependsOn`, the own verdict.
    #[schema(example = "unhealthy")]
    effective_status: &'static str,
    /// The chain of `serviceType:serviceName` keys that made the effective status degraded or
    /// unhealthy, nearest first; empty otherwise (and when the own verdict is as bad).
    #[schema(example = json!(["api:orders", "db:orders-sql"]))]
    blocked_by: Vec<String>,
    /// Each declared dependency as it was found (only when it declared any).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    dependencies: Option<Vec<DependencyView>>,
}

/// One declared dependency, as registered (canonical form).
#[derive(Serialize, utoipa::ToSchema)]
struct DeclaredView {
    #[schema(example = "db:orders-sql")]
    service: String,
    required: bool,
}

/// One declared dependency with its health for its dependents.
#[derive(Serialize, utoipa::ToSchema)]
struct DependencyView {
    /// `serviceType:serviceName`.
    #[schema(example = "db:orders-sql")]
    service: String,
    required: bool,
    /// Its effective health for dependents: `healthy`, `degraded`, `unhealthy`, or `unknown` (not
    /// registered, or not checked yet).
    status: &'static str,
    /// `not registered`, `not checked yet`, `no live instance` or `some instances unhealthy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    note: Option<&'static str>,
    /// When this dependency closes a cycle: the path from this service back to itself. A
    /// dependency on a cycle does not change the effective status.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cycle: Vec<String>,
}

impl From<DependencyState> for DependencyView {
    fn from(state: DependencyState) -> Self {
        DependencyView {
            service: state.service,
            required: state.required,
            status: state.status.as_str(),
            note: state.note,
            cycle: state.cycle,
        }
    }
}

/// What the last sweep recorded. Times as stored: ISO-8601 UTC with milliseconds.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct HealthView {
    /// `healthy`, `degraded` (a warning: HTTP 429, 503 with `Retry-After`, a certificate close to
    /// expiry; not a failure) or `unhealthy`: the circuit breaker's verdict, not the last probe's
    /// (another client's row may hold other text).
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
    /// Why the last probe failed or warned (`HTTP 503`, `connection failed`, `no answer within
    /// 5000 ms`, `refused target …`, `HTTP 429 (rate limited)`); absent when it passed. Kept while the status is still healthy.
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
    /// The row as shown, with its effective status (`judgement`; `store::Effective::of`).
    pub fn of(row: &InstanceRow<'_>, judgement: Judgement, now: DateTime<Utc>) -> Self {
        let service = row.service;
        let declared = !service.depends_on.is_empty();
        let expires = row.expires_at();
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
            last_heartbeat: row.last_heartbeat_text().map(str::to_owned),
            health_status: row.health.map(|h| HealthView {
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
            depends_on: declared.then(|| {
                service
                    .depends_on
                    .iter()
                    .map(|d| DeclaredView {
                        service: d.service.clone(),
                        required: d.required,
                    })
                    .collect()
            }),
            effective_status: judgement.status.as_str(),
            blocked_by: judgement.blocked_by,
            dependencies: declared.then(|| {
                judgement
                    .dependencies
                    .into_iter()
                    .map(DependencyView::from)
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HealthRecord, ServiceRecord};
    use serde_json::json;

    fn view(health: Value) -> Value {
        let service = ServiceRecord::from_entity(
            json!({"PartitionKey": "api", "RowKey": "svc", "endpoint": "http://x.example"})
                .as_object()
                .unwrap(),
        );
        let health = HealthRecord::from_entity(health.as_object().unwrap());
        let row = InstanceRow::as_stored(&service, Some(&health));
        let own = crate::store::Effective::default().of(&service, row.own_status());
        serde_json::to_value(InstanceView::of(&row, own, Utc::now())).unwrap()["healthStatus"]
            .clone()
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
