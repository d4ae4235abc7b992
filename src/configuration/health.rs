//! The health monitor's settings: the probes (timeout, concurrency, jitter), what they may reach,
//! the circuit breaker's policy, the sweep's deadline, grace and lease, and the standalone timer's
//! schedule.

use super::environment::Environment;
use super::plan::PROBE_CONCURRENCY_VAR;
use super::{fanout, schedule, ConfigError, FanoutSettings, HostMode, HostingPlan};
use crate::domain::{CircuitPolicy, MAX_CHECK_TIMEOUT};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// `HEALTH_HOSTING_PLAN`: what the probe concurrency defaults to.
    pub plan: HostingPlan,
    pub probe: ProbeSettings,
    pub probe_guard: ProbeGuardSettings,
    /// `HEALTH_PROBE_CA_FILE`: root certificates (DER) https:// and grpcs:// probes trust besides
    /// the public roots, for services behind a private CA.
    pub probe_roots: Vec<Vec<u8>>,
    pub circuit: CircuitPolicy,
    pub sweep: SweepSettings,
    /// Standalone mode only: the timer's six-field NCRONTAB text (from `HEALTH_MONITOR_SCHEDULE`,
    /// else `HealthMonitor/function.json`), `%NAME%` already resolved. `None`: the host owns the timer.
    pub schedule: Option<String>,
    /// Where the sweep's transitions are published (`HEALTH_EVENTS_*`).
    pub events: super::EventSettings,
    /// `SWEEP_QUEUE` and its companions: the sweep fanned out over a queue; `None`: in process.
    pub fanout: Option<FanoutSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Per probe, unless the registration's `healthCheck.timeoutMs` says otherwise.
    pub timeout: Duration,
    /// Probes in flight at once: `HEALTH_PROBE_CONCURRENCY`, else the plan's default.
    pub concurrency: usize,
    /// Upper bound of each probe's random start delay, so a fleet is not hit in one burst.
    pub jitter: Duration,
}

/// What the probes may reach (the SSRF guard's configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeGuardSettings {
    pub allow_loopback: bool,
    pub allow: Vec<ipnet::IpNet>,
    pub deny: Vec<ipnet::IpNet>,
    /// The managed-identity endpoint's host (lower case) and port, from `IDENTITY_ENDPOINT`.
    pub identity_endpoint: Option<(String, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepSettings {
    /// No probe starts later than this into a sweep (`HEALTH_SWEEP_DEADLINE_MS` less one probe
    /// timeout), so the sweep ends inside the Functions timeout.
    pub start_deadline: Duration,
    /// How long an expired instance is kept before the sweep deletes it
    /// (`DEREGISTER_EXPIRED_AFTER_SECONDS`).
    pub expired_grace: Duration,
    /// How long a standalone replica's sweep lease lasts if its holder dies mid-sweep: about the
    /// longest a sweep can run.
    pub lease_ttl: Duration,
}

pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    plan: HostingPlan,
    mode: &HostMode,
    storage_timeout: Duration,
) -> Result<HealthSettings, ConfigError> {
    let probe = ProbeSettings {
        timeout: env.millis("HEALTH_PROBE_TIMEOUT_MS", 5_000)?,
        // A sweep cannot beat silent targets x timeout / concurrency, so the concurrency is as high
        // as the plan's outbound-connection cap allows with room for storage (`plan`).
        concurrency: env.count(PROBE_CONCURRENCY_VAR, plan.default_probe_concurrency())? as usize,
        jitter: env.millis_or_zero("HEALTH_PROBE_JITTER_MS", 100)?,
    };
    let probe_guard = ProbeGuardSettings {
        allow_loopback: env.flag("HEALTH_ALLOW_LOOPBACK", false)?,
        allow: env.cidrs("HEALTH_ALLOW_CIDRS")?,
        deny: env.cidrs("HEALTH_DENY_CIDRS")?,
        identity_endpoint: env
            .text("IDENTITY_ENDPOINT")
            .and_then(|text| url::Url::parse(&text).ok())
            .and_then(|url| {
                Some((
                    url.host_str()?.to_ascii_lowercase(),
                    url.port_or_known_default()?,
                ))
            }),
    };
    let probe_roots = match env.text("HEALTH_PROBE_CA_FILE") {
        None => Vec::new(),
        Some(path) => read_roots(&path).map_err(|reason| ConfigError::Invalid {
            variable: "HEALTH_PROBE_CA_FILE".to_owned(),
            reason,
        })?,
    };
    let defaults = CircuitPolicy::default();
    let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let circuit = CircuitPolicy {
        failures_to_open: env.count("HEALTH_FAILURES_TO_UNHEALTHY", defaults.failures_to_open)?,
        successes_to_close: env
            .count("HEALTH_SUCCESSES_TO_HEALTHY", defaults.successes_to_close)?,
        base_backoff: to_chrono(env.millis("HEALTH_CIRCUIT_BACKOFF_MS", 300_000)?),
        max_backoff: to_chrono(env.millis("HEALTH_CIRCUIT_MAX_BACKOFF_MS", 3_600_000)?),
    };
    // The sweep must end within the Functions timeout (5 minutes on Consumption): by default it
    // stops starting probes at 4 minutes less one probe timeout, which leaves a minute to write.
    let start_deadline = env
        .millis("HEALTH_SWEEP_DEADLINE_MS", 240_000)?
        .saturating_sub(probe.timeout);
    let sweep = SweepSettings {
        start_deadline,
        expired_grace: env.seconds_or_zero("DEREGISTER_EXPIRED_AFTER_SECONDS", 600)?,
        // The longest a sweep can run: its start deadline, one probe at the longest timeout any
        // registration may ask for, and the writes.
        lease_ttl: start_deadline + MAX_CHECK_TIMEOUT + storage_timeout * 2,
    };
    let events = super::events::settings(env)?;
    let mut sweep = sweep;
    if events.publishes() {
        // Publishing runs after the writes, within its own bound: the lease covers it too.
        sweep.lease_ttl += events.publish_timeout;
    }
    let schedule = match mode {
        HostMode::CustomHandler { .. } => None,
        HostMode::Standalone { .. } => Some(schedule::text(env)?),
    };
    Ok(HealthSettings {
        plan,
        probe_roots,
        probe,
        probe_guard,
        circuit,
        sweep,
        schedule,
        events,
        fanout: fanout::settings(env, mode)?,
    })
}

/// The certificates of a PEM file, as DER; an unreadable file or one without any is an error.
fn read_roots(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the file it names: {e}"))?;
    let roots: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the file it names is not PEM: {e}"))?;
    if roots.is_empty() {
        return Err("the file it names holds no CERTIFICATE block".to_owned());
    }
    Ok(roots)
}
