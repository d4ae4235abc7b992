//! Issue 4 resolver: GET /api/ServiceResolver picks one eligible instance at random in proportion
//! to weight / cost. Statistical checks run 1,000-2,000 local calls.

use crate::harness::*;
use crate::instances::{
    assert_item_shape, deregister, items, register_instance, set_last_heartbeat, sweep_summary,
};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

/// An HTTP target that answers 200 only after `delay`.
struct SlowTarget {
    url: String,
}

impl SlowTarget {
    fn start(delay: Duration) -> SlowTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    thread::sleep(delay);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                    let _ = stream.flush();
                });
            }
        });
        SlowTarget {
            url: format!("http://127.0.0.1:{port}/health"),
        }
    }
}

async fn resolve(h: &Handler, query: &str) -> Resp {
    h.request(
        reqwest::Method::GET,
        &format!("/api/ServiceResolver?{query}"),
        None,
    )
    .await
}

/// Check a 200 resolver body; returns (the chosen item, candidates).
fn resolved(r: &Resp) -> (Value, u64) {
    assert_eq!(r.status, 200, "resolver: {} {}", r.status, r.text);
    r.assert_json_content_type();
    let v = r.json();
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    assert_eq!(k, vec!["candidates", "instance", "timestamp"], "{v}");
    assert_item_shape(&v["instance"]);
    assert_iso_utc(v["timestamp"].as_str().unwrap());
    let c = v["candidates"]
        .as_u64()
        .unwrap_or_else(|| panic!("candidates must be a count: {v}"));
    (v["instance"].clone(), c)
}

/// Resolve `n` times (16 at a time); returns picks per instanceId and the set of candidate counts.
async fn tally(h: &Handler, query: &str, n: usize) -> (HashMap<String, u64>, Vec<u64>) {
    let results: Vec<Resp> = futures::stream::iter(0..n)
        .map(|_| resolve(h, query))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut picks: HashMap<String, u64> = HashMap::new();
    let mut candidates = vec![];
    for r in &results {
        let (inst, c) = resolved(r);
        let id = inst["instanceId"].as_str().unwrap_or("-").to_string();
        *picks.entry(id).or_default() += 1;
        if !candidates.contains(&c) {
            candidates.push(c);
        }
    }
    (picks, candidates)
}

/// The contract's selection probability of instance `i`: one random draw in proportion to
/// weight / cost.
fn expected_share(weights: &[f64], costs: &[f64], i: usize) -> f64 {
    let score = |j: usize| weights[j] / costs[j];
    let total: f64 = (0..weights.len()).map(score).sum();
    score(i) / total
}

