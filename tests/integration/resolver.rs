//! The resolver: GET /api/ServiceResolver picks one eligible instance at random in proportion
//! to weight / cost. Statistical checks run 1,000-2,000 local calls.
//!
//! The expected shares are worked out by hand from the rule docs/api.md documents (a draw in
//! proportion to `weight / cost`, `cost = (responseTimeEwma + 25 ms) x (1 + consecutiveFailures)`)
//! and written down as numbers, over health rows the test writes itself, so every cost is known
//! exactly. Computing them with a copy of the production formula from the handler's own output
//! would only check the handler against itself.

use crate::harness::*;
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
        .map(|_| h.resolve(query))
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

/// What a health row the test writes says about an instance's probes.
enum Probed {
    /// Written by our sweep: an average response time (ms) and the current run of failures.
    /// `responseTime` is set far from the average, so a resolver that used it would be seen.
    Sweep { ewma: f64, failures: u32 },
    /// Imitates a row the recipe's HealthMonitor wrote: its five properties, `responseTime` the
    /// only time.
    Recipe { response_time: i64 },
}

/// Writes a healthy HealthStatus row for one instance straight into the table (replacing what a
/// sweep wrote), so its cost under the documented rule is known exactly.
async fn write_health(h: &Handler, row_key: &str, probed: Probed) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let name = row_key.split(':').next().unwrap();
    let mut row = json!({
        "PartitionKey": "api", "RowKey": row_key, "serviceName": name,
        "status": "healthy", "lastChecked": now, "errorMessage": "",
    });
    match probed {
        Probed::Sweep { ewma, failures } => {
            for (k, v) in [
                ("responseTime", json!(400)),
                ("responseTimeEwma", json!(ewma)),
                ("responseTimeEwma@odata.type", json!("Edm.Double")),
                ("consecutiveFailures", json!(failures)),
                ("consecutiveSuccesses", json!(u32::from(failures == 0))),
                ("circuit", json!("closed")),
                ("lastTransition", json!(now)),
                ("openTrials", json!(0)),
                ("checkedBy", json!("resolver-test")),
            ] {
                row[k] = v;
            }
        }
        Probed::Recipe { response_time } => row["responseTime"] = json!(response_time),
    }
    let tables = h.tables();
    tables.create_table(&h.health_table).await;
    tables.upsert(&h.health_table, &row).await;
}

