//! One health check against one endpoint.
//!
//! HTTP(S) endpoints get a GET: healthy iff the status is below 400. Redirects are not followed (a
//! registered URL must not be able to bounce the checker elsewhere) and the body is never read.
//! `tcp://host:port` endpoints get a TCP connect, for backing services that do not speak HTTP.
//! Every probe, connect included, is bounded by one timeout, so a silent server costs one timeout.
//! Every address is checked by the `guard` before any packet is sent to it.

use super::guard::{resolve_allowed, GuardedResolver, Refused, TargetPolicy};
use crate::domain::{probe_target, Endpoint, HealthCheck, HealthVerdict, MAX_CHECK_TIMEOUT};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Prober {
    http: reqwest::Client,
    timeout: Duration,
    policy: Arc<TargetPolicy>,
}

impl Prober {
    pub fn new(timeout: Duration, policy: TargetPolicy) -> Self {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            // Each probe's own timeout bounds it (a registration may ask for longer than the
            // default); this is only the ceiling.
            .connect_timeout(MAX_CHECK_TIMEOUT)
            .pool_max_idle_per_host(1)
            .user_agent(concat!(
                "service-registry-health/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .expect("a reqwest client with rustls and static settings always builds");
        Prober {
            http,
            timeout,
            policy,
        }
    }

    /// Probes the health endpoint text as stored, with the registration's check settings. A row
    /// written by another client may hold anything, so an unparseable endpoint is a verdict
    /// (unhealthy), not an error.
    pub async fn probe(&self, endpoint: &str, check: Option<&HealthCheck>) -> HealthVerdict {
        let started = Instant::now();
        let target = match Endpoint::parse("healthEndpoint", endpoint) {
            Ok(endpoint) => probe_target(endpoint, check),
            Err(e) => return HealthVerdict::unhealthy(started.elapsed(), e.message),
        };
        let timeout = check.and_then(|c| c.timeout).unwrap_or(self.timeout);
        if let Err(refused) = self.policy.check_endpoint(&target) {
            return HealthVerdict::refused(started.elapsed(), refused.to_string());
        }
        let outcome = tokio::time::timeout(timeout, self.attempt(&target, started)).await;
        outcome.unwrap_or_else(|_| {
            HealthVerdict::unhealthy(
                started.elapsed(),
                format!("no answer within {} ms", timeout.as_millis()),
            )
        })
    }

    /// What this prober may reach: registration judges a new target by the same policy.
    pub fn policy(&self) -> &TargetPolicy {
        &self.policy
    }

    async fn attempt(&self, endpoint: &Endpoint, started: Instant) -> HealthVerdict {
        match endpoint {
            Endpoint::Http(url) => match self.http.get(url.clone()).send().await {
                // Dropping the response closes the body unread.
                Ok(response) => {
                    HealthVerdict::from_http_status(response.status().as_u16(), started.elapsed())
                }
                Err(e) => match refusal_in(&e) {
                    Some(refused) => HealthVerdict::refused(started.elapsed(), refused.to_string()),
                    None => HealthVerdict::unhealthy(started.elapsed(), describe(e)),
                },
            },
            Endpoint::Tcp { host, port } => {
                let addresses = match resolve_allowed(&self.policy, host, *port).await {
                    Ok(addresses) => addresses,
                    Err(e) => {
                        return match e.downcast_ref::<Refused>() {
                            Some(refused) => {
                                HealthVerdict::refused(started.elapsed(), refused.to_string())
                            }
                            None => HealthVerdict::unhealthy(
                                started.elapsed(),
                                format!("cannot resolve {host}: {e}"),
                            ),
                        }
                    }
                };
                match tokio::net::TcpStream::connect(&addresses[..]).await {
                    Ok(_) => HealthVerdict::healthy(started.elapsed()),
                    Err(e) => HealthVerdict::unhealthy(
                        started.elapsed(),
                        format!("TCP connect failed: {e}"),
                    ),
                }
            }
        }
    }
}

/// The guard's refusal, if that is why the request failed (it travels inside reqwest's error chain).
fn refusal_in(error: &reqwest::Error) -> Option<Refused> {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = inner.source();
    }
    None
}

/// A short reason without the URL (which may carry credentials in its query).
fn describe(error: reqwest::Error) -> String {
    if error.is_connect() {
        "connection failed".to_owned()
    } else {
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            message = format!("{message}: {inner}");
            source = inner.source();
        }
        message
    }
}
