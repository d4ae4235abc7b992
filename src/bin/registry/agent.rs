//! `registry agent`: the Eureka client lifecycle as a process a container runs beside its app.
//!
//! Register; heartbeat every third of `ttlSeconds` (so two beats can be lost before the
//! registration lapses); while the registry is unreachable or answers a transient error (503 and
//! friends), retry with exponential back-off and jitter, so a fleet of agents does not hammer a
//! registry that is coming back; register again when a heartbeat gets 404 (the sweep deleted the
//! row after a long outage); on SIGTERM or SIGINT deregister and exit 0. A refusal that retrying
//! cannot fix (400, 401, 403) ends the agent with exit 1, since it would otherwise beat forever in vain.

use crate::client::{Client, Failure};
use crate::Registration;
use clap::Args;
use reqwest::{Method, StatusCode};
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub registration: Registration,
    /// Milliseconds between heartbeats (default: a third of --ttl).
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// First retry delay in milliseconds; doubles on each failure up to --retry-max-ms.
    #[arg(long, default_value_t = 500)]
    pub retry_initial_ms: u64,
    #[arg(long, default_value_t = 30_000)]
    pub retry_max_ms: u64,
}

/// Exponential back-off with "equal jitter": each delay is drawn from the upper half of the
/// current step, so retries spread out but never collapse to zero.
struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            step: initial,
        }
    }

    fn reset(&mut self) {
        self.step = self.initial;
    }

    /// The next delay, at least `floor` (a `Retry-After`) but never over the maximum.
    fn next(&mut self, floor: Option<Duration>) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        let jitter = Duration::from_millis(fastrand::u64(0..=half.as_millis() as u64));
        (half + jitter).max(floor.unwrap_or_default()).min(self.max)
    }
}

pub async fn run(client: &Client, args: AgentArgs) -> ExitCode {
    let Some(ttl) = args.registration.ttl_seconds else {
        eprintln!("registry agent: --ttl is required (the heartbeat interval is a third of it)");
        return ExitCode::from(2);
    };
    let every = Duration::from_millis(
        args.heartbeat_ms
            .unwrap_or(u64::from(ttl) * 1000 / 3)
            .max(100),
    );
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("registry agent: cannot install the SIGTERM/SIGINT handlers");
        return ExitCode::FAILURE;
    };
    let mut backoff = Backoff::new(
        Duration::from_millis(args.retry_initial_ms.max(1)),
        Duration::from_millis(args.retry_max_ms),
    );
    let id = describe(&args.registration);
    let lifecycle = keep_alive(client, &args.registration, every, &mut backoff, &id);
    tokio::select! {
        failure = lifecycle => {
            eprintln!("registry agent: giving up on {id}: {failure}");
            return ExitCode::FAILURE;
        }
        _ = term.recv() => eprintln!("registry agent: SIGTERM, deregistering {id}"),
        _ = int.recv() => eprintln!("registry agent: SIGINT, deregistering {id}"),
    }
    deregister(client, &args.registration, &id).await
}

/// Runs until a refusal that retrying cannot fix; returns it.
async fn keep_alive(
    client: &Client,
    registration: &Registration,
    every: Duration,
    backoff: &mut Backoff,
    id: &str,
) -> Failure {
    let body = registration.body();
    let beat = registration.key.body();
    let mut registered = false;
    loop {
        let result = if registered {
            client
                .call(Method::POST, "ServiceHeartbeat", &[], Some(&beat), None)
                .await
        } else {
            client
                .call(Method::POST, "ServiceRegistrar", &[], Some(&body), None)
                .await
        };
        let wait = match result {
            Ok(answer) => {
                if !registered {
                    eprintln!("registry agent: registered {id}");
                } else {
                    let at = answer.body["lastHeartbeat"].as_str().unwrap_or("-");
                    eprintln!("registry agent: heartbeat {id} at {at}");
                }
                registered = true;
                backoff.reset();
                every
            }
            Err(failure) if registered && failure.status() == Some(StatusCode::NOT_FOUND) => {
                eprintln!("registry agent: heartbeat got 404, registering {id} again");
                registered = false;
                backoff.reset();
                Duration::ZERO
            }
            Err(failure) if failure.is_transient() => {
                let wait = backoff.next(failure.retry_after());
                eprintln!(
                    "registry agent: {failure}; retrying in {} ms",
                    wait.as_millis()
                );
                wait
            }
            Err(failure) => return failure,
        };
        tokio::time::sleep(wait).await;
    }
}

/// A few quick attempts: the container is being stopped, and its grace period is short (10 s by
/// default in Docker and Kubernetes). 404 means there is nothing left to delete.
async fn deregister(client: &Client, registration: &Registration, id: &str) -> ExitCode {
    let query = registration.key.query();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    for _ in 0..5 {
        match client
            .call(Method::DELETE, "ServiceRegistrar", &query, None, None)
            .await
        {
            Ok(_) => {
                eprintln!("registry agent: deregistered {id}");
                return ExitCode::SUCCESS;
            }
            Err(failure) if failure.status() == Some(StatusCode::NOT_FOUND) => {
                eprintln!("registry agent: {id} was not registered; nothing to delete");
                return ExitCode::SUCCESS;
            }
            Err(failure) if failure.is_transient() => {
                eprintln!("registry agent: deregistering: {failure}");
                tokio::time::sleep(backoff.next(None)).await;
            }
            Err(failure) => {
                eprintln!("registry agent: deregistering: {failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("registry agent: could not deregister {id}; its TTL will expire it");
    ExitCode::FAILURE
}

fn describe(registration: &Registration) -> String {
    let key = &registration.key;
    let mut id = format!(
        "{}:{}",
        key.service_type.as_deref().unwrap_or("default"),
        key.service_name
    );
    if let Some(instance) = &key.instance_id {
        id.push_str(&format!(" instance {instance}"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum_and_honours_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let steps = [100u64, 200, 400, 800, 1000, 1000];
        for step in steps {
            let d = b.next(None).as_millis() as u64;
            assert!((step / 2..=step).contains(&d), "{d} ms for step {step}");
        }
        b.reset();
        assert!(b.next(None) <= Duration::from_millis(100));
        assert_eq!(
            b.next(Some(Duration::from_secs(5))),
            Duration::from_millis(1000)
        );
    }
}
