//! The HTTP transport under the Tables client: reqwest, with at most `STORAGE_MAX_CONNECTIONS`
//! storage requests in flight per process, so storage never holds more of the plan's outbound
//! connections than its share (docs/performance.md, "Connection limits per plan").
//!
//! A semaphore of our own, because the maintained layers do not bound this: reqwest and
//! hyper-util's pool limit only the idle connections (`pool_max_idle_per_host`), and reqwest's
//! `connector_layer` (where tower's concurrency limit would go) bounds connects in progress, not
//! connections held. Over HTTP/1.1 a request in flight holds one connection, and the pool opens a
//! new one only when none is idle, so N requests in flight means N connections open, N idle at
//! most. Not exactly: a request that gets its slot just as the last holder's connection is on its
//! way back to the pool finds none idle and opens one, which the pool then keeps or closes, so
//! for a moment the connections can exceed N (docs/performance.md says by how much we saw).
//!
//! A slot is held until the response body has been read or dropped, not merely until its headers
//! arrive: the connection is busy until then. It sits below the crate's retry policy, so each
//! attempt takes a slot of its own and a retry's back-off holds none. Waiting for a slot happens
//! inside the caller's storage budget (`Store::within_budget`): a saturated store answers 503 after
//! one `STORAGE_TIMEOUT_MS`, never an unbounded wait.

use azure_core::error::{Error, ErrorKind};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Debug)]
pub(super) struct CappedTransport {
    http: reqwest::Client,
    slots: Arc<Semaphore>,
}

impl CappedTransport {
    /// `max` is at least 1 (configuration refuses 0).
    pub fn new(http: reqwest::Client, max: usize) -> Self {
        CappedTransport {
            http,
            slots: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }
}

#[async_trait::async_trait]
impl azure_core::HttpClient for CappedTransport {
    async fn execute_request(
        &self,
        request: &azure_core::Request,
    ) -> azure_core::Result<azure_core::Response> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| Error::message(ErrorKind::Other, "storage request slots closed"))?;
        let response = self.http.execute_request(request).await?;
        let (status, headers, body) = response.deconstruct();
        // The slot goes with the body: released when the crate has read it to the end or dropped it.
        let body = body.map(move |chunk| {
            let _held = &slot;
            chunk
        });
        Ok(azure_core::Response::new(status, headers, Box::pin(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::HttpClient;

    /// A local server whose every answer is `body`: 127.0.0.1 only.
    async fn serve(body: &'static str) -> url::Url {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(move || async move { body });
        tokio::spawn(async move { axum::serve(listener, app).await });
        url::Url::parse(&format!("http://127.0.0.1:{port}/t()")).unwrap()
    }

    #[tokio::test]
    async fn a_slot_is_held_until_the_body_is_read_and_then_freed() {
        let url = serve("x".repeat(64 * 1024).leak()).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let transport = CappedTransport::new(http, 1);
        let request = azure_core::Request::new(url, azure_core::Method::Get);

        let response = transport.execute_request(&request).await.unwrap();
        assert_eq!(
            transport.slots.available_permits(),
            0,
            "the headers are in, the body is not"
        );
        // A second request waits for the slot while the first body is unread.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            transport.execute_request(&request),
        )
        .await;
        assert!(waiting.is_err(), "a second request got a slot");

        let body = response.into_body().collect().await.unwrap();
        assert_eq!(body.len(), 64 * 1024);
        assert_eq!(transport.slots.available_permits(), 1);

        // A body dropped unread frees its slot too.
        let response = transport.execute_request(&request).await.unwrap();
        assert_eq!(transport.slots.available_permits(), 0);
        drop(response);
        assert_eq!(transport.slots.available_permits(), 1);
    }
}
