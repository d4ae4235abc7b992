//! The TLS client settings of the probes that do their own TLS (gRPC over `grpcs://`): the public
//! roots (webpki-roots, the same set reqwest's probes use) plus any `HEALTH_PROBE_CA_FILE` roots,
//! ALPN `h2`, and the handshake over a connection the SSRF guard already allowed, with the peer's
//! leaf certificate kept for `tlsExpiryWarningDays`.

use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// The client configuration for gRPC over TLS, built once per prober.
pub(super) fn grpc_client_config(extra_roots: &[Vec<u8>]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in extra_roots {
        // Validated when the settings were read; one the verifier cannot use is skipped.
        let _ = roots.add(CertificateDer::from(der.clone()));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Runs the handshake for `host` (a name or an IP literal, brackets allowed) over `stream`.
/// The error text carries no URL: only the reason.
pub(super) async fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned())
        .map_err(|_| format!("TLS: {host} is not a valid server name"))?;
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

/// The peer's leaf certificate (DER), once a handshake finished.
pub(super) fn peer_leaf(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    let (_, connection) = stream.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.to_vec())
}
