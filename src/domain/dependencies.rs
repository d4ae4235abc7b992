//! Effective health: an instance's own verdict combined with the health of the services it declares
//! it depends on (`dependsOn`), so that a service whose database is down shows why it cannot work.
//!
//! Computed at read time from stored rows only (every registration with its own verdict), so it is
//! the same on every replica and costs no write. The rules:
//!
//! - own `unhealthy` → `unhealthy`; own `unknown` (never checked) → `unknown`; neither has a
//!   `blockedBy`;
//! - a **required** dependency that is `unhealthy` for its dependents (none of its live instances
//!   healthy or degraded) → `unhealthy`, `blockedBy` = that dependency, then its own `blockedBy`
//!   (nearest first, so a cascade names the whole chain);
//! - a required dependency that is degraded for its dependents (some but not all of its instances
//!   healthy, or one of them degraded), or a **soft** (`required: false`) dependency that is
//!   unhealthy → `degraded`, `blockedBy` the same way;
//! - own `degraded` → `degraded`; of several causes the worst wins, then the first declared; when the
//!   own verdict is as bad as the worst dependency, `blockedBy` is empty (it is the instance itself);
//! - a dependency not registered, or not yet checked, is reported as `unknown` and changes nothing;
//! - dependencies that form a cycle are found (strongly connected components of the service graph,
//!   linear time, never a loop) and reported with the `cycle` path; an instance on a cycle is judged
//!   on its own verdict and the dependencies off the cycle.
//!
//! A service's health *for its dependents* comes from its live instances' effective statuses, and
//! components are judged dependencies first, so a cascade goes through any number of levels in one
//! pass. A `blockedBy` chain is cut after `MAX_CHAIN` keys.

mod declared;
mod graph;
#[cfg(test)]
mod tests;

pub use declared::{from_stored, parse_depends_on, stored_text, Dependency, MAX_DEPENDENCIES};

use super::HealthState;
use std::collections::HashMap;

/// The longest `blockedBy` chain reported.
pub const MAX_CHAIN: usize = 32;

/// An instance's health, own or effective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveStatus {
    Healthy,
    Degraded,
    Unhealthy,
    /// Never checked (own), or nothing known (a dependency).
    Unknown,
}

impl EffectiveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectiveStatus::Healthy => "healthy",
            EffectiveStatus::Degraded => "degraded",
            EffectiveStatus::Unhealthy => "unhealthy",
            EffectiveStatus::Unknown => "unknown",
        }
    }

    /// The status `healthyOnly` and the resolver's eligibility judge by when they use the effective
    /// status: healthy and degraded are admitted (as healthy), unhealthy never, unknown as never
    /// checked.
    pub fn admitted_as(self) -> Option<HealthState> {
        match self {
            EffectiveStatus::Healthy | EffectiveStatus::Degraded => Some(HealthState::Healthy),
            EffectiveStatus::Unhealthy => Some(HealthState::Unhealthy),
            EffectiveStatus::Unknown => None,
        }
    }

    /// How bad, for the worst-wins rule (`Unknown` never competes).
    fn rank(self) -> u8 {
        match self {
            EffectiveStatus::Healthy | EffectiveStatus::Unknown => 0,
            EffectiveStatus::Degraded => 1,
            EffectiveStatus::Unhealthy => 2,
        }
    }
}

/// What the evaluation needs to know about one registration row.
#[derive(Debug, Clone)]
pub struct InstanceFacts<'a> {
    /// Its service's key, `serviceType:serviceName`.
    pub service: &'a str,
    pub own: EffectiveStatus,
    pub depends_on: &'a [Dependency],
    /// Counts for its service's dependents: not expired.
    pub live: bool,
}

/// One instance's effective status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub status: EffectiveStatus,
    /// The keys that caused a degraded or unhealthy status, nearest first; empty otherwise.
    pub blocked_by: Vec<String>,
    /// One entry per declared dependency, in declared order.
    pub dependencies: Vec<DependencyState>,
}

/// A declared dependency as the evaluation found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyState {
    pub service: String,
    pub required: bool,
    /// Its effective health for its dependents; `Unknown` when not registered or never checked.
    pub status: EffectiveStatus,
    /// Why, when the status alone does not say it: `not registered`, `not checked yet`, `no live
    /// instance`, `some instances unhealthy`.
    pub note: Option<&'static str>,
    /// The cycle this dependency closes, from the dependent back to it; empty when none.
    pub cycle: Vec<String>,
}

/// A service's health for its dependents.
#[derive(Debug, Clone)]
struct ServiceHealth {
    status: EffectiveStatus,
    note: Option<&'static str>,
    chain: Vec<String>,
}

