//! Resource bounds under hostile load: peak memory with many distinct huge queries. Every loop here
//! is bounded in count and runs against the handler on 127.0.0.1 only.

use crate::harness::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_huge_queries_do_not_grow_memory() {
    const HUGE: usize = 2000; // 60 KiB query strings (the most a client URI holds is 64 KiB), distinct
    const LARGE: usize = 2000; // just under the 4,096-byte URL limit, each distinct
    const IN_FLIGHT: usize = 16;
    const BOUND_MIB: u64 = 150;
    let h = Handler::start().await;
    h.register_ok(&serde_json::json!({"serviceName": "a", "endpoint": "https://a.example.com"}))
        .await;
    let before = h.peak_rss_kib();
    let started = Instant::now();
    let query = |i: usize, len: usize| {
        let tag = format!("{i:08}");
        format!(
            "/api/ServiceDiscovery?tags={tag}{}",
            "x".repeat(len - tag.len())
        )
    };
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let requests: Vec<String> = (0..HUGE)
        .map(|i| query(i, 60 * 1024))
        .chain((0..LARGE).map(|i| query(i, 4000)))
        .collect();
    for chunk in requests.chunks(IN_FLIGHT) {
        let answers = futures::future::join_all(
            chunk
                .iter()
                .map(|path| h.request(reqwest::Method::GET, path, None)),
        )
        .await;
        for r in answers {
            *statuses.entry(r.status).or_default() += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the attack loop is bounded in time too"
        );
    }
    let peak = h.peak_rss_kib();
    eprintln!(
        "{} requests in {:?}: statuses {statuses:?}; VmHWM {} MiB before, {} MiB after",
        HUGE + LARGE,
        started.elapsed(),
        before / 1024,
        peak / 1024
    );
    assert_eq!(statuses.get(&414), Some(&HUGE), "{statuses:?}");
    assert_eq!(statuses.get(&200), Some(&LARGE), "{statuses:?}");
    assert!(
        peak < BOUND_MIB * 1024,
        "peak RSS {} MiB over the {BOUND_MIB} MiB bound",
        peak / 1024
    );
}

/// (soft, hard) `Max open files` of a process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

/// Whether the server has closed this connection (EOF or reset), waiting at most `wait`.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 or similar before the close
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_connections_do_not_stop_service() {
    use tokio::io::AsyncWriteExt;
    const IDLE: usize = 2000;
    const SLOW: usize = 1000;
    const HEADER_TIMEOUT_MS: u64 = 3000;
    // This test process holds all 3,000 client ends itself.
    let own_limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        own_limit > (IDLE + SLOW + 500) as u64,
        "the test needs an open-file limit above {}, has {own_limit}",
        IDLE + SLOW + 500
    );
    let mut cfg = HandlerConfig::new(Mode::CustomHandler)
        .env("SERVER_HEADER_TIMEOUT_MS", &HEADER_TIMEOUT_MS.to_string());
    // Started with the common default soft limit; the handler raises it to the hard one.
    cfg.open_files_soft = Some(1024);
    let h = Handler::spawn(cfg).await;
    let (soft, hard) = open_file_limits(h.pid());
    assert_eq!(
        soft, hard,
        "the soft open-file limit must be raised to the hard one"
    );

    let address = format!("127.0.0.1:{}", h.port);
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect(&address).await);
    }
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut stream = connect(&address).await;
        stream
            .write_all(b"GET /api/ServiceDiscovery HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    // The slow ones keep trickling header bytes, one per 500 ms, for 6 s: past the header timeout,
    // which bounds the whole head, however steadily it trickles.
    let opened = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..12 {
            for stream in slow.iter_mut() {
                let _ = stream.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        slow
    });

    // A normal request on a fresh connection is served at once.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let r = client.get(h.url("/")).send().await;
        took.push(started.elapsed());
        assert!(
            r.as_ref().is_ok_and(|r| r.status() == 200),
            "with {IDLE} idle and {SLOW} slow connections open: {r:?}"
        );
        let r = h.discover("").await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    took.sort();
    eprintln!("GET / with {IDLE} idle and {SLOW} slow-header connections open: {took:?}");
    assert!(
        took[2] < Duration::from_secs(1),
        "median {:?} (generous bound 1 s)",
        took[2]
    );

    // Both kinds are closed by the server within about the header timeout (the bound is generous).
    let wait = Duration::from_millis(HEADER_TIMEOUT_MS) + Duration::from_secs(10);
    let mut idle_closed = 0;
    for stream in idle.iter_mut() {
        if closed_by_server(stream, wait.saturating_sub(opened.elapsed())).await {
            idle_closed += 1;
        }
    }
    let mut slow = trickle.await.unwrap();
    let mut slow_closed = 0;
    for stream in slow.iter_mut() {
        if closed_by_server(stream, wait.saturating_sub(opened.elapsed())).await {
            slow_closed += 1;
        }
    }
    eprintln!(
        "closed by the server: {idle_closed}/{IDLE} idle, {slow_closed}/{SLOW} slow, {:?} after opening",
        opened.elapsed()
    );
    assert_eq!((idle_closed, slow_closed), (IDLE, SLOW));
}

/// A connection the handler's listener takes within 5 s (a server that stopped accepting leaves
/// it in the backlog until the kernel gives up, minutes later).
async fn connect(address: &str) -> tokio::net::TcpStream {
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .expect("the handler stopped accepting connections")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_a_json_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY_TIMEOUT_MS: u64 = 1500;
    let h = Handler::start_with(&[("SERVER_BODY_TIMEOUT_MS", &BODY_TIMEOUT_MS.to_string())]).await;
    let mut stream = connect(&format!("127.0.0.1:{}", h.port)).await;
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/ServiceRegistrar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"serviceName\":",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer within 15 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert!(answer.contains(r#""field":"body""#), "{answer}");
    assert!(took >= Duration::from_millis(BODY_TIMEOUT_MS), "{took:?}");
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    const HEADER_TIMEOUT_MS: u64 = 1500;
    let h = Handler::start_with(&[
        ("SERVER_MAX_CONNECTIONS", "4"),
        ("SERVER_HEADER_TIMEOUT_MS", &HEADER_TIMEOUT_MS.to_string()),
    ])
    .await;
    // Four silent connections take every slot (the harness's readiness probe has closed its own).
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect(&format!("127.0.0.1:{}", h.port)).await);
    }
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = client.get(h.url("/")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    eprintln!("a request over a 4-connection cap held by silent sockets was served after {took:?}");
    assert!(
        took >= Duration::from_millis(HEADER_TIMEOUT_MS / 2),
        "served at once ({took:?}): the cap did not hold"
    );
}
