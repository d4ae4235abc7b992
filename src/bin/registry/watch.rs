//! `registry watch`: discovery polled with `If-None-Match`, so an unchanged registry costs a 304
//! with no body; each 200 is compared with the last one and the differences printed.
//!
//! The first answer is the baseline (announced on stderr, so a script knows when changes start to
//! count). A heartbeat alone moves `lastHeartbeat` and `expiresAt`; those two are left out of the
//! comparison, so "changed" means something an operator acts on: health, endpoint, weight, version.

use crate::client::{Client, Failure};
use crate::{output, Filters, Output};
use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// Milliseconds between polls.
    #[arg(long, default_value_t = 2000)]
    pub interval_ms: u64,
    /// Stop (exit 0) after this many changes; without it, run until Ctrl-C.
    #[arg(long)]
    pub count: Option<u64>,
}

type Snapshot = BTreeMap<String, Value>;

pub async fn run(client: &Client, format: Output, args: WatchArgs) -> Result<(), Failure> {
    let interval = Duration::from_millis(args.interval_ms.max(100));
    let query = args.filters.query();
    let mut etag: Option<String> = None;
    let mut last: Option<Snapshot> = None;
    let mut seen = 0u64;
    loop {
        let poll = client.call(
            Method::GET,
            "ServiceDiscovery",
            &query,
            None,
            etag.as_deref(),
        );
        let answer = tokio::select! {
            answer = poll => answer,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match answer {
            Ok(answer) if answer.status.as_u16() == 200 => {
                let now = snapshot(&answer.body);
                etag = answer.etag;
                match &last {
                    None => eprintln!("watching: {} instances", now.len()),
                    Some(before) => {
                        for (change, item) in changes(before, &now) {
                            print_change(format, change, item);
                            seen += 1;
                            if args.count.is_some_and(|n| seen >= n) {
                                return Ok(());
                            }
                        }
                    }
                }
                last = Some(now);
            }
            Ok(_) => {} // 304: nothing changed
            Err(failure) if failure.is_transient() => eprintln!("registry watch: {failure}"),
            Err(failure) => return Err(failure),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn snapshot(body: &Value) -> Snapshot {
    let services = body["services"].as_array().cloned().unwrap_or_default();
    services
        .into_iter()
        .map(|item| {
            let key = format!(
                "{}:{}:{}",
                output::text(&item, "serviceType"),
                output::text(&item, "serviceName"),
                output::text(&item, "instanceId")
            );
            (key, item)
        })
        .collect()
}

/// What an operator would call the same instance: everything but the heartbeat's own fields.
fn comparable(item: &Value) -> Value {
    let mut item = item.clone();
    if let Some(object) = item.as_object_mut() {
        object.remove("lastHeartbeat");
        object.remove("expiresAt");
    }
    item
}

fn changes<'a>(before: &'a Snapshot, now: &'a Snapshot) -> Vec<(&'static str, &'a Value)> {
    let mut out = vec![];
    for (key, item) in now {
        match before.get(key) {
            None => out.push(("added", item)),
            Some(old) if comparable(old) != comparable(item) => out.push(("changed", item)),
            Some(_) => {}
        }
    }
    for (key, item) in before {
        if !now.contains_key(key) {
            out.push(("removed", item));
        }
    }
    out
}

fn print_change(format: Output, change: &str, item: &Value) {
    if format == Output::Json {
        println!("{}", json!({"change": change, "instance": item}));
    } else {
        println!("{change:<8} {}", output::row(item).join("  "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, status: &str, beat: &str) -> Value {
        json!({"serviceType": "api", "serviceName": name, "instanceId": null,
               "healthStatus": {"status": status}, "lastHeartbeat": beat, "expiresAt": beat})
    }

    #[test]
    fn heartbeats_alone_are_no_change_but_health_and_membership_are() {
        let before =
            snapshot(&json!({"services": [item("a", "healthy", "1"), item("b", "healthy", "1")]}));
        let now =
            snapshot(&json!({"services": [item("a", "healthy", "2"), item("c", "healthy", "2")]}));
        let found: Vec<(&str, String)> = changes(&before, &now)
            .into_iter()
            .map(|(c, i)| (c, output::text(i, "serviceName")))
            .collect();
        assert_eq!(
            found,
            vec![("added", "c".to_string()), ("removed", "b".to_string())]
        );
        let sick = snapshot(&json!({"services": [item("a", "unhealthy", "2")]}));
        let one = snapshot(&json!({"services": [item("a", "healthy", "1")]}));
        assert_eq!(changes(&one, &sick)[0].0, "changed");
    }
}
