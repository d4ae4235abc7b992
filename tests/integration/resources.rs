//! Resource bounds under hostile load: peak memory with many distinct huge queries. Every loop here
//! is bounded in count and runs against the handler on 127.0.0.1 only.

use crate::harness::*;
use std::time::{Duration, Instant};

/// The handler's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_huge_queries_do_not_grow_memory() {
    const HUGE: usize = 2000; // 60 KiB query strings (the most a client URI holds is 64 KiB), distinct
    const LARGE: usize = 2000; // just under the 4,096-byte URL limit, each distinct
    const IN_FLIGHT: usize = 16;
    const BOUND_MIB: u64 = 150;
    let h = Handler::start().await;
    h.register_ok(&serde_json::json!({"serviceName": "a", "endpoint": "https://a.example.com"}))
        .await;
    let before = peak_rss_kib(h.pid());
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
    let peak = peak_rss_kib(h.pid());
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
