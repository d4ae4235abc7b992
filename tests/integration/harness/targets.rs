//! Local probe targets on 127.0.0.1 (every packet a test sends stays on this machine): HTTP
//! servers with a fixed answer, a server that never answers, a bare TCP listener, and a port that
//! refuses connections.

use super::poll_until;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A local HTTP server answering every request with the answer last set: a status, headers and
/// a body, each changeable while it runs (`set_status`, `set_headers`, `set_body`), with a hit
/// counter. Until a body is set it is `status <code>`.
pub struct HttpTarget {
    pub url: String,
    pub port: u16,
    pub hits: Arc<AtomicU64>,
    answer: Arc<Mutex<Answer>>,
}

#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<String>,
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
        let answer = Arc::new(Mutex::new(Answer {
            status,
            headers,
            body: None,
        }));
        let (hits2, answer2) = (hits.clone(), answer.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (hits, answer) = (hits2.clone(), answer2.lock().unwrap().clone());
                thread::spawn(move || {
                    read_request_head(&mut stream);
                    hits.fetch_add(1, Ordering::SeqCst);
                    let status = answer.status;
                    let body = answer.body.unwrap_or_else(|| format!("status {status}"));
                    let mut head = format!(
                        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reason(status),
                        body.len()
                    );
                    for (k, v) in &answer.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body.as_bytes());
                    let _ = stream.flush();
                });
            }
        });
        HttpTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            port,
            hits,
            answer,
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> HttpTarget {
        HttpTarget::with_headers(302, vec![("Location".into(), location.into())])
    }

    /// Answers every later connection with `status` (the headers and a body set stay).
    pub fn set_status(&self, status: u16) {
        self.answer.lock().unwrap().status = status;
    }

    /// Answers every later connection with these headers.
    pub fn set_headers(&self, headers: &[(&str, &str)]) {
        self.answer.lock().unwrap().headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    /// Answers every later connection with this body.
    pub fn set_body(&self, body: impl Into<String>) {
        self.answer.lock().unwrap().body = Some(body.into());
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
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
