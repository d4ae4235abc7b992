//! One gRPC health check: `grpc.health.v1.Health/Check` for the endpoint's service (`""`: the
//! server as a whole) over HTTP/2, in plaintext for `grpc://` and TLS for `grpcs://`, with
//! tonic-health's generated client. The connection is made here, to the addresses the SSRF guard
//! allowed (the caller resolved and judged them), and handed to tonic as its only transport, so
//! tonic never resolves or connects anything itself.
//!
//! SERVING is healthy; NOT_SERVING, SERVICE_UNKNOWN and UNKNOWN are unhealthy with the status as
//! the reason; a gRPC error is unhealthy with its code (NOT_FOUND: the server does not know the
//! service; UNIMPLEMENTED: it has no health service).

use super::tls::{handshake, peer_leaf};
use crate::domain::HealthVerdict;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_rustls::rustls::ClientConfig;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The target of one check: where to connect (already judged) and what to ask.
pub(super) struct GrpcTarget<'a> {
    pub host: &'a str,
    pub port: u16,
    pub service: &'a str,
    pub addresses: &'a [SocketAddr],
    /// `Some` for `grpcs://`.
    pub tls: Option<Arc<ClientConfig>>,
}

/// What a check found: the verdict, and for TLS the peer's leaf certificate.
pub(super) struct GrpcOutcome {
    pub verdict: HealthVerdict,
    pub peer_leaf: Option<Vec<u8>>,
}

/// The connection, as tonic's connector hands it out: once.
type Io = Box<dyn IoStream>;
trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

pub(super) async fn check(target: GrpcTarget<'_>, started: Instant) -> GrpcOutcome {
    let unhealthy = |reason: String| GrpcOutcome {
        verdict: HealthVerdict::unhealthy(started.elapsed(), reason),
        peer_leaf: None,
    };
    let tcp = match tokio::net::TcpStream::connect(target.addresses).await {
        Ok(tcp) => tcp,
        Err(e) => return unhealthy(format!("TCP connect failed: {e}")),
    };
    let _ = tcp.set_nodelay(true);
    let (io, leaf): (Io, Option<Vec<u8>>) = match target.tls {
        None => (Box::new(tcp), None),
        Some(config) => match handshake(config, target.host, tcp).await {
            Ok(tls) => {
                let leaf = peer_leaf(&tls);
                (Box::new(tls), leaf)
            }
            Err(reason) => return unhealthy(reason),
        },
    };
    // The request's authority is the registered host and port (what a server's virtual hosting
    // sees); the scheme is `https` over TLS. Only the connection above is ever used.
    let scheme = if leaf.is_some() { "https" } else { "http" };
    let authority = format!("{}:{}", target.host, target.port);
    let (Ok(endpoint), Ok(origin)) = (
        tonic::transport::Endpoint::from_shared(format!("http://{authority}")),
        format!("{scheme}://{authority}").parse::<tonic::codegen::http::Uri>(),
    ) else {
        return unhealthy(format!("{authority} is not a valid gRPC authority"));
    };
    let slot = Arc::new(Mutex::new(Some(io)));
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let io = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            io.map(TokioIo::new)
                .ok_or_else(|| std::io::Error::other("the checked connection was already used"))
        }
    });
    let channel = match endpoint
        .origin(origin)
        .connect_with_connector(connector)
        .await
    {
        Ok(channel) => channel,
        Err(e) => return unhealthy(format!("HTTP/2 connection failed: {}", source_text(&e))),
    };
    let request = HealthCheckRequest {
        service: target.service.to_owned(),
    };
    let verdict = match HealthClient::new(channel).check(request).await {
        Ok(answer) => judge(answer.into_inner().status, target.service, started),
        Err(status) => {
            HealthVerdict::unhealthy(started.elapsed(), describe(&status, target.service))
        }
    };
    GrpcOutcome {
        verdict,
        peer_leaf: leaf,
    }
}

fn judge(status: i32, service: &str, started: Instant) -> HealthVerdict {
    let elapsed = started.elapsed();
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Serving) => HealthVerdict::healthy(elapsed),
        Ok(other) => HealthVerdict::unhealthy(
            elapsed,
            format!("gRPC health {}{}", other.as_str_name(), of(service)),
        ),
        Err(_) => HealthVerdict::unhealthy(elapsed, format!("gRPC health status {status}")),
    }
}

fn of(service: &str) -> String {
    if service.is_empty() {
        String::new()
    } else {
        format!(" (service {service})")
    }
}

/// The code, and the server's message cut short (it is the server's text, not ours).
fn describe(status: &tonic::Status, service: &str) -> String {
    let code = status.code();
    let what = match code {
        tonic::Code::NotFound => {
            format!("gRPC health: service unknown to the server{}", of(service))
        }
        tonic::Code::Unimplemented => {
            "gRPC health: the server has no grpc.health.v1.Health service".to_owned()
        }
        _ => format!("gRPC error {code:?}"),
    };
    let message: String = status.message().chars().take(200).collect();
    if message.is_empty() || code == tonic::Code::NotFound {
        what
    } else {
        format!("{what}: {message}")
    }
}

fn source_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}