/// cost = (EWMA ms + 25) x (1 + consecutiveFailures), from a discovery item.
fn cost_of(item: &Value) -> f64 {
    let hs = &item["healthStatus"];
    let ewma = hs["responseTimeEwma"]
        .as_f64()
        .unwrap_or_else(|| panic!("a checked instance shows responseTimeEwma: {item}"));
    let failures = hs["consecutiveFailures"].as_f64().unwrap_or(0.0);
    (ewma + 25.0) * (1.0 + failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weights_split_traffic_proportionally() {
    let h = Handler::start_with(&[("HEALTH_PROBE_JITTER_MS", "0")]).await;
    let t1 = HttpTarget::status(200);
    let t3 = HttpTarget::status(200);
    register_instance(
        &h,
        "api",
        "pool",
        Some("w1"),
        json!({"endpoint": t1.url, "weight": 1}),
    )
    .await;
    register_instance(
        &h,
        "api",
        "pool",
        Some("w3"),
        json!({"endpoint": t3.url, "weight": 3}),
    )
    .await;
    sweep_summary(&h).await;
    let v = h.discover_ok("serviceName=pool&healthyOnly=true").await;
    let s = items(&v);
    assert_eq!(s.len(), 2, "both instances healthy after the sweep: {v}");
    assert_eq!(s[0]["weight"], 1);
    assert_eq!(s[1]["weight"], 3);
    let costs = [cost_of(&s[0]), cost_of(&s[1])];
    let e0 = s[0]["healthStatus"]["responseTimeEwma"].as_f64().unwrap();
    let e1 = s[1]["healthStatus"]["responseTimeEwma"].as_f64().unwrap();
    assert!(
        (e0 - e1).abs() < 50.0,
        "two equal local targets should measure alike: {e0} vs {e1}"
    );
    // 0.25 exactly when both costs are equal (about 0.26 with 1 ms vs 3 ms of probe noise).
    let expected = expected_share(&[1.0, 3.0], &costs, 0);

    let n = 2000;
    let (picks, candidates) = tally(&h, "serviceName=pool", n).await;
    assert_eq!(candidates, vec![2], "two eligible instances");
    let w1 = *picks.get("w1").unwrap_or(&0) as f64 / n as f64;
    let w3 = *picks.get("w3").unwrap_or(&0) as f64 / n as f64;
    assert_eq!(picks.len(), 2, "only w1 and w3 can be picked: {picks:?}");
    assert!(
        (w1 - expected).abs() <= 0.04,
        "weight 1 of 4 got {w1:.3} of {n} picks; expected {expected:.3} +- 0.04 (costs {costs:?}); picks {picks:?}"
    );
    assert!(
        (w3 - (1.0 - expected)).abs() <= 0.04,
        "weight 3 of 4 got {w3:.3}; expected {:.3} +- 0.04",
        1.0 - expected
    );
    // The resolver never contacts the instances: the targets saw only the sweep's probes.
    let hits = t1.hits() + t3.hits();
    assert!(
        hits <= 4,
        "{hits} requests reached the targets; only the sweep probes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unhealthy_instance_is_never_chosen() {
    let h = Handler::start_with(&[
        ("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
    ])
    .await;
    let up = HttpTarget::status(200);
    let down = HttpTarget::status(503);
    register_instance(&h, "api", "mixed", Some("up"), json!({"endpoint": up.url})).await;
    register_instance(
        &h,
        "api",
        "mixed",
        Some("down"),
        json!({"endpoint": down.url, "weight": 1000}),
    )
    .await;
    sweep_summary(&h).await;
    let tables = h.tables();
    assert_eq!(
        tables
            .row(&h.health_table, "api", "mixed:up")
            .await
            .unwrap()["status"],
        "healthy"
    );
    assert_eq!(
        tables
            .row(&h.health_table, "api", "mixed:down")
            .await
            .unwrap()["status"],
        "unhealthy"
    );

    let (picks, candidates) = tally(&h, "serviceName=mixed", 500).await;
    assert_eq!(
        picks,
        HashMap::from([("up".to_string(), 500)]),
        "an unhealthy instance is never chosen"
    );
    assert_eq!(candidates, vec![1]);

    // A never-checked instance is not eligible while a healthy one exists.
    register_instance(
        &h,
        "api",
        "mixed",
        Some("fresh"),
        json!({"endpoint": up.url}),
    )
    .await;
    let (picks, candidates) = tally(&h, "serviceName=mixed", 300).await;
    assert_eq!(picks, HashMap::from([("up".to_string(), 300)]));
    assert_eq!(candidates, vec![1]);

    // With no healthy one left, the never-checked one is; the unhealthy one still is not.
    let r = deregister(&h, "serviceName=mixed&serviceType=api&instanceId=up").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (picks, candidates) = tally(&h, "serviceName=mixed", 300).await;
    assert_eq!(picks, HashMap::from([("fresh".to_string(), 300)]));
    assert_eq!(candidates, vec![1]);

    // Only the unhealthy one left: nothing eligible.
    let r = deregister(&h, "serviceName=mixed&serviceType=api&instanceId=fresh").await;
    assert_eq!(r.status, 200, "{}", r.text);
    resolve(&h, "serviceName=mixed")
        .await
        .assert_error(404, Some("serviceName"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_instance_gets_less_traffic() {
    let h = Handler::start_with(&[("HEALTH_PROBE_JITTER_MS", "0")]).await;
    let fast = HttpTarget::status(200);
    let slow = SlowTarget::start(Duration::from_millis(150));
    register_instance(
        &h,
        "api",
        "lat",
        Some("fast"),
        json!({"endpoint": fast.url}),
    )
    .await;
    register_instance(
        &h,
        "api",
        "lat",
        Some("slow"),
        json!({"endpoint": slow.url}),
    )
    .await;
    sweep_summary(&h).await;
    let v = h.discover_ok("serviceName=lat&healthyOnly=true").await;
    let s = items(&v);
    assert_eq!(s.len(), 2, "both healthy: {v}");
    assert_eq!(s[0]["weight"], s[1]["weight"], "equal weights");
    let ewma_fast = s[0]["healthStatus"]["responseTimeEwma"].as_f64().unwrap();
    let ewma_slow = s[1]["healthStatus"]["responseTimeEwma"].as_f64().unwrap();
    assert!(
        ewma_slow >= 100.0 && ewma_fast < 100.0,
        "responseTimeEwma fast {ewma_fast} ms, slow {ewma_slow} ms"
    );

    // About 0.15 for 150 ms against ~1 ms.
    let expected = expected_share(&[1.0, 1.0], &[cost_of(&s[0]), cost_of(&s[1])], 1);

    let n = 1000;
    let (picks, candidates) = tally(&h, "serviceName=lat", n).await;
    assert_eq!(candidates, vec![2]);
    let slow_share = *picks.get("slow").unwrap_or(&0) as f64 / n as f64;
    let fast_share = *picks.get("fast").unwrap_or(&0) as f64 / n as f64;
    assert!(
        slow_share < 0.40 && fast_share > 0.60,
        "the slow instance must get clearly less than half: slow {slow_share:.3}, fast {fast_share:.3}"
    );
    assert!(
        (slow_share - expected).abs() <= 0.05,
        "slow share {slow_share:.3}, expected {expected:.3} +- 0.05 from weight / cost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_eligible_is_404() {
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "0"),
        ("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
    ])
    .await;
    resolve(&h, "serviceName=ghost")
        .await
        .assert_error(404, Some("serviceName"));

    // Weight 0 only.
    register_instance(&h, "api", "zero", Some("z"), json!({"weight": 0})).await;
    resolve(&h, "serviceName=zero")
        .await
        .assert_error(404, Some("serviceName"));

    // Expired only.
    register_instance(&h, "api", "old", Some("o"), json!({"ttlSeconds": 5})).await;
    set_last_heartbeat(
        &h,
        "api",
        "old:o",
        chrono::Utc::now() - chrono::Duration::seconds(60),
    )
    .await;
    resolve(&h, "serviceName=old")
        .await
        .assert_error(404, Some("serviceName"));

    // Weight 0 never chosen beside an eligible one; an expired one neither.
    register_instance(&h, "api", "zero", Some("one"), json!({"weight": 1})).await;
    register_instance(&h, "api", "old", Some("live"), json!({"ttlSeconds": 600})).await;
    let (picks, candidates) = tally(&h, "serviceName=zero", 200).await;
    assert_eq!(picks, HashMap::from([("one".to_string(), 200)]));
    assert_eq!(candidates, vec![1]);
    let (picks, candidates) = tally(&h, "serviceName=old", 200).await;
    assert_eq!(picks, HashMap::from([("live".to_string(), 200)]));
    assert_eq!(candidates, vec![1]);

    // Unhealthy only.
    let down = HttpTarget::status(503);
    register_instance(&h, "api", "sick", Some("s1"), json!({"endpoint": down.url})).await;
    register_instance(&h, "api", "sick", Some("s2"), json!({"endpoint": down.url})).await;
    sweep_summary(&h).await;
    assert_eq!(
        h.tables()
            .row(&h.health_table, "api", "sick:s1")
            .await
            .unwrap()["status"],
        "unhealthy"
    );
    resolve(&h, "serviceName=sick")
        .await
        .assert_error(404, Some("serviceName"));

    // Filters that match nothing.
    register_instance(
        &h,
        "api",
        "tagged",
        Some("t"),
        json!({"tags": ["blue"], "version": "1.0.0"}),
    )
    .await;
    for q in [
        "serviceName=tagged&tags=green",
        "serviceName=tagged&version=2.0.0",
        "serviceName=tagged&metadata=zone=1",
        "serviceName=tagged&serviceType=db",
    ] {
        resolve(&h, q).await.assert_error(404, Some("serviceName"));
    }
    let (inst, _) = resolved(&resolve(&h, "serviceName=tagged&tags=blue&version=1.0.0").await);
    assert_eq!(inst["instanceId"], "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_filters_and_bad_input() {
    let h = Handler::start_with(&[("HEALTH_PROBE_JITTER_MS", "0")]).await;
    let up = HttpTarget::status(200);
    register_instance(
        &h,
        "api",
        "flt",
        Some("a"),
        json!({"endpoint": up.url, "tags": ["canary"], "version": "2.0.0", "metadata": {"zone": 1}}),
    )
    .await;
    register_instance(
        &h,
        "api",
        "flt",
        Some("b"),
        json!({"endpoint": up.url, "tags": ["stable"], "version": "1.0.0", "metadata": {"zone": 2}}),
    )
    .await;
    register_instance(
        &h,
        "db",
        "flt",
        Some("c"),
        json!({"endpoint": up.url, "version": "3.0.0"}),
    )
    .await;
    sweep_summary(&h).await;

    for (q, want) in [
        ("serviceName=flt&tags=canary", "a"),
        ("serviceName=flt&version=1.0.0", "b"),
        ("serviceName=flt&metadata=zone=1", "a"),
        ("serviceName=flt&serviceType=db", "c"),
        (
            "serviceName=flt&serviceType=api&tags=stable&metadata=zone=2",
            "b",
        ),
    ] {
        let (picks, candidates) = tally(&h, q, 40).await;
        assert_eq!(picks, HashMap::from([(want.to_string(), 40)]), "?{q}");
        assert_eq!(candidates, vec![1], "?{q}");
    }
    let (picks, candidates) = tally(&h, "serviceName=flt", 200).await;
    assert_eq!(candidates, vec![3]);
    assert_eq!(
        picks.len(),
        3,
        "three equal instances all get picked: {picks:?}"
    );
    let (inst, _) = resolved(&resolve(&h, "serviceName=flt&tags=canary").await);
    assert_eq!(inst["serviceName"], "flt");
    assert_eq!(inst["serviceType"], "api");
    assert_eq!(inst["endpoint"], json!(up.url));
    assert_eq!(inst["healthStatus"]["status"], "healthy");
    assert_eq!(inst["weight"], 100);
    assert_eq!(inst["expired"], false);

    // Bad input.
    for (q, field) in [
        ("", "serviceName"),
        ("serviceName=", "serviceName"),
        ("serviceType=api", "serviceName"),
        ("tags=canary", "serviceName"),
        ("serviceName=a%2Fb", "serviceName"),
        ("serviceName=flt%27%20or%20RowKey%20ne%20%27", "serviceName"),
        ("serviceName=flt&serviceType=a%20b", "serviceType"),
        ("serviceName=flt&metadata=zone", "metadata"),
    ] {
        let r = if q.is_empty() {
            h.request(reqwest::Method::GET, "/api/ServiceResolver", None)
                .await
        } else {
            resolve(&h, q).await
        };
        let v = r.assert_error(400, Some(field));
        assert!(v.get("instance").is_none(), "?{q}: {v}");
    }
    let r = h
        .request(
            reqwest::Method::POST,
            "/api/ServiceResolver?serviceName=flt",
            Some("{}".into()),
        )
        .await;
    assert_eq!(r.status, 405, "{}", r.text);

    // Envelope form.
    let res = h
        .invoke(
            "ServiceResolver",
            &ReqEnvelope::new("ServiceResolver", "GET")
                .query(&[("serviceName", "flt"), ("tags", "canary")])
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    let v = res.json();
    assert_eq!(v["candidates"], 1);
    assert_eq!(v["instance"]["instanceId"], "a");
    assert_item_shape(&v["instance"]);
    let res = h
        .invoke(
            "ServiceResolver",
            &ReqEnvelope::new("ServiceResolver", "GET")
                .query(&[("serviceType", "api")])
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 400, "{}", res.raw);
    assert_error_body(&res.json(), Some("serviceName"));
    let res = h
        .invoke(
            "ServiceResolver",
            &ReqEnvelope::new("ServiceResolver", "GET")
                .query(&[("serviceName", "nobody")])
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 404, "{}", res.raw);
    assert_error_body(&res.json(), Some("serviceName"));
}
