//! What one sweep did, as one value: the counters are declared once, below, and everything that
//! shows them is derived from that list: the summary line in the invocation's `Logs`, the fields of
//! the `health sweep finished` log line, the counters of the stored `(~sweep, last)` row
//! (`counters` / `from_counters`), their schema in the OpenAPI document, and the serialised form
//! tests read back by name. Adding a counter is one line here and a `+= 1` where it is counted.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Declares `SweepReport` from a list of counters, each with its doc comment, in the order the
/// summary shows them, and the one function that logs them. (A macro because the log line's fields
/// must be spelled out at compile time: `tracing` takes no runtime list of names.)
macro_rules! sweep_report {
    ($( $(#[doc = $doc:literal])+ $name:ident ),+ $(,)?) => {
        /// The counters of one sweep that ran to its end, named as in its summary line.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct SweepReport {
            $( $(#[doc = $doc])+ pub $name: u64, )+
        }

        impl SweepReport {
            /// Every counter's name, in summary order.
            pub const COUNTERS: &'static [&'static str] = &[$(stringify!($name)),+];

            /// Every counter with its name, in summary order: the metrics' labels.
            pub fn named_counters(&self) -> [(&'static str, u64); Self::COUNTERS.len()] {
                [$( (stringify!($name), self.$name) ),+]
            }

            /// The `health sweep finished` log line, with every counter as a field.
            pub fn log_finished(&self, tick: &str) {
                tracing::info!(
                    function = "HealthMonitor",
                    $( $name = self.$name, )+
                    tick,
                    "health sweep finished"
                );
            }
        }
    };
}

sweep_report! {
    /// Services probed in this sweep.
    probed,
    /// Of those, recorded healthy.
    healthy,
    /// Of those, recorded degraded (a warning: HTTP 429, 503 with `Retry-After`, a certificate
    /// close to its expiry).
    degraded,
    /// Of those, recorded unhealthy (refused ones included).
    unhealthy,
    /// From the sweep's start to its last write.
    duration_ms,
    /// Storage write requests made (entity-group transactions of up to 100 rows).
    write_requests,
    /// Unhealthy because the SSRF guard refused the address (never contacted).
    refused,
    /// Not probed: their circuit is open and its backoff has not elapsed.
    skipped,
    /// Not probed: the sweep's start deadline passed first (they lead the queue next time: the
    /// queue is ordered by when each service was last checked).
    skipped_deadline,
    /// Registry rows written by other clients with keys this handler cannot address safely.
    invalid_rows,
    /// Health rows deleted because their registration no longer exists.
    deleted_orphans,
    /// Registrations deleted because their TTL lapsed more than the grace period ago.
    deleted_expired,
    /// Live registrations (TTL not lapsed) whose effective status after this sweep is healthy:
    /// their own verdict combined with their declared dependencies' health.
    effective_healthy,
    /// Of those, degraded (own warning, a soft dependency down, a required one partly down).
    effective_degraded,
    /// Of those, unhealthy (own verdict, or a required dependency with no healthy instance).
    effective_unhealthy,
    /// Of those, never checked.
    effective_unknown,
    /// Health-change transitions this sweep recorded (status changes, first verdicts, removals).
    transitions,
    /// Events every configured destination accepted (this sweep's and the outbox's).
    events_published,
    /// Event deliveries that failed, retries included.
    events_publish_failures,
    /// Events left in the outbox for the next sweep.
    events_pending,
    /// Events dropped because the outbox was full, oldest first.
    events_dropped,
}

/// What starts the summary line; tests and log searches look for it.
pub const SUMMARY_PREFIX: &str = "HealthMonitor sweep: ";

impl SweepReport {
    /// The one-line summary for the invocation's Logs: `HealthMonitor sweep: probed 3, healthy 2, …`,
    /// every counter in declaration order.
    pub fn summary(&self) -> String {
        let fields = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => unreachable!("a struct of integers serialises to an object"),
        };
        let pairs: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect();
        format!("{SUMMARY_PREFIX}{}", pairs.join(", "))
    }

    /// Every counter by name, in summary order: what the `(~sweep, last)` row stores.
    pub fn counters(&self) -> Vec<(String, u64)> {
        self.named_counters()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// The report from its counters by name (the inverse of `counters`). A row an older version
    /// wrote lacks the counters added since: they read as 0, so an upgrade still shows the last
    /// sweep. `None` when not even `probed` is there (not a sweep's counters at all).
    pub fn from_counters(counters: &[(String, u64)]) -> Option<Self> {
        if !counters.iter().any(|(name, _)| name == "probed") {
            return None;
        }
        let mut fields = match serde_json::to_value(SweepReport::default()) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => return None,
        };
        for (name, n) in counters {
            fields.insert(name.clone(), (*n).into());
        }
        serde_json::from_value(serde_json::Value::Object(fields)).ok()
    }

    /// Reads a summary line back (the inverse of `summary`), wherever it sits in `line`.
    pub fn from_summary(line: &str) -> Option<Self> {
        let (_, rest) = line.split_once(SUMMARY_PREFIX)?;
        let fields: serde_json::Map<String, serde_json::Value> = rest
            .split(", ")
            .map(|pair| {
                let (name, value) = pair.trim().split_once(' ')?;
                Some((name.to_owned(), value.parse::<u64>().ok()?.into()))
            })
            .collect::<Option<_>>()?;
        serde_json::from_value(serde_json::Value::Object(fields)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_every_counter_in_order_and_reads_back() {
        let report = SweepReport {
            probed: 3,
            healthy: 1,
            degraded: 0,
            unhealthy: 2,
            duration_ms: 2051,
            write_requests: 1,
            refused: 1,
            skipped: 4,
            skipped_deadline: 0,
            invalid_rows: 0,
            deleted_orphans: 5,
            deleted_expired: 6,
            effective_healthy: 7,
            effective_degraded: 1,
            effective_unhealthy: 2,
            effective_unknown: 0,
            transitions: 2,
            events_published: 1,
            events_publish_failures: 3,
            events_pending: 1,
            events_dropped: 0,
        };
        let line = report.summary();
        assert_eq!(
            line,
            "HealthMonitor sweep: probed 3, healthy 1, degraded 0, unhealthy 2, duration_ms 2051, write_requests 1, refused 1, skipped 4, skipped_deadline 0, invalid_rows 0, deleted_orphans 5, deleted_expired 6, effective_healthy 7, effective_degraded 1, effective_unhealthy 2, effective_unknown 0, transitions 2, events_published 1, events_publish_failures 3, events_pending 1, events_dropped 0"
        );
        assert_eq!(SweepReport::from_summary(&line), Some(report));
        assert_eq!(
            SweepReport::from_summary("HealthMonitor sweep: probed 3"),
            None
        );
        assert_eq!(SweepReport::from_summary("nothing here"), None);
    }

    #[test]
    fn the_counter_names_are_the_serialised_fields_in_order() {
        let value = serde_json::to_value(SweepReport::default()).unwrap();
        let names: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, SweepReport::COUNTERS);
        let report = SweepReport {
            probed: 2,
            deleted_expired: 7,
            ..SweepReport::default()
        };
        let counters = report.counters();
        assert_eq!(counters.len(), SweepReport::COUNTERS.len());
        assert_eq!(SweepReport::from_counters(&counters), Some(report));
        assert_eq!(SweepReport::from_counters(&counters[1..]), None);
    }

    #[test]
    fn a_row_an_older_version_wrote_reads_with_the_newer_counters_as_zero() {
        let report = SweepReport {
            probed: 4,
            healthy: 3,
            effective_healthy: 3,
            transitions: 1,
            ..SweepReport::default()
        };
        let older: Vec<(String, u64)> = report
            .counters()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("effective_") && name != "transitions")
            .collect();
        assert_eq!(
            SweepReport::from_counters(&older),
            Some(SweepReport {
                probed: 4,
                healthy: 3,
                ..SweepReport::default()
            })
        );
    }
}
