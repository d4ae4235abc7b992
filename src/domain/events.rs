//! Health-change events, the pure half: which changes of an instance's recorded state are
//! *transitions* worth telling someone about, and the stable id each one carries.
//!
//! The sweep compares the status it last stored for an instance with the verdict it is about to
//! write; the registry's other changes (a first verdict, an expiry removal, a deregistration) are
//! transitions too. An unchanged status is never a transition, so a sweep that changes nothing
//! publishes nothing. The circuit breaker opens exactly when a status turns unhealthy and closes
//! exactly when it turns healthy again (`circuit`), so circuit changes are the status changes, with
//! the circuit's new state carried along; half-open trials, which keep the status, are not events.
//!
//! The id is a hash of what the transition is (kind, subject, from, to) and when the sweep that
//! recorded it started: the same transition detected again (a retried publish, an event kept for
//! the next sweep) keeps its id, so a consumer drops duplicates by id.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

/// What happened to an instance; each kind is one CloudEvents `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// Its recorded status changed (healthy, degraded, unhealthy).
    HealthChanged,
    /// The sweep recorded its first verdict: the registry learnt how a new registration is.
    Registered,
    /// Its registration was deleted by its owner.
    Deregistered,
    /// The sweep removed it: its TTL lapsed beyond the grace period (or a Consul registration's
    /// check stayed critical longer than it allowed).
    Expired,
}

impl TransitionKind {
    /// The CloudEvents `type`.
    pub fn event_type(self) -> &'static str {
        match self {
            TransitionKind::HealthChanged => "registry.health.changed",
            TransitionKind::Registered => "registry.instance.registered",
            TransitionKind::Deregistered => "registry.instance.deregistered",
            TransitionKind::Expired => "registry.instance.expired",
        }
    }

    pub fn from_event_type(text: &str) -> Option<Self> {
        [
            TransitionKind::HealthChanged,
            TransitionKind::Registered,
            TransitionKind::Deregistered,
            TransitionKind::Expired,
        ]
        .into_iter()
        .find(|kind| kind.event_type() == text)
    }
}

/// The `from` of a registration and the `to` of a removal: the instance was not in the registry.
pub const ABSENT: &str = "absent";
/// The `from` of a removal whose last status was never read (a deregistration deletes the health
/// row without reading it) or never recorded.
pub const UNKNOWN: &str = "unknown";

/// One transition of one instance, as the sweep (or a deregistration) detected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    pub service_type: String,
    pub service_name: String,
    /// `None` for a recipe-style row (one per service name).
    pub instance_id: Option<String>,
    /// The status before and after: `healthy`, `degraded`, `unhealthy`, `unknown` or `absent`.
    pub from: String,
    pub to: String,
    /// The effective statuses (own verdict and dependencies) before and after, where known; the
    /// own statuses where no dependency is declared (`health::effective` connects them).
    pub effective_from: String,
    pub effective_to: String,
    /// Why: the probe's failure reason, `check passed`, `deregistered`, `TTL lapsed`.
    pub reason: String,
    /// The circuit breaker's state after the transition, when the sweep recorded one.
    pub circuit: Option<String>,
    /// When it happened: the start of the sweep that recorded it (every transition of one sweep is
    /// dated there), or the moment of a deregistration.
    pub time: DateTime<Utc>,
}

/// Where a transition happened: one registration's keys.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub service_type: &'a str,
    pub service_name: &'a str,
    pub instance_id: Option<&'a str>,
}

/// What the sweep is about to record for an instance, beside what it had recorded.
#[derive(Debug, Clone, Copy)]
pub struct Verdicts<'a> {
    /// The stored status, `None` when the instance was never checked (a new registration).
    pub previous: Option<&'a str>,
    /// The status about to be written.
    pub next: &'a str,
    /// The circuit's state about to be written.
    pub circuit: Option<&'a str>,
    /// The probe's failure reason; empty when it passed.
    pub reason: &'a str,
}

