//! One health check against one endpoint.
//!
//! HTTP(S) endpoints get a GET: healthy iff the status is below 400. Redirects are not followed (a
//! registered URL must not be able to bounce the checker elsewhere) and the body is never read.
//! `tcp://host:port` endpoints get a TCP connect, for backing services that do not speak HTTP.
//! Every probe, connect included, is bounded by one timeout, so a silent server costs one timeout.

use crate::domain::{Endpoint, HealthVerdict};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Prober {
    http: reqwest::Client,
    timeout: Duration,
}

impl Prober {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(1)
            .user_agent(concat!(
                "service-registry-health/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .expect("a reqwest client with rustls and static settings always builds");
        Prober { http, timeout }
    }

    /// Probes the endpoint text as stored. A row written by another client may hold anything, so an
    /// unparseable endpoint is a verdict (unhealthy), not an error.
    pub async fn probe(&self, endpoint: &str) -> HealthVerdict {
        let started = Instant::now();
        let endpoint = match Endpoint::parse("healthEndpoint", endpoint) {
            Ok(endpoint) => endpoint,
            Err(e) => return HealthVerdict::unhealthy(started.elapsed(), e.message),
        };
        let outcome = tokio::time::timeout(self.timeout, self.attempt(&endpoint, started)).await;
        outcome.unwrap_or_else(|_| {
            HealthVerdict::unhealthy(
                started.elapsed(),
                format!("no answer within {} ms", self.timeout.as_millis()),
            )
        })
    }

    async fn attempt(&self, endpoint: &Endpoint, started: Instant) -> HealthVerdict {
        match endpoint {
            Endpoint::Http(url) => match self.http.get(url.clone()).send().await {
                // Dropping the response closes the body unread.
                Ok(response) => {
                    HealthVerdict::from_http_status(response.status().as_u16(), started.elapsed())
                }
                Err(e) => HealthVerdict::unhealthy(started.elapsed(), describe(e, self.timeout)),
            },
            Endpoint::Tcp { host, port } => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                match tokio::net::TcpStream::connect((host, *port)).await {
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

/// A short reason without the URL (which may carry credentials in its query).
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!("no answer within {} ms", timeout.as_millis())
    } else if error.is_connect() {
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
