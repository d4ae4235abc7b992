//! One health check against one endpoint.
//!
//! HTTP(S) endpoints get a GET, judged by `http_probe`: below 400 healthy (or the registration's
//! `expectedStatus`), 429 and 503 with `Retry-After` degraded. Redirects are not followed (a
//! registered URL must not be able to bounce the checker elsewhere) and the body is read only for
//! `expectBody`, at most 64 KiB of it.
//! `tcp://host:port` endpoints get a TCP connect, for backing services that do not speak HTTP.
//! `grpc(s)://host:port[/service]` endpoints get the standard gRPC health check (`grpc_probe`),
//! over a connection made here to the allowed addresses.
//! Every probe, connect included, is bounded by one timeout, so a silent server costs one timeout.
//! Every address is checked by the `guard`, with the port it will be contacted on, before any
//! packet is sent to it: literals as they are, names after `lookup` looked them up (an HTTP probe
//! to a name gets a client pinned to the addresses allowed, so it connects to nothing else).

use super::certificate::with_expiry;
use super::grpc_probe::GrpcTarget;
use super::guard::{ProbeGuard, Refused};
use super::http_probe::judge_response;
use super::lookup::{refresh_identity, refusal_of, resolve_allowed, Unpinned};
use crate::domain::{probe_target, Endpoint, HealthCheck, HealthVerdict, MAX_CHECK_TIMEOUT};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Prober {
    /// For IP literals, which need no lookup; names get a client of their own (`pinned`).
    http: reqwest::Client,
    timeout: Duration,
    policy: Arc<ProbeGuard>,
    /// Root certificates (DER) trusted besides the public ones (`HEALTH_PROBE_CA_FILE`).
    roots: Arc<Vec<Vec<u8>>>,
    /// gRPC over TLS: built once, with the same roots.
    grpc_tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

/// The probe client's settings; `pin` fixes where a name connects (reqwest then asks no resolver).
fn http_client(pin: Option<(&str, &[SocketAddr])>, roots: &[Vec<u8>]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(Unpinned))
        // Each probe's own timeout bounds it (a registration may ask for longer than the
        // default); this is only the ceiling.
        .connect_timeout(MAX_CHECK_TIMEOUT)
        // No keep-alive: every target is a different host, probed once per sweep, minutes apart,
        // so a pooled connection would never be reused, only held. Holding one per answered
        // target (reqwest keeps idle connections 90 s) would put thousands of idle connections
        // against Consumption's 1,200-connection cap; without a pool each probe's connection
        // closes as soon as its status line is read, or when its timeout drops it.
        .pool_max_idle_per_host(0)
        // The peer certificate, for `tlsExpiryWarningDays` (`certificate`).
        .tls_info(true)
        .user_agent(concat!(
            "service-registry-health/",
            env!("CARGO_PKG_VERSION")
        ));
    if let Some((host, addresses)) = pin {
        builder = builder.resolve_to_addrs(host, addresses);
    }
    for der in roots {
        if let Ok(certificate) = reqwest::Certificate::from_der(der) {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .expect("a reqwest client with rustls and static settings always builds")
}

impl Prober {
    pub fn new(timeout: Duration, policy: ProbeGuard) -> Self {
        Prober {
            http: http_client(None, &[]),
            timeout,
            policy: Arc::new(policy),
            roots: Arc::new(Vec::new()),
            grpc_tls: super::tls::grpc_client_config(&[]),
        }
    }

    /// The same prober, trusting `roots` (DER certificates) besides the public roots for
    /// `https://` and `grpcs://` targets.
    pub fn with_roots(self, roots: Vec<Vec<u8>>) -> Self {
        Prober {
            http: http_client(None, &roots),
            grpc_tls: super::tls::grpc_client_config(&roots),
            roots: Arc::new(roots),
            ..self
        }
    }

    /// Probes the health endpoint text as stored, with the registration's check settings. A row
    /// written by another client may hold anything, so an unparseable endpoint is a verdict
    /// (unhealthy), not an error.
    pub async fn probe(&self, endpoint: &str, check: Option<&HealthCheck>) -> HealthVerdict {
        let _in_flight = crate::metrics::metrics().probe_started();
        let started = Instant::now();
        let target = match Endpoint::parse_health("healthEndpoint", endpoint) {
            Ok(endpoint) => probe_target(endpoint, check),
            Err(e) => return HealthVerdict::unhealthy(started.elapsed(), e.message),
        };
        let timeout = check.and_then(|c| c.timeout).unwrap_or(self.timeout);
        refresh_identity(&self.policy).await;
        if let Err(refused) = self.policy.check_endpoint(&target) {
            return HealthVerdict::refused(started.elapsed(), refused.to_string());
        }
        let outcome = tokio::time::timeout(timeout, self.attempt(&target, check, started)).await;
        outcome.unwrap_or_else(|_| {
            HealthVerdict::unhealthy(
                started.elapsed(),
                format!("no answer within {} ms", timeout.as_millis()),
            )
        })
    }

    /// What this prober may reach: registration judges a new target by the same policy.
    pub fn policy(&self) -> &ProbeGuard {
        &self.policy
    }

    /// What can be judged of a target before resolving its name (see
    /// `ProbeGuard::check_endpoint`), with a named identity endpoint's addresses looked up first.
    pub async fn check_endpoint(&self, endpoint: &Endpoint) -> Result<(), Refused> {
        refresh_identity(&self.policy).await;
        self.policy.check_endpoint(endpoint)
    }

    /// The allowed addresses of `host` at `port`, or the verdict that ends the probe.
    async fn allowed(
        &self,
        host: &str,
        port: u16,
        started: Instant,
    ) -> Result<Vec<SocketAddr>, HealthVerdict> {
        resolve_allowed(&self.policy, host, port)
            .await
            .map_err(|e| match refusal_of(&e) {
                Some(refused) => HealthVerdict::refused(started.elapsed(), refused.to_string()),
                None => HealthVerdict::unhealthy(
                    started.elapsed(),
                    format!("cannot resolve {host}: {e}"),
                ),
            })
    }

    async fn attempt(
        &self,
        endpoint: &Endpoint,
        check: Option<&HealthCheck>,
        started: Instant,
    ) -> HealthVerdict {
        match endpoint {
            Endpoint::Http(url) => {
                let pinned;
                let client = match url.host() {
                    Some(url::Host::Domain(host)) => {
                        let port = url.port_or_known_default().unwrap_or(80);
                        let addresses = match self.allowed(host, port, started).await {
                            Ok(addresses) => addresses,
                            Err(verdict) => return verdict,
                        };
                        pinned = http_client(Some((host, &addresses)), &self.roots);
                        &pinned
                    }
                    // A literal was judged by `check_endpoint`, port included.
                    _ => &self.http,
                };
                match client.get(url.clone()).send().await {
                    Ok(response) => judge_response(response, check, started).await,
                    Err(e) => match refusal_in(&e) {
                        Some(refused) => {
                            HealthVerdict::refused(started.elapsed(), refused.to_string())
                        }
                        None => HealthVerdict::unhealthy(started.elapsed(), describe(e)),
                    },
                }
            }
            Endpoint::Grpc {
                host,
                port,
                service,
                tls,
            } => {
                let addresses = match self.allowed(host, *port, started).await {
                    Ok(addresses) => addresses,
                    Err(verdict) => return verdict,
                };
                let target = GrpcTarget {
                    host,
                    port: *port,
                    service,
                    addresses: &addresses,
                    tls: tls.then(|| self.grpc_tls.clone()),
                };
                let outcome = super::grpc_probe::check(target, started).await;
                with_expiry(outcome.verdict, check, outcome.peer_leaf.as_deref())
            }
            Endpoint::Tcp { host, port } => {
                let addresses = match self.allowed(host, *port, started).await {
                    Ok(addresses) => addresses,
                    Err(verdict) => return verdict,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::HealthState;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn loopback_prober(timeout: Duration) -> Prober {
        let policy = ProbeGuard {
            allow_loopback: true,
            ..ProbeGuard::default()
        };
        Prober::new(timeout, policy)
    }

    /// Reads the request, then waits (up to a generous deadline) for the prober to close its end.
    async fn closed_by_peer(socket: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        let wait = async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_silent_targets_connection_is_closed_once_its_timeout_ends_the_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let prober = loopback_prober(Duration::from_millis(200));
        let (verdict, accepted) = tokio::join!(prober.probe(&url, None), listener.accept());
        assert_eq!(verdict.state, HealthState::Unhealthy);
        assert_eq!(verdict.error_message, "no answer within 200 ms");
        let (mut socket, _) = accepted.unwrap();
        assert!(
            closed_by_peer(&mut socket).await,
            "the timed-out probe must close its connection, not leave it to the target"
        );
    }

    #[tokio::test]
    async fn an_answered_probe_keeps_no_idle_connection() {
        // The target offers keep-alive (HTTP/1.1, a sized body); the prober must still close.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let target = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the prober closed before sending its request");
                seen.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            closed_by_peer(&mut socket).await
        });
        // The prober lives on, as the sweep's does: dropping it would close a pooled connection too.
        let prober = loopback_prober(Duration::from_secs(5));
        let verdict = prober.probe(&url, None).await;
        assert_eq!(verdict.state, HealthState::Healthy);
        assert!(
            target.await.unwrap(),
            "an answered probe's connection must be closed, not pooled"
        );
        drop(prober);
    }
}
