//! A counting proxy in front of Azurite (127.0.0.1 only): every request the handler sends to
//! storage, recorded as `METHOD /table-part-of-the-path` and forwarded unchanged (Shared Key signs
//! the path and headers, not the host, so the signature still holds). Tests read the count of
//! storage round trips one API request cost, and the most connections and requests the handler had
//! open at once (`Peaks`); `start_delayed` holds every request a while first, a store that is slow.
//! Faults on demand: `fail_writes_to` answers 503 to the writes whose path or body contains a fragment (one
//! kind of row failing while the rest works), `stall` holds every request until it is lifted (a
//! store that accepts connections and never answers).
//! `Handler::behind` starts a handler whose storage is such a proxy.

use super::{connection_string_for_port, poll_until, Handler, HandlerConfig, Mode};
use axum::response::IntoResponse;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Clone)]
pub struct CountingProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    /// The `Accept` header of each request, beside `seen`.
    accepts: Arc<Mutex<Vec<String>>>,
    /// The answers to entity queries (`GET …()`), as text.
    query_answers: Arc<Mutex<Vec<String>>>,
    connections: Arc<Gauge>,
    in_flight: Arc<Gauge>,
    /// When each answered request arrived and when its answer was ready: what `Peaks::requests`
    /// is the most of at once.
    answered: Arc<Mutex<Vec<(Instant, Instant)>>>,
    faults: Arc<Faults>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

/// The faults switched on now.
#[derive(Default)]
struct Faults {
    /// Writes (anything but GET) whose path or body contains this are answered 503.
    failing_writes: Mutex<Option<String>>,
    /// While set, requests wait here before being forwarded.
    stalled: tokio::sync::watch::Sender<bool>,
}

/// A count of things open now and the most ever open at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn open(self: &Arc<Self>) -> GaugeGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self.clone())
    }
}

struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The most the handler held open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peaks {
    /// TCP connections accepted and not yet closed.
    pub connections: usize,
    /// Requests answered, the most of them open at once. A request whose client gave up before
    /// its answer is not one: the client closed its connection then, and whether the proxy had
    /// noticed before the client's next request arrived is a race the proxy's own schedule decides.
    pub requests: usize,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl CountingProxy {
    /// Forwards to Azurite's table port `upstream`.
    pub async fn start(upstream: u16) -> CountingProxy {
        Self::start_delayed(upstream, Duration::ZERO).await
    }

    /// Forwards each request only after holding it for `delay`.
    pub async fn start_delayed(upstream: u16, delay: Duration) -> CountingProxy {
        let connections: Arc<Gauge> = Arc::default();
        let in_flight: Arc<Gauge> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let accepts: Arc<Mutex<Vec<String>>> = Arc::default();
        let query_answers: Arc<Mutex<Vec<String>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let (log, accept_log, answers) = (seen.clone(), accepts.clone(), query_answers.clone());
        let requests = in_flight.clone();
        let answered: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
        let answer_times = answered.clone();
        let faults: Arc<Faults> = Arc::default();
        let switch = faults.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (client, log, accept_log) = (client.clone(), log.clone(), accept_log.clone());
            let answers = answers.clone();
            let requests = requests.clone();
            let answer_times = answer_times.clone();
            let faults = switch.clone();
            async move {
                let arrived = Instant::now();
                let _open = requests.open();
                tokio::time::sleep(delay).await;
                let mut stalled = faults.stalled.subscribe();
                let _ = stalled.wait_for(|on| !*on).await;
                let failing = faults.failing_writes.lock().unwrap().clone();
                let request = match failing {
                    Some(fragment) if request.method() != axum::http::Method::GET => {
                        let (parts, body) = request.into_parts();
                        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                        let path = percent_decoded(parts.uri.path());
                        let text = String::from_utf8_lossy(&body);
                        if path.contains(&fragment) || text.contains(&fragment) {
                            log.lock()
                                .unwrap()
                                .push(format!("FAILED {} {path}", parts.method));
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        axum::extract::Request::from_parts(parts, axum::body::Body::from(body))
                    }
                    _ => request,
                };
                let accept = request
                    .headers()
                    .get(axum::http::header::ACCEPT)
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                accept_log.lock().unwrap().push(accept);
                let response = forward(client, log, answers, upstream, request).await;
                answer_times.lock().unwrap().push((arrived, Instant::now()));
                response
            }
        });
        let listener = CountedListener {
            inner: listener,
            connections: connections.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingProxy {
            port,
            seen,
            accepts,
            query_answers,
            connections,
            in_flight,
            answered,
            faults,
            task: Arc::new(task),
        }
    }

    /// From now on, answers 503 to every write whose path or body contains `fragment` (`None`:
    /// stop).
    pub fn fail_writes_to(&self, fragment: Option<&str>) {
        *self.faults.failing_writes.lock().unwrap() = fragment.map(str::to_owned);
    }

    /// From now on, holds every request until `stall(false)`: storage that stopped answering.
    pub fn stall(&self, on: bool) {
        self.faults.stalled.send_replace(on);
    }

    /// The most connections and requests open at once so far.
    pub fn peaks(&self) -> Peaks {
        Peaks {
            connections: self.connections.peak.load(Ordering::SeqCst),
            requests: most_at_once(&self.answered.lock().unwrap()),
        }
    }

    /// Requests received and not yet answered, now.
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.now.load(Ordering::SeqCst)
    }

    /// Everything recorded so far.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Each request with its `Accept` header.
    pub fn with_accept(&self) -> Vec<(String, String)> {
        let seen = self.requests();
        let accepts = self.accepts.lock().unwrap().clone();
        seen.into_iter().zip(accepts).collect()
    }

    /// The answers to entity queries so far.
    pub fn query_answers(&self) -> Vec<String> {
        self.query_answers.lock().unwrap().clone()
    }

    /// What was recorded after the first `from` requests.
    pub fn since(&self, from: usize) -> Vec<String> {
        self.requests().split_off(from)
    }
}

