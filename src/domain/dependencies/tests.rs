//! The effective-status rules, each on a small registry written out in full.

use super::*;
use EffectiveStatus::{Degraded, Healthy, Unhealthy, Unknown};

fn dep(service: &str) -> Dependency {
    Dependency {
        service: service.into(),
        required: true,
    }
}

fn soft(service: &str) -> Dependency {
    Dependency {
        service: service.into(),
        required: false,
    }
}

fn row<'a>(
    service: &'a str,
    own: EffectiveStatus,
    depends_on: &'a [Dependency],
) -> InstanceFacts<'a> {
    InstanceFacts {
        service,
        own,
        depends_on,
        live: true,
    }
}

fn statuses(judged: &[Judgement]) -> Vec<(EffectiveStatus, Vec<String>)> {
    judged
        .iter()
        .map(|j| (j.status, j.blocked_by.clone()))
        .collect()
}

fn chain(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

#[test]
fn a_cascade_goes_through_three_levels_and_names_the_chain() {
    let (on_api, on_db) = ([dep("api:y")], [dep("db:x")]);
    // Listed dependents first, so the order of the rows does not matter.
    let rows = [
        row("web:z", Healthy, &on_api),
        row("api:y", Healthy, &on_db),
        row("db:x", Unhealthy, &[]),
    ];
    assert_eq!(
        statuses(&evaluate(&rows)),
        [
            (Unhealthy, chain(&["api:y", "db:x"])),
            (Unhealthy, chain(&["db:x"])),
            (Unhealthy, vec![]),
        ]
    );
    let recovered = [rows[0].clone(), rows[1].clone(), row("db:x", Healthy, &[])];
    assert!(evaluate(&recovered)
        .iter()
        .all(|j| j.status == Healthy && j.blocked_by.is_empty()));
}

#[test]
fn a_cycle_is_reported_and_judged_on_what_is_off_it() {
    let (a_deps, b_deps) = ([dep("svc:b"), dep("db:x")], [dep("svc:a")]);
    let rows = [
        row("svc:a", Healthy, &a_deps),
        row("svc:b", Healthy, &b_deps),
        row("db:x", Healthy, &[]),
    ];
    let judged = evaluate(&rows);
    assert_eq!(judged[0].status, Healthy);
    assert_eq!(
        judged[0].dependencies[0].cycle,
        chain(&["svc:a", "svc:b", "svc:a"])
    );
    assert_eq!(
        judged[0].dependencies[0].status, Healthy,
        "filled in after the cycle"
    );
    assert!(judged[0].dependencies[1].cycle.is_empty());
    assert_eq!(
        judged[1].dependencies[0].cycle,
        chain(&["svc:b", "svc:a", "svc:b"])
    );
    // Off the cycle still counts; on it never does.
    let down = [
        rows[0].clone(),
        rows[1].clone(),
        row("db:x", Unhealthy, &[]),
    ];
    let judged = evaluate(&down);
    assert_eq!(
        statuses(&judged),
        [
            (Unhealthy, chain(&["db:x"])),
            // b depends only on a, across the cycle: not judged by it.
            (Healthy, vec![]),
            (Unhealthy, vec![]),
        ]
    );
    let own_down = [
        row("svc:a", Unhealthy, &a_deps),
        rows[1].clone(),
        rows[2].clone(),
    ];
    assert_eq!(evaluate(&own_down)[1].status, Healthy);
}

#[test]
fn a_self_dependency_another_client_stored_is_a_cycle() {
    let deps = [dep("svc:a")];
    let judged = evaluate(&[row("svc:a", Healthy, &deps)]);
    assert_eq!(judged[0].status, Healthy);
    assert_eq!(judged[0].dependencies[0].cycle, chain(&["svc:a", "svc:a"]));
}

#[test]
fn a_soft_dependency_down_degrades_and_a_soft_one_degraded_does_not() {
    let deps = [soft("cache:r")];
    let judged = evaluate(&[row("api:y", Healthy, &deps), row("cache:r", Unhealthy, &[])]);
    assert_eq!(statuses(&judged)[0], (Degraded, chain(&["cache:r"])));
    let judged = evaluate(&[row("api:y", Healthy, &deps), row("cache:r", Degraded, &[])]);
    assert_eq!(statuses(&judged)[0], (Healthy, vec![]));
}

#[test]
fn a_partly_healthy_required_dependency_degrades() {
    let deps = [dep("db:x")];
    let rows = [
        row("api:y", Healthy, &deps),
        row("db:x", Healthy, &[]),
        row("db:x", Unhealthy, &[]),
    ];
    let judged = evaluate(&rows);
    assert_eq!(statuses(&judged)[0], (Degraded, chain(&["db:x"])));
    assert_eq!(
        judged[0].dependencies[0].note,
        Some("some instances unhealthy")
    );
    // A degraded required dependency degrades its dependents too, through levels.
    let on_api = [dep("api:y")];
    let rows = [
        row("web:z", Healthy, &on_api),
        row("api:y", Healthy, &deps),
        row("db:x", Degraded, &[]),
    ];
    assert_eq!(
        statuses(&evaluate(&rows))[0],
        (Degraded, chain(&["api:y", "db:x"]))
    );
}

#[test]
fn an_unregistered_or_unchecked_dependency_is_unknown_and_no_failure() {
    let deps = [dep("db:gone"), dep("db:new")];
    let judged = evaluate(&[row("api:y", Healthy, &deps), row("db:new", Unknown, &[])]);
    assert_eq!(statuses(&judged)[0], (Healthy, vec![]));
    let states = &judged[0].dependencies;
    assert_eq!(
        (states[0].status, states[0].note),
        (Unknown, Some("not registered"))
    );
    assert_eq!(
        (states[1].status, states[1].note),
        (Unknown, Some("not checked yet"))
    );
}

#[test]
fn the_own_verdict_comes_first() {
    let deps = [dep("db:x")];
    let down = row("db:x", Unhealthy, &[]);
    for (own, expected) in [
        (Unhealthy, (Unhealthy, vec![])),
        (Unknown, (Unknown, vec![])),
        (Degraded, (Unhealthy, chain(&["db:x"]))),
    ] {
        let judged = evaluate(&[row("api:y", own, &deps), down.clone()]);
        assert_eq!(statuses(&judged)[0], expected, "own {own:?}");
    }
    // Own degraded with nothing worse below: degraded, and no one else to blame.
    let judged = evaluate(&[row("api:y", Degraded, &deps), row("db:x", Degraded, &[])]);
    assert_eq!(statuses(&judged)[0], (Degraded, vec![]));
    let judged = evaluate(&[row("api:y", Degraded, &[])]);
    assert_eq!(statuses(&judged)[0], (Degraded, vec![]));
}

#[test]
fn the_worst_cause_wins_then_the_first_declared() {
    let deps = [soft("cache:r"), dep("db:a"), dep("db:b")];
    let rows = [
        row("api:y", Healthy, &deps),
        row("cache:r", Unhealthy, &[]),
        row("db:a", Unhealthy, &[]),
        row("db:b", Unhealthy, &[]),
    ];
    assert_eq!(statuses(&evaluate(&rows))[0], (Unhealthy, chain(&["db:a"])));
}

#[test]
fn expired_instances_do_not_count_for_dependents() {
    let deps = [dep("db:x")];
    let mut gone = row("db:x", Healthy, &[]);
    gone.live = false;
    let judged = evaluate(&[row("api:y", Healthy, &deps), gone]);
    assert_eq!(statuses(&judged)[0], (Unhealthy, chain(&["db:x"])));
    assert_eq!(judged[0].dependencies[0].note, Some("no live instance"));
}

#[test]
fn rows_without_dependencies_keep_their_own_verdict() {
    for own in [Healthy, Degraded, Unhealthy, Unknown] {
        let judged = evaluate(&[row("api:y", own, &[])]);
        assert_eq!(statuses(&judged), [(own, vec![])]);
        assert!(judged[0].dependencies.is_empty());
    }
}

#[test]
fn a_long_chain_is_judged_in_one_pass_and_its_report_is_cut() {
    let keys: Vec<String> = (0..1000).map(|i| format!("svc:s{i}")).collect();
    let deps: Vec<[Dependency; 1]> = (0..1000).map(|i| [dep(&keys[(i + 1) % 1000])]).collect();
    let mut rows: Vec<InstanceFacts> = (0..999).map(|i| row(&keys[i], Healthy, &deps[i])).collect();
    rows.push(row(&keys[999], Unhealthy, &[]));
    let judged = evaluate(&rows);
    assert!(judged[..999].iter().all(|j| j.status == Unhealthy));
    assert_eq!(judged[0].blocked_by.len(), MAX_CHAIN);
    assert_eq!(judged[998].blocked_by, chain(&["svc:s999"]));
}
