//! `bench-tool proxy --upstream PORT`: a counting TCP proxy on 127.0.0.1 in front of Azurite, so the
//! benchmark can say how many storage requests and bytes one API call costs.
//!
//! Prints `{"port": P, "control": Q}`; connections to P are forwarded to 127.0.0.1:PORT. A
//! connection to Q gets the counts so far as one JSON line and is closed: bytes each way, TCP
//! connections, and requests (occurrences of ` HTTP/1.1\r\n`, the end of a request line, in the
//! client-to-storage direction; a body holding that exact text would be miscounted, which JSON
//! table bodies do not). Stops by itself after an hour.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    up: AtomicU64,
    down: AtomicU64,
    requests: AtomicU64,
    connections: AtomicU64,
}

const REQUEST_LINE_END: &[u8] = b" HTTP/1.1\r\n";

pub async fn run(flags: &std::collections::HashMap<String, String>) {
    let upstream: u16 = super::flag(flags, "upstream", None);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!(
        "{}",
        serde_json::json!({
            "port": listener.local_addr().unwrap().port(),
            "control": control.local_addr().unwrap().port(),
        })
    );
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = control.accept().await {
            let line = serde_json::json!({
                "bytes_up": c.up.load(Ordering::SeqCst),
                "bytes_down": c.down.load(Ordering::SeqCst),
                "requests": c.requests.load(Ordering::SeqCst),
                "connections": c.connections.load(Ordering::SeqCst),
            });
            let _ = socket.write_all(format!("{line}\n").as_bytes()).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                counts.connections.fetch_add(1, Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let up = pump(client_read, server_write, counts.clone(), true);
                let down = pump(server_read, client_write, counts, false);
                tokio::join!(up, down);
            });
        }
    });
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counts: Arc<Counts>,
    upward: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    // The last bytes of the previous read, so a request line split across reads still counts.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if upward {
            counts.up.fetch_add(n as u64, Ordering::SeqCst);
            carry.extend_from_slice(&buf[..n]);
            let found = carry
                .windows(REQUEST_LINE_END.len())
                .filter(|w| *w == REQUEST_LINE_END)
                .count();
            counts.requests.fetch_add(found as u64, Ordering::SeqCst);
            let keep = carry.len().min(REQUEST_LINE_END.len() - 1);
            carry.drain(..carry.len() - keep);
        } else {
            counts.down.fetch_add(n as u64, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