/// Judges every instance (the result is in `instances`' order). `instances` should be the whole
/// registry: a dependency missing from it reads as not registered.
pub fn evaluate(instances: &[InstanceFacts<'_>]) -> Vec<Judgement> {
    // Services, numbered in order of first appearance, and their instances.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    for (at, instance) in instances.iter().enumerate() {
        let id = *ids.entry(instance.service).or_insert_with(|| {
            members.push(Vec::new());
            keys.push(instance.service);
            members.len() - 1
        });
        members[id].push(at);
    }
    // Service → the registered services any of its instances depends on.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    for instance in instances {
        let from = ids[instance.service];
        for dependency in instance.depends_on {
            if let Some(&to) = ids.get(dependency.service.as_str()) {
                if !edges[from].contains(&to) {
                    edges[from].push(to);
                }
            }
        }
    }
    let components = graph::components(&edges);
    let mut component_of = vec![0; members.len()];
    for (c, component) in components.iter().enumerate() {
        for &service in component {
            component_of[service] = c;
        }
    }

    let mut health: Vec<Option<ServiceHealth>> = vec![None; members.len()];
    let mut judged: Vec<Option<Judgement>> = vec![None; instances.len()];
    for (c, component) in components.iter().enumerate() {
        for &service in component {
            for &at in &members[service] {
                let instance = &instances[at];
                let mut states = Vec::with_capacity(instance.depends_on.len());
                for dependency in instance.depends_on {
                    let target = ids.get(dependency.service.as_str()).copied();
                    let on_cycle = target.filter(|&t| component_of[t] == c);
                    let cycle = on_cycle
                        .and_then(|t| graph::path(&edges, t, service, |n| component_of[n] == c))
                        .map(|path| {
                            std::iter::once(service)
                                .chain(path)
                                .map(|n| keys[n].to_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    // Judged before this component, unless on its cycle (filled in below).
                    let found = target.and_then(|t| health[t].clone());
                    let (status, note) = match (&found, target) {
                        (_, None) => (EffectiveStatus::Unknown, Some("not registered")),
                        (Some(h), _) => (h.status, h.note),
                        (None, Some(_)) => (EffectiveStatus::Unknown, None),
                    };
                    states.push((
                        DependencyState {
                            service: dependency.service.clone(),
                            required: dependency.required,
                            status,
                            note,
                            cycle,
                        },
                        found.map(|h| h.chain).unwrap_or_default(),
                    ));
                }
                judged[at] = Some(judge(instance, states));
            }
            health[service] = Some(service_health(&members[service], instances, &judged));
        }
        // Dependencies on this component's cycle are reported with the health found for them.
        for &service in component {
            for &at in &members[service] {
                let Some(judgement) = judged[at].as_mut() else {
                    continue;
                };
                for state in &mut judgement.dependencies {
                    if state.cycle.is_empty() {
                        continue;
                    }
                    if let Some(h) = ids
                        .get(state.service.as_str())
                        .and_then(|&t| health[t].as_ref())
                    {
                        state.status = h.status;
                        state.note = h.note;
                    }
                }
            }
        }
    }
    judged
        .into_iter()
        .map(|j| j.expect("every instance belongs to a component"))
        .collect()
}

/// One instance, from its own verdict and its dependencies' states (each with its chain).
fn judge(instance: &InstanceFacts<'_>, states: Vec<(DependencyState, Vec<String>)>) -> Judgement {
    let mut worst: Option<(EffectiveStatus, Vec<String>)> = None;
    for (state, chain) in &states {
        if !state.cycle.is_empty() {
            continue;
        }
        let caused = match (state.required, state.status) {
            (true, EffectiveStatus::Unhealthy) => EffectiveStatus::Unhealthy,
            (true, EffectiveStatus::Degraded) | (false, EffectiveStatus::Unhealthy) => {
                EffectiveStatus::Degraded
            }
            _ => continue,
        };
        if worst.as_ref().is_none_or(|(w, _)| caused.rank() > w.rank()) {
            let blocked_by = std::iter::once(state.service.clone())
                .chain(chain.iter().cloned())
                .take(MAX_CHAIN)
                .collect();
            worst = Some((caused, blocked_by));
        }
    }
    let dependencies = states.into_iter().map(|(state, _)| state).collect();
    let (status, blocked_by) = match (instance.own, worst) {
        (EffectiveStatus::Unhealthy | EffectiveStatus::Unknown, _) | (_, None) => {
            (instance.own, Vec::new())
        }
        (own, Some((caused, chain))) if caused.rank() > own.rank() => (caused, chain),
        (own, Some(_)) => (own, Vec::new()),
    };
    Judgement {
        status,
        blocked_by,
        dependencies,
    }
}

/// A service's health for its dependents, from its live instances' judgements.
fn service_health(
    members: &[usize],
    instances: &[InstanceFacts<'_>],
    judged: &[Option<Judgement>],
) -> ServiceHealth {
    let live: Vec<&Judgement> = members
        .iter()
        .filter(|&&at| instances[at].live)
        .filter_map(|&at| judged[at].as_ref())
        .collect();
    let first_chain = |status: EffectiveStatus| {
        live.iter()
            .find(|j| j.status == status && !j.blocked_by.is_empty())
            .map(|j| j.blocked_by.clone())
            .unwrap_or_default()
    };
    let count = |status: EffectiveStatus| live.iter().filter(|j| j.status == status).count();
    let (healthy, degraded, unhealthy) = (
        count(EffectiveStatus::Healthy),
        count(EffectiveStatus::Degraded),
        count(EffectiveStatus::Unhealthy),
    );
    let of = |status, note, chain| ServiceHealth {
        status,
        note,
        chain,
    };
    if live.is_empty() {
        of(
            EffectiveStatus::Unhealthy,
            Some("no live instance"),
            Vec::new(),
        )
    } else if healthy + degraded == 0 && unhealthy == 0 {
        of(
            EffectiveStatus::Unknown,
            Some("not checked yet"),
            Vec::new(),
        )
    } else if healthy + degraded == 0 {
        of(
            EffectiveStatus::Unhealthy,
            None,
            first_chain(EffectiveStatus::Unhealthy),
        )
    } else if unhealthy > 0 {
        of(
            EffectiveStatus::Degraded,
            Some("some instances unhealthy"),
            first_chain(EffectiveStatus::Unhealthy),
        )
    } else if degraded > 0 {
        of(
            EffectiveStatus::Degraded,
            None,
            first_chain(EffectiveStatus::Degraded),
        )
    } else {
        of(EffectiveStatus::Healthy, None, Vec::new())
    }
}