/// The transition the sweep records for one instance, if any: a first verdict is a registration,
/// a changed status a health change, an unchanged one nothing.
pub fn health_transition(
    subject: Subject<'_>,
    verdicts: Verdicts<'_>,
    sweep_time: DateTime<Utc>,
) -> Option<Transition> {
    let (kind, from) = match verdicts.previous {
        None => (TransitionKind::Registered, ABSENT),
        Some(previous) if previous == verdicts.next => return None,
        Some(previous) => (TransitionKind::HealthChanged, previous),
    };
    let reason = if verdicts.reason.is_empty() {
        "check passed"
    } else {
        verdicts.reason
    };
    let mut transition = Transition::new(kind, subject, from, verdicts.next, reason, sweep_time);
    transition.circuit = verdicts.circuit.map(str::to_owned);
    Some(transition)
}

/// An instance whose own status held while its effective status moved (a dependency failed or
/// recovered): a health change with `from` = `to` = the own status, the effective statuses
/// around it, and the blocking chain as its reason. `None` when the effective status held too.
pub fn effective_transition(
    subject: Subject<'_>,
    own: &str,
    effective: (&str, &str),
    blocked_by: &[String],
    sweep_time: DateTime<Utc>,
) -> Option<Transition> {
    let (from, to) = effective;
    if from == to {
        return None;
    }
    let reason = if blocked_by.is_empty() {
        "dependencies recovered".to_owned()
    } else {
        format!("blocked by {}", blocked_by.join(", "))
    };
    let mut transition = Transition::new(
        TransitionKind::HealthChanged,
        subject,
        own,
        own,
        &reason,
        sweep_time,
    );
    transition.effective_from = from.to_owned();
    transition.effective_to = to.to_owned();
    Some(transition)
}

/// A removal: `Deregistered` by its owner, or `Expired` by the sweep. `last_status` is the status
/// last recorded, when it was read.
pub fn removal(
    kind: TransitionKind,
    subject: Subject<'_>,
    last_status: Option<&str>,
    reason: &str,
    time: DateTime<Utc>,
) -> Transition {
    let from = last_status.unwrap_or(UNKNOWN);
    Transition::new(kind, subject, from, ABSENT, reason, time)
}

impl Transition {
    fn new(
        kind: TransitionKind,
        subject: Subject<'_>,
        from: &str,
        to: &str,
        reason: &str,
        time: DateTime<Utc>,
    ) -> Self {
        Transition {
            kind,
            service_type: subject.service_type.to_owned(),
            service_name: subject.service_name.to_owned(),
            instance_id: subject.instance_id.map(str::to_owned),
            from: from.to_owned(),
            to: to.to_owned(),
            effective_from: from.to_owned(),
            effective_to: to.to_owned(),
            reason: reason.to_owned(),
            circuit: None,
            time,
        }
    }

    /// `serviceType:serviceName`, or `serviceType:serviceName/instanceId`.
    pub fn subject(&self) -> String {
        match &self.instance_id {
            None => format!("{}:{}", self.service_type, self.service_name),
            Some(instance) => format!("{}:{}/{instance}", self.service_type, self.service_name),
        }
    }

