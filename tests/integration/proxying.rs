//! Requests shaped as the host's *proxying* mode (`customHandler.enableProxyingHttpRequest`) sends
//! them, so the handler is known to work if host.json ever switches from forwarding to it.
//!
//! What differs from forwarding (docs/functions-host-protocol.md, "Proxying"): the host streams the
//! caller's request through YARP, so the body may arrive chunked (forwarding copies only bodies with
//! a Content-Length), `Host` is the handler's own `127.0.0.1:<port>`, the caller's `User-Agent`
//! stays, and the host sets `x-ms-invocation-id` beside its two `X-Azure-Functions-*` headers.
//! Written as raw HTTP/1.1 so the chunked framing is exactly what goes on the wire.

use crate::harness::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one raw request and returns (status, body) of the answer (the handler closes on
/// `Connection: close`).
async fn raw_exchange(port: u16, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the handler");
    stream.write_all(request).await.expect("write request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
        .await
        .expect("the handler answers within 15 s")
        .expect("read answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn unchunk(mut framed: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = framed.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&rest[..size]);
        framed = &rest[size + 2..];
    }
    body
}

fn chunked(body: &str, chunk: usize) -> String {
    let mut framed = String::new();
    for piece in body.as_bytes().chunks(chunk) {
        framed.push_str(&format!("{:x}\r\n", piece.len()));
        framed.push_str(std::str::from_utf8(piece).expect("ASCII body"));
        framed.push_str("\r\n");
    }
    framed.push_str("0\r\n\r\n");
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_chunked_registration_is_served_like_a_forwarded_one() {
    let h = Handler::start().await;
    let invocation = uuid::Uuid::new_v4().to_string();
    let body = recipe_body().to_string();
    let request = format!(
        "POST /api/ServiceRegistrar?code=proxy-secret-key HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\
         User-Agent: curl/8.5.0\r\n\
         Content-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\
         X-Forwarded-For: 203.0.113.7\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Azure-Functions-HostVersion: {HOST_VERSION}\r\n\
         X-Azure-Functions-InvocationId: {invocation}\r\n\
         x-ms-invocation-id: {invocation}\r\n\
         Connection: close\r\n\r\n{framed}",
        port = h.port,
        framed = chunked(&body, 17),
    );
    let (status, answer) = raw_exchange(h.port, request.as_bytes()).await;
    assert_eq!(status, 200, "chunked proxied registration: {answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
    assert_eq!(answer["serviceId"], "api:test-api");

    let row = h
        .tables()
        .row(&h.registry_table, "api", "test-api")
        .await
        .expect("the chunked body was read whole and the row written");
    assert_eq!(row["endpoint"], "https://test-api.example.com");

    // The request line is logged with the host's invocation id and without the key.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.logs().contains(&invocation) {
        assert!(
            Instant::now() < deadline,
            "no request log line with invocation id {invocation}:\n{}",
            h.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !h.logs().contains("proxy-secret-key"),
        "the function key reached the log:\n{}",
        h.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_discovery_answers_with_the_local_host_header() {
    let h = Handler::start().await;
    h.register_ok(&recipe_body()).await;
    let request = format!(
        "GET /api/ServiceDiscovery?serviceType=api HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\
         User-Agent: Mozilla/5.0\r\n\
         x-ms-invocation-id: {id}\r\n\
         X-Azure-Functions-InvocationId: {id}\r\n\
         X-Azure-Functions-HostVersion: {HOST_VERSION}\r\n\
         Connection: close\r\n\r\n",
        port = h.port,
        id = uuid::Uuid::new_v4(),
    );
    let (status, answer) = raw_exchange(h.port, request.as_bytes()).await;
    assert_eq!(status, 200, "proxied discovery: {answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
    assert_eq!(answer["count"], 1, "{answer}");
    assert_eq!(answer["services"][0]["serviceName"], "test-api");
}
