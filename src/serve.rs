//! The HTTP server loop: what a client connection may hold of the process.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so a client could open sockets
//! and say nothing until the open-file limit stopped every accept (1,100 idle sockets against the
//! common soft limit of 1,024 stopped all service). This loop serves the same router through
//! hyper directly, with:
//!
//! - a header-read timeout (`SERVER_HEADER_TIMEOUT_MS`): the whole head of each request must
//!   arrive within it, counted from when the server starts waiting, so a connection that opens and
//!   says nothing, sends headers a byte at a time, or idles between keep-alive requests is closed;
//! - a body-read timeout (`SERVER_BODY_TIMEOUT_MS`): every request body is wrapped in `TimedBody`,
//!   which fails once the deadline passes, and the handler reading it answers a JSON 408;
//! - a cap on connections served at once (`SERVER_MAX_CONNECTIONS`): past it the loop stops
//!   accepting, so the rest wait in the kernel's listen backlog instead of taking file descriptors;
//! - the soft open-file limit raised to the hard one at start-up (`raise_open_file_limit`), so the
//!   cap, not the limit, is what binds.
//!
//! Shutdown is graceful as before: stop accepting, let in-flight requests finish, close idle
//! connections.

use crate::configuration::ConnectionSettings;
use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Headers in one request (Kestrel's `MaxRequestHeaderCount`): the API answers more with a JSON 431
/// (`api::refuse_oversized`), and hyper's own cap is set above it so that answer is the one given.
pub const MAX_HEADER_COUNT: usize = 100;

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            None
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        // Past hyper's own limit it answers a bodyless 431; above ours, so ours (JSON) binds.
        .max_headers(MAX_HEADER_COUNT * 10);
    let body_timeout = settings.body_timeout;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken: back off a
                    // moment rather than spin, and keep serving the connections already open.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let request = request.map(|body| Body::new(TimedBody::new(body, body_timeout)));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A connection's own end (a timeout, a reset, a client that went away) is the
            // client's business: nothing to log at our level.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The request body did not arrive within `SERVER_BODY_TIMEOUT_MS`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimedOut(pub Duration);

/// A request body that fails once its deadline, set when the request's head arrived, has passed.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Instant,
    /// Armed on the first poll: a request whose body nobody reads costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            timer: None,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