    /// The time as every time in the tables: ISO-8601 UTC with milliseconds.
    pub fn time_text(&self) -> String {
        self.time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Stable for one transition: 32 hex digits of SHA-256 over kind, subject, from, to and time
    /// (and, for a change of the effective status alone, the effective statuses). The same
    /// transition detected again gets the same id; any other gets another.
    pub fn id(&self) -> String {
        let mut hash = Sha256::new();
        let effective_only = self.from == self.to;
        let effective = [self.effective_from.as_str(), self.effective_to.as_str()];
        let parts = [
            self.kind.event_type(),
            &self.subject(),
            &self.from,
            &self.to,
            &self.time_text(),
        ];
        let extra: &[&str] = if effective_only { &effective } else { &[] };
        for part in parts.iter().copied().chain(extra.iter().copied()) {
            // Length-prefixed, so no two different tuples hash the same text.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minutes: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, minutes, 0).unwrap()
    }

    const POD: Subject<'static> = Subject {
        service_type: "api",
        service_name: "orders",
        instance_id: Some("pod-1"),
    };

    fn verdicts<'a>(previous: Option<&'a str>, next: &'a str, reason: &'a str) -> Verdicts<'a> {
        Verdicts {
            previous,
            next,
            circuit: Some(if next == "unhealthy" {
                "open"
            } else {
                "closed"
            }),
            reason,
        }
    }

    #[test]
    fn an_unchanged_status_is_no_transition() {
        for status in ["healthy", "unhealthy", "degraded"] {
            let same = verdicts(Some(status), status, "HTTP 503");
            assert_eq!(health_transition(POD, same, t(5)), None, "{status}");
        }
    }

    #[test]
    fn a_changed_status_is_a_health_change_with_the_circuit_and_the_reason() {
        let down = health_transition(
            POD,
            verdicts(Some("healthy"), "unhealthy", "HTTP 503"),
            t(5),
        )
        .unwrap();
        assert_eq!(down.kind, TransitionKind::HealthChanged);
        assert_eq!(
            (down.from.as_str(), down.to.as_str()),
            ("healthy", "unhealthy")
        );
        assert_eq!(
            (down.effective_from.as_str(), down.effective_to.as_str()),
            ("healthy", "unhealthy")
        );
        assert_eq!(down.reason, "HTTP 503");
        assert_eq!(down.circuit.as_deref(), Some("open"));
        assert_eq!(down.subject(), "api:orders/pod-1");
        assert_eq!(down.time_text(), "2026-11-25T09:05:00.000Z");
        let up = health_transition(POD, verdicts(Some("unhealthy"), "healthy", ""), t(10)).unwrap();
        assert_eq!(
            (up.reason.as_str(), up.circuit.as_deref()),
            ("check passed", Some("closed"))
        );
        let warn = health_transition(
            POD,
            verdicts(Some("healthy"), "degraded", "HTTP 429"),
            t(10),
        );
        assert_eq!(warn.unwrap().kind, TransitionKind::HealthChanged);
    }

    #[test]
    fn a_first_verdict_is_a_registration_from_absent() {
        let first = health_transition(POD, verdicts(None, "healthy", ""), t(0)).unwrap();
        assert_eq!(first.kind, TransitionKind::Registered);
        assert_eq!(
            (first.from.as_str(), first.to.as_str()),
            (ABSENT, "healthy")
        );
        assert_eq!(first.kind.event_type(), "registry.instance.registered");
    }

    #[test]
    fn removals_go_to_absent() {
        let recipe = Subject {
            instance_id: None,
            ..POD
        };
        let gone = removal(
            TransitionKind::Deregistered,
            recipe,
            None,
            "deregistered",
            t(1),
        );
        assert_eq!((gone.from.as_str(), gone.to.as_str()), (UNKNOWN, ABSENT));
        assert_eq!(gone.subject(), "api:orders");
        let lapsed = removal(
            TransitionKind::Expired,
            POD,
            Some("healthy"),
            "TTL lapsed",
            t(1),
        );
        assert_eq!(
            (lapsed.from.as_str(), lapsed.kind.event_type()),
            ("healthy", "registry.instance.expired")
        );
    }

    #[test]
    fn the_id_is_stable_for_one_transition_and_differs_for_any_other() {
        let once = health_transition(
            POD,
            verdicts(Some("healthy"), "unhealthy", "HTTP 503"),
            t(5),
        )
        .unwrap();
        // Detected again (another reason text, the same change at the same sweep): the same id.
        let again = health_transition(POD, verdicts(Some("healthy"), "unhealthy", "timeout"), t(5))
            .unwrap();
        assert_eq!(once.id(), again.id());
        assert_eq!(once.id().len(), 32);
        assert!(once.id().chars().all(|c| c.is_ascii_hexdigit()));
        let later = health_transition(
            POD,
            verdicts(Some("healthy"), "unhealthy", "HTTP 503"),
            t(10),
        )
        .unwrap();
        let back =
            health_transition(POD, verdicts(Some("unhealthy"), "healthy", ""), t(5)).unwrap();
        let other = Subject {
            instance_id: Some("pod-2"),
            ..POD
        };
        let elsewhere =
            health_transition(other, verdicts(Some("healthy"), "unhealthy", ""), t(5)).unwrap();
        let ids = [once.id(), later.id(), back.id(), elsewhere.id()];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn every_kind_has_its_type_and_reads_back() {
        for kind in [
            TransitionKind::HealthChanged,
            TransitionKind::Registered,
            TransitionKind::Deregistered,
            TransitionKind::Expired,
        ] {
            assert_eq!(
                TransitionKind::from_event_type(kind.event_type()),
                Some(kind)
            );
        }
        assert_eq!(TransitionKind::from_event_type("registry.other"), None);
    }
}
