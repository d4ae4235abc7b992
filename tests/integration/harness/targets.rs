//! Local probe targets on 127.0.0.1 (every packet a test sends stays on this machine): HTTP
//! servers with a fixed answer, a server that never answers, a bare TCP listener, and a port that
//! refuses connections.

use super::poll_until;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A local HTTP server answering every request with one status (and optional headers); the
/// status can be changed while it runs (`set_status`).
pub struct HttpTarget {
    pub url: String,
    pub port: u16,
    pub hits: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
}

pub(super) fn read_request_head(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

impl HttpTarget {
    pub fn status(status: u16) -> HttpTarget {
        HttpTarget::with_headers(status, vec![])
    }

    pub fn with_headers(status: u16, headers: Vec<(String, String)>) -> HttpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicU64::new(0));
        let hits2 = hits.clone();
        let status_cell = Arc::new(AtomicU16::new(status));
        let status2 = status_cell.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let hits = hits2.clone();
                let headers = headers.clone();
                let status = status2.load(Ordering::SeqCst);
                thread::spawn(move || {
                    read_request_head(&mut stream);
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = format!("status {status}");
                    let mut resp = format!(
                        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reason(status),
                        body.len()
                    );
                    for (k, v) in &headers {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str("\r\n");
                    resp.push_str(&body);
                    let _ = stream.write_all(resp.as_bytes());
                    let _ = stream.flush();
                });
            }
        });
        HttpTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            port,
            hits,
            status: status_cell,
        }
    }

    /// Answers every later connection with `status`.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> HttpTarget {
        HttpTarget::with_headers(302, vec![("Location".into(), location.into())])
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A local HTTP server whose status a test changes between sweeps (`set`).
pub struct SwitchableTarget {
    pub url: String,
    status: Arc<std::sync::atomic::AtomicU16>,
}

impl SwitchableTarget {
    pub fn start(status: u16) -> SwitchableTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let current = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let shared = current.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let status = shared.load(Ordering::SeqCst);
                thread::spawn(move || {
                    read_request_head(&mut stream);
                    let resp = format!(
                        "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        reason(status)
                    );
                    let _ = stream.write_all(resp.as_bytes());
                });
            }
        });
        SwitchableTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            status: current,
        }
    }

    /// What every request from now on is answered with.
    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

/// Accepts connections (and reads the request) but never answers.
///
/// It also tells what it saw, without the test timing anything: how many connections arrived and
/// the most that were open at once, judged by the kernel's view of each held connection whenever
/// another one is accepted.
pub struct SilentTarget {
    pub url: String,
    pub port: u16,
    /// The peer address of every connection accepted, in order.
    accepted: Arc<Mutex<Vec<SocketAddr>>>,
    open_at_once: Arc<AtomicU64>,
    /// Connections the test itself made to settle the counts (see `connections`).
    markers: Mutex<Vec<SocketAddr>>,
}

/// Whether the peer still holds `stream` open: drains what it sent (a silent target never answers
/// it anyway) and looks for the end of the stream behind it.
fn still_open(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

impl SilentTarget {
    pub fn start() -> SilentTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(Mutex::new(vec![]));
        let open_at_once = Arc::new(AtomicU64::new(0));
        let (accepted2, open2) = (accepted.clone(), open_at_once.clone());
        thread::spawn(move || {
            let mut held: Vec<TcpStream> = vec![];
            for stream in listener.incoming().flatten() {
                let peer = stream.peer_addr();
                if stream.set_nonblocking(true).is_ok() {
                    held.push(stream);
                }
                held.retain_mut(still_open);
                open2.fetch_max(held.len() as u64, Ordering::SeqCst);
                if let Ok(peer) = peer {
                    accepted2.lock().unwrap().push(peer);
                }
            }
        });
        SilentTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            port,
            accepted,
            open_at_once,
            markers: Mutex::new(vec![]),
        }
    }

    /// The connections made to it so far (the test's own markers not counted), once every one
    /// made before this call has been accepted: the test connects a marker of its own and waits
    /// until that is accepted, since the kernel hands out connections in the order they were
    /// established. The marker is closed at once, so it never counts as open.
    pub async fn connections(&self) -> u64 {
        let marker = TcpStream::connect(("127.0.0.1", self.port))
            .and_then(|m| m.local_addr())
            .expect("connect a marker");
        self.markers.lock().unwrap().push(marker);
        let settled = poll_until(
            Duration::from_secs(30),
            Duration::from_millis(5),
            || async {
                let accepted = self.accepted.lock().unwrap();
                accepted.contains(&marker).then(|| {
                    let markers = self.markers.lock().unwrap();
                    accepted.iter().filter(|a| !markers.contains(a)).count() as u64
                })
            },
        )
        .await;
        settled.expect("the silent target accepts the test's marker within 30 s")
    }

    /// The most connections that were open at the same moment, over everything made so far.
    pub async fn most_open_at_once(&self) -> u64 {
        self.connections().await;
        self.open_at_once.load(Ordering::SeqCst)
    }
}

/// A plain TCP listener that accepts connections and closes them (no protocol).
pub struct TcpTarget {
    pub url: String,
    pub port: u16,
    pub accepted: Arc<AtomicU64>,
}

impl TcpTarget {
    pub fn start() -> TcpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        TcpTarget {
            url: format!("tcp://127.0.0.1:{port}"),
            port,
            accepted,
        }
    }
}

/// A port on 127.0.0.1 that refuses connections for as long as the value lives.
///
/// A port that was free a moment ago can be taken by any process in between (another test's
/// handler or Azurite binds ephemeral ports all the time). This one stays ours: a socket is bound
/// to it but never listens, so connections are refused (RST) and nobody else can bind it.
pub struct ClosedPort {
    pub port: u16,
    _bound: tokio::net::TcpSocket,
}

pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("create a TCP socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind an ephemeral port");
    let port = socket.local_addr().expect("bound address").port();
    ClosedPort {
        port,
        _bound: socket,
    }
}

/// An HTTP server that holds each request for `hold`, then answers 200 and closes, counting how
/// many requests it held at the same moment. It stops counting a request *before* answering it,
/// so a prober cannot start the request that replaces it before the count went down: the most
/// held at once is exactly the most probes the prober had in flight against it.
pub struct HoldingTarget {
    pub url: String,
    most_held: Arc<AtomicU64>,
    pub hits: Arc<AtomicU64>,
}

impl HoldingTarget {
    pub fn start(hold: Duration) -> HoldingTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (held, most_held, hits) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (held2, most2, hits2) = (held.clone(), most_held.clone(), hits.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (held, most, hits) = (held2.clone(), most2.clone(), hits2.clone());
                thread::spawn(move || {
                    read_request_head(&mut stream);
                    let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(hold);
                    hits.fetch_add(1, Ordering::SeqCst);
                    held.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                });
            }
        });
        HoldingTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            most_held,
            hits,
        }
    }

    pub fn most_held_at_once(&self) -> u64 {
        self.most_held.load(Ordering::SeqCst)
    }
}

/// The query of a request an imitated Azure endpoint received, decoded into name → value.
pub fn query_of(uri: &axum::http::Uri) -> std::collections::HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}
