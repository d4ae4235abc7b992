//! `GET /metrics` on the `METRICS_BIND` listener (standalone): after known requests and one sweep,
//! the counters hold exactly what happened, read sample by sample (name and labels), never by
//! searching the body.

use crate::harness::*;
use serde_json::json;
use std::collections::BTreeMap;

/// One exposition parsed: (metric name, labels) → value. Comment lines and `# EOF` are skipped.
struct Samples(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Samples {
    fn parse(text: &str) -> Samples {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let (name, labels) = match key.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                    let labels = body
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (key, BTreeMap::new()),
            };
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(
                samples.insert((name.to_owned(), labels), value).is_none(),
                "duplicate sample {line}"
            );
        }
        Samples(samples)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0.get(&(name.to_owned(), labels)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:?}", self.0.keys()))
    }
}

async fn scrape(client: &reqwest::Client, base: &str) -> Samples {
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    Samples::parse(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_function_and_status_and_the_sweep_exactly() {
    let metrics_port = free_port();
    let base = format!("http://127.0.0.1:{metrics_port}");
    let h = Handler::spawn(
        HandlerConfig::new(Mode::Standalone)
            .env("METRICS_BIND", &format!("127.0.0.1:{metrics_port}"))
            // Only the manual sweep below runs: no scheduled one can change the counts.
            .env("HEALTH_MONITOR_SCHEDULE", "0 0 0 1 1 *")
            .env("HEALTH_PROBE_JITTER_MS", "0")
            .env("HEALTH_PROBE_TIMEOUT_MS", "2000")
            // Long enough that a repeated read is a hit however slow the machine is.
            .env("DISCOVERY_CACHE_TTL_MS", "600000")
            .env("RUST_LOG_FORMAT", "json"),
    )
    .await;
    let client = http_client();
    let before = scrape(&client, &base).await;
    assert_eq!(
        before.get(
            "registry_requests_total",
            &[("function", "ServiceRegistrar"), ("status", "200")]
        ),
        None
    );
    assert_eq!(
        before.value("registry_sweeps_total", &[("outcome", "succeeded")]),
        0.0
    );

    let (up, down) = (HttpTarget::status(200), HttpTarget::status(503));
    for (name, target) in [("up", &up), ("down", &down)] {
        h.register_ok(&json!({"serviceName": name, "serviceType": "api", "endpoint": target.url}))
            .await;
    }
    let refused = h
        .register(&json!({"serviceName": "a/b", "endpoint": "http://127.0.0.1:9/"}))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);

    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((up.hits(), down.hits()), (1, 1));

    let first = h.discover("").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let after_first = scrape(&client, &base).await;
    for _ in 0..2 {
        assert_eq!(h.discover("").await.status, 200);
    }
    let m = scrape(&client, &base).await;

    let requests = |function: &str, status: &str| {
        m.value(
            "registry_requests_total",
            &[("function", function), ("status", status)],
        )
    };
    assert_eq!(requests("ServiceRegistrar", "200"), 2.0);
    assert_eq!(requests("ServiceRegistrar", "400"), 1.0);
    assert_eq!(requests("HealthMonitor", "200"), 1.0);
    assert_eq!(requests("ServiceDiscovery", "200"), 3.0);
    assert_eq!(
        m.value(
            "registry_request_duration_seconds_count",
            &[("function", "ServiceRegistrar")]
        ),
        3.0
    );
    assert_eq!(
        m.value(
            "registry_request_duration_seconds_bucket",
            &[("function", "ServiceRegistrar"), ("le", "+Inf")]
        ),
        3.0
    );

    assert_eq!(
        m.value("registry_sweeps_total", &[("outcome", "succeeded")]),
        1.0
    );
    assert_eq!(
        m.value("registry_sweeps_total", &[("outcome", "failed")]),
        0.0
    );
    assert_eq!(m.value("registry_sweep_duration_seconds_count", &[]), 1.0);
    for (counter, n) in [
        ("probed", 2.0),
        ("healthy", 1.0),
        ("unhealthy", 1.0),
        ("skipped", 0.0),
    ] {
        assert_eq!(
            m.value("registry_last_sweep", &[("counter", counter)]),
            n,
            "{counter}"
        );
        assert_eq!(
            m.value("registry_sweep_services_total", &[("counter", counter)]),
            n,
            "{counter}"
        );
    }
    assert_eq!(m.value("registry_probes_in_flight", &[]), 0.0);
    for kind in ["unavailable", "unexpected", "contended"] {
        assert_eq!(
            m.value("registry_storage_errors_total", &[("kind", kind)]),
            0.0,
            "{kind}"
        );
    }
    // Nothing was written between the discoveries, so the two repeats are cache hits and fetch
    // nothing.
    assert_eq!(
        m.value("registry_cache_hits_total", &[])
            - after_first.value("registry_cache_hits_total", &[]),
        2.0
    );
    assert_eq!(
        m.value("registry_cache_misses_total", &[]),
        after_first.value("registry_cache_misses_total", &[])
    );
    // Scrapes are not requests, and nothing else has a function name.
    assert_eq!(
        m.get(
            "registry_requests_total",
            &[("function", "other"), ("status", "200")]
        ),
        None
    );

    // Under the host the same facts are log lines (docs/operations.md): one per change of health.
    let mut changes: Vec<(String, String, String)> = h
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "service health changed")
        .map(|v| {
            let field = |name: &str| v[name].as_str().unwrap_or_default().to_owned();
            (field("service_key"), field("status"), field("circuit"))
        })
        .collect();
    changes.sort();
    let change = |key: &str, status: &str, circuit: &str| {
        (key.to_owned(), status.to_owned(), circuit.to_owned())
    };
    assert_eq!(
        changes,
        vec![
            change("down", "unhealthy", "open"),
            change("up", "healthy", "closed")
        ],
        "{}",
        h.logs()
    );

    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(body["error"].is_string(), "{body}");
    let r = client.post(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["allow"].to_str().unwrap()),
        (405, "GET")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_bind_nothing_else_listens_and_api_has_no_metrics_route() {
    let h = Handler::spawn(HandlerConfig::new(Mode::Standalone)).await;
    let r = h.request(reqwest::Method::GET, "/metrics", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!h.logs().contains("metrics listening"), "{}", h.logs());
}

/// Refresh ahead (`src/store/cache.rs`): a discovery asked for steadily is read again in the
/// background before its cache entry lapses, so a write made elsewhere shows up within the TTL
/// while no discovery in between waits for storage: the miss counter does not move, the refresh
/// counter does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_asked_for_steadily_is_read_again_before_it_lapses_and_never_misses() {
    // Refreshes start at 4 s of the 8 s: the polls below (every 100 ms) have 4 s to land one.
    const TTL_MS: &str = "8000";
    let metrics_port = free_port();
    let base = format!("http://127.0.0.1:{metrics_port}");
    let h = Handler::spawn(
        HandlerConfig::new(Mode::Standalone)
            .env("METRICS_BIND", &format!("127.0.0.1:{metrics_port}"))
            .env("DISCOVERY_CACHE_TTL_MS", TTL_MS)
            .env("HEALTH_MONITOR_SCHEDULE", "0 0 0 1 1 *"),
    )
    .await;
    let client = reqwest::Client::new();
    h.register_instance("api", "first", None, json!({})).await;
    let query = "?serviceType=api";
    assert_eq!(h.discover_ok(query).await["count"], 1);
    let before = scrape(&client, &base).await;
    // Another replica registers: this process cannot know, only its TTL bounds how long it shows
    // the old answer.
    let endpoint = local_endpoint("later");
    h.tables()
        .upsert(
            &h.registry_table,
            &json!({"PartitionKey": "api", "RowKey": "later", "serviceName": "later",
                    "serviceType": "api", "endpoint": endpoint, "healthEndpoint": endpoint,
                    "version": "1.0.0", "tags": "[]", "metadata": "{}",
                    "registeredAt": "2026-12-01T05:00:00.000Z",
                    "lastHeartbeat": "2026-12-01T05:00:00.000Z"}),
        )
        .await;
    let seen = poll_until(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(100),
        || async { (h.discover_ok(query).await["count"] == 2).then_some(()) },
    )
    .await;
    assert!(seen.is_some(), "the write made elsewhere never showed up");
    let after = scrape(&client, &base).await;
    let moved = |name: &str| after.value(name, &[]) - before.value(name, &[]);
    assert_eq!(
        moved("registry_cache_misses_total"),
        0.0,
        "every discovery in between was served from the cache"
    );
    assert!(moved("registry_cache_hits_total") >= 2.0);
    // At least the page's (whose render read both tables anew).
    assert!(
        moved("registry_cache_refreshes_total") >= 1.0,
        "{:?}",
        moved("registry_cache_refreshes_total")
    );
}
