//! Probe targets whose answer a test changes between sweeps: an HTTP server whose status, headers
//! and body can be set at any time (with a hit counter), for the checks that judge more than "below
//! 400" (warnings, expected statuses, a body substring), and an HTTPS server with a given
//! certificate (certificate expiry). On 127.0.0.1 only.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A local HTTP server answering every request with the answer last set.
pub struct FlippingTarget {
    pub url: String,
    pub port: u16,
    pub hits: Arc<AtomicU64>,
    answer: Arc<Mutex<Answer>>,
}

impl FlippingTarget {
    pub fn start(status: u16) -> FlippingTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicU64::new(0));
        let answer = Arc::new(Mutex::new(Answer {
            status,
            headers: vec![],
            body: format!("status {status}"),
        }));
        let (hits2, answer2) = (hits.clone(), answer.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (hits, answer) = (hits2.clone(), answer2.lock().unwrap().clone());
                thread::spawn(move || {
                    super::targets::read_request_head(&mut stream);
                    hits.fetch_add(1, Ordering::SeqCst);
                    let mut head = format!(
                        "HTTP/1.1 {} Status\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
                        answer.status,
                        answer.body.len()
                    );
                    for (k, v) in &answer.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(answer.body.as_bytes());
                    let _ = stream.flush();
                });
            }
        });
        FlippingTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            port,
            hits,
            answer,
        }
    }

    /// From now on, answer `status` (the headers and body stay).
    pub fn set(&self, status: u16) {
        self.answer.lock().unwrap().status = status;
    }

    pub fn set_headers(&self, headers: &[(&str, &str)]) {
        self.answer.lock().unwrap().headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    pub fn set_body(&self, body: impl Into<String>) {
        self.answer.lock().unwrap().body = body.into();
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A local HTTPS server answering 200 to every request, serving `certificate`.
pub struct TlsTarget {
    pub url: String,
    pub hits: Arc<AtomicU64>,
}

impl TlsTarget {
    pub fn start(certificate: &super::TestCertificate) -> TlsTarget {
        use tokio_rustls::rustls;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(
                    certificate.cert_der.clone(),
                )],
                rustls::pki_types::PrivateKeyDer::Pkcs8(certificate.key_der.clone().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicU64::new(0));
        let hits2 = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (config, hits) = (config.clone(), hits2.clone());
                thread::spawn(move || {
                    let Ok(connection) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(connection, stream);
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match std::io::Read::read(&mut tls, &mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let _ = tls.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        TlsTarget {
            url: format!("https://127.0.0.1:{port}/health"),
            hits,
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}