impl Handler {
    /// A handler whose storage is `proxy` (plus `env`), once its background table creation is
    /// done, so what the proxy records next is request-path traffic only.
    pub async fn behind(proxy: &CountingProxy, env: &[(&str, &str)]) -> Handler {
        let mut cfg = HandlerConfig::with_storage(
            Mode::CustomHandler,
            &connection_string_for_port(proxy.port),
        );
        for (name, value) in env {
            cfg = cfg.env(name, value);
        }
        let h = Handler::spawn(cfg).await;
        let created = poll_until(
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async {
                let creates = proxy
                    .requests()
                    .iter()
                    .filter(|r| *r == "POST /Tables")
                    .count();
                (creates == 3).then_some(())
            },
        )
        .await;
        assert!(
            created.is_some(),
            "tables not created: {:?}",
            proxy.requests()
        );
        h
    }
}

async fn forward(
    client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
    answers: Arc<Mutex<Vec<String>>>,
    upstream: u16,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path.clone(), |pq| pq.as_str().to_owned());
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    // The account segment says nothing; drop it so tests compare the table and key part.
    let shown = path.splitn(3, '/').nth(2).unwrap_or_default().to_owned();
    let shown = format!("{} /{}", parts.method, percent_decoded(&shown));
    let query = shown.starts_with("GET") && shown.ends_with("()");
    log.lock().unwrap().push(shown);
    let mut outgoing = client.request(
        parts.method.clone(),
        format!("http://127.0.0.1:{upstream}{path_and_query}"),
    );
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.body(body).send().await.expect("Azurite answers");
    let mut response = axum::response::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != axum::http::header::TRANSFER_ENCODING && name != axum::http::header::CONNECTION {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if query {
        answers
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&bytes).into_owned());
    }
    response.body(axum::body::Body::from(bytes)).unwrap()
}

fn percent_decoded(text: &str) -> String {
    text.replace("%27", "'")
        .replace("%28", "(")
        .replace("%29", ")")
        .replace("%3A", ":")
}

/// Counts the connections the proxy holds: each accepted stream carries a guard until it closes.
struct CountedListener {
    inner: tokio::net::TcpListener,
    connections: Arc<Gauge>,
}

impl axum::serve::Listener for CountedListener {
    type Io = CountedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let guard = self.connections.open();
        (
            CountedStream {
                stream,
                _guard: guard,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

struct CountedStream {
    stream: tokio::net::TcpStream,
    _guard: GaugeGuard,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The most of `intervals` open at once; one that ends as another starts does not overlap it.
fn most_at_once(intervals: &[(Instant, Instant)]) -> usize {
    let mut edges: Vec<(Instant, bool)> = intervals
        .iter()
        .flat_map(|&(start, end)| [(start, true), (end, false)])
        .collect();
    // At the same instant, ends before starts (false sorts first).
    edges.sort();
    let (mut open, mut most) = (0usize, 0usize);
    for (_, starts) in edges {
        if starts {
            open += 1;
            most = most.max(open);
        } else {
            open -= 1;
        }
    }
    most
}