/// How far a share of `n` independent draws may stray from its probability `p`: 4.5 standard
/// deviations, a false alarm in about one run in 150,000.
fn tolerance(p: f64, n: usize) -> f64 {
    4.5 * (p * (1.0 - p) / n as f64).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weights_split_traffic_proportionally() {
    // No read cache: the health rows the test writes are what the next resolution reads.
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_JITTER_MS", "0"),
        ("DISCOVERY_CACHE_TTL_MS", "0"),
    ])
    .await;
    let t1 = HttpTarget::status(200);
    let t3 = HttpTarget::status(200);
    h.register_instance(
        "api",
        "pool",
        Some("w1"),
        json!({"endpoint": t1.url, "weight": 1}),
    )
    .await;
    h.register_instance(
        "api",
        "pool",
        Some("w3"),
        json!({"endpoint": t3.url, "weight": 3}),
    )
    .await;
    h.sweep_report().await;
    let v = h.discover_ok("serviceName=pool&healthyOnly=true").await;
    let s = items(&v);
    assert_eq!(s.len(), 2, "both instances healthy after the sweep: {v}");
    assert_eq!(s[0]["weight"], 1);
    assert_eq!(s[1]["weight"], 3);
    let e0 = s[0]["healthStatus"]["responseTimeEwma"].as_f64().unwrap();
    let e1 = s[1]["healthStatus"]["responseTimeEwma"].as_f64().unwrap();
    assert!(
        (e0 - e1).abs() < 50.0,
        "two equal local targets should measure alike: {e0} vs {e1}"
    );
    // Equal probes, written down: cost = (5 + 25) x (1 + 0) = 30 for both, so the split is the
    // weights': 1/30 : 3/30, w1's share 1 / (1 + 3) = 0.25.
    for instance in ["pool:w1", "pool:w3"] {
        write_health(
            &h,
            instance,
            Probed::Sweep {
                ewma: 5.0,
                failures: 0,
            },
        )
        .await;
    }
    let costs = [30.0, 30.0];
    let expected = 0.25;

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
    h.register_instance("api", "mixed", Some("up"), json!({"endpoint": up.url}))
        .await;
    h.register_instance(
        "api",
        "mixed",
        Some("down"),
        json!({"endpoint": down.url, "weight": 1000}),
    )
    .await;
    h.sweep_report().await;
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
    h.register_instance("api", "mixed", Some("fresh"), json!({"endpoint": up.url}))
        .await;
    let (picks, candidates) = tally(&h, "serviceName=mixed", 300).await;
    assert_eq!(picks, HashMap::from([("up".to_string(), 300)]));
    assert_eq!(candidates, vec![1]);

    // With no healthy one left, the never-checked one is; the unhealthy one still is not.
    let r = h
        .deregister("serviceName=mixed&serviceType=api&instanceId=up")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (picks, candidates) = tally(&h, "serviceName=mixed", 300).await;
    assert_eq!(picks, HashMap::from([("fresh".to_string(), 300)]));
    assert_eq!(candidates, vec![1]);

    // Only the unhealthy one left: nothing eligible.
    let r = h
        .deregister("serviceName=mixed&serviceType=api&instanceId=fresh")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.resolve("serviceName=mixed")
        .await
        .assert_error(404, Some("serviceName"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_instance_gets_less_traffic() {
    // No read cache: the health rows the test writes are what the next resolution reads.
    let h = Handler::start_with(&[
        ("HEALTH_PROBE_JITTER_MS", "0"),
        ("DISCOVERY_CACHE_TTL_MS", "0"),
    ])
    .await;
    let fast = HttpTarget::status(200);
    let slow = SlowTarget::start(Duration::from_millis(150));
    h.register_instance("api", "lat", Some("fast"), json!({"endpoint": fast.url}))
        .await;
    h.register_instance("api", "lat", Some("slow"), json!({"endpoint": slow.url}))
        .await;
    h.sweep_report().await;
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

    // As measured by the sweep: the slow one gets clearly less (about 0.15 for 150 ms against
    // ~1 ms).
    let n = 1000;
    let (picks, candidates) = tally(&h, "serviceName=lat", n).await;
    assert_eq!(candidates, vec![2]);
    let slow_share = *picks.get("slow").unwrap_or(&0) as f64 / n as f64;
    let fast_share = *picks.get("fast").unwrap_or(&0) as f64 / n as f64;
    assert!(
        slow_share < 0.40 && fast_share > 0.60,
        "the slow instance must get clearly less than half: slow {slow_share:.3}, fast {fast_share:.3}"
    );

    // docs/api.md's example, written down: 150 ms beside 5 ms at equal weights. Costs
    // (150 + 25) x 1 = 175 and (5 + 25) x 1 = 30; the slow share is (1/175) / (1/175 + 1/30)
    // = 30 / 205 = 0.1463.
    write_health(
        &h,
        "lat:fast",
        Probed::Sweep {
            ewma: 5.0,
            failures: 0,
        },
    )
    .await;
    write_health(
        &h,
        "lat:slow",
        Probed::Sweep {
            ewma: 150.0,
            failures: 0,
        },
    )
    .await;
    let expected = 30.0 / 205.0;
    let (picks, candidates) = tally(&h, "serviceName=lat", n).await;
    assert_eq!(candidates, vec![2]);
    let slow_share = *picks.get("slow").unwrap_or(&0) as f64 / n as f64;
    assert!(
        (slow_share - expected).abs() <= 0.05,
        "slow share {slow_share:.3}, expected {expected:.3} +- 0.05 from weight / cost"
    );
}

/// The rest of the documented rule, on rows the test writes: failing probes cost more before the
/// status flips, and a row the recipe wrote (no average) is costed by its `responseTime`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_and_recipe_rows_are_costed_as_documented() {
    let h = Handler::start_with(&[("DISCOVERY_CACHE_TTL_MS", "0")]).await;
    for instance in ["steady", "failing", "recipe"] {
        h.register_instance("api", "cost", Some(instance), json!({}))
            .await;
    }
    // Costs: steady (5 + 25) x (1 + 0) = 30; failing, still healthy after two failed probes,
    // (5 + 25) x (1 + 2) = 90; recipe, responseTime 5 and no average, (5 + 25) x 1 = 30.
    // Equal weights: shares 1/30 : 1/90 : 1/30 = 3 : 1 : 3, so 3/7, 1/7, 3/7.
    write_health(
        &h,
        "cost:steady",
        Probed::Sweep {
            ewma: 5.0,
            failures: 0,
        },
    )
    .await;
    write_health(
        &h,
        "cost:failing",
        Probed::Sweep {
            ewma: 5.0,
            failures: 2,
        },
    )
    .await;
    write_health(&h, "cost:recipe", Probed::Recipe { response_time: 5 }).await;
    let n = 2000;
    let (picks, candidates) = tally(&h, "serviceName=cost", n).await;
    assert_eq!(candidates, vec![3], "all three are healthy");
    for (instance, expected) in [
        ("steady", 3.0 / 7.0),
        ("failing", 1.0 / 7.0),
        ("recipe", 3.0 / 7.0),
    ] {
        let share = *picks.get(instance).unwrap_or(&0) as f64 / n as f64;
        let tolerance = tolerance(expected, n);
        assert!(
            (share - expected).abs() <= tolerance,
            "{instance} got {share:.3} of {n} picks; expected {expected:.3} +- {tolerance:.3}: {picks:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_eligible_is_404() {
    let h = Handler::start_with(&[
        ("DISCOVERY_CACHE_TTL_MS", "0"),
        ("HEALTH_FAILURES_TO_UNHEALTHY", "1"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
    ])
    .await;
    h.resolve("serviceName=ghost")
        .await
        .assert_error(404, Some("serviceName"));

    // Weight 0 only.
    h.register_instance("api", "zero", Some("z"), json!({"weight": 0}))
        .await;
    h.resolve("serviceName=zero")
        .await
        .assert_error(404, Some("serviceName"));

    // Expired only.
    h.register_instance("api", "old", Some("o"), json!({"ttlSeconds": 5}))
        .await;
    h.set_last_heartbeat(
        "api",
        "old:o",
        chrono::Utc::now() - chrono::Duration::seconds(60),
    )
    .await;
    h.resolve("serviceName=old")
        .await
        .assert_error(404, Some("serviceName"));

    // Weight 0 never chosen beside an eligible one; an expired one neither.
    h.register_instance("api", "zero", Some("one"), json!({"weight": 1}))
        .await;
    h.register_instance("api", "old", Some("live"), json!({"ttlSeconds": 600}))
        .await;
    let (picks, candidates) = tally(&h, "serviceName=zero", 200).await;
    assert_eq!(picks, HashMap::from([("one".to_string(), 200)]));
    assert_eq!(candidates, vec![1]);
    let (picks, candidates) = tally(&h, "serviceName=old", 200).await;
    assert_eq!(picks, HashMap::from([("live".to_string(), 200)]));
    assert_eq!(candidates, vec![1]);

    // Unhealthy only.
    let down = HttpTarget::status(503);
    h.register_instance("api", "sick", Some("s1"), json!({"endpoint": down.url}))
        .await;
    h.register_instance("api", "sick", Some("s2"), json!({"endpoint": down.url}))
        .await;
    h.sweep_report().await;
    assert_eq!(
        h.tables()
            .row(&h.health_table, "api", "sick:s1")
            .await
            .unwrap()["status"],
        "unhealthy"
    );
    h.resolve("serviceName=sick")
        .await
        .assert_error(404, Some("serviceName"));

    // Filters that match nothing.
    h.register_instance(
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
        h.resolve(q).await.assert_error(404, Some("serviceName"));
    }
    let (inst, _) = resolved(
        &h.resolve("serviceName=tagged&tags=blue&version=1.0.0")
            .await,
    );
    assert_eq!(inst["instanceId"], "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolver_filters_and_bad_input() {
    let h = Handler::start_with(&[("HEALTH_PROBE_JITTER_MS", "0")]).await;
    let up = HttpTarget::status(200);
    h.register_instance("api",
        "flt",
        Some("a"),
        json!({"endpoint": up.url, "tags": ["canary"], "version": "2.0.0", "metadata": {"zone": 1}}),
    )
    .await;
    h.register_instance("api",
        "flt",
        Some("b"),
        json!({"endpoint": up.url, "tags": ["stable"], "version": "1.0.0", "metadata": {"zone": 2}}),
    )
    .await;
    h.register_instance(
        "db",
        "flt",
        Some("c"),
        json!({"endpoint": up.url, "version": "3.0.0"}),
    )
    .await;
    h.sweep_report().await;

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
    let (inst, _) = resolved(&h.resolve("serviceName=flt&tags=canary").await);
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
            h.resolve(q).await
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
