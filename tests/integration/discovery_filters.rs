//! Discovery's options: tags/metadata/version/instanceId filters, limit + continuationToken paging,
//! failOpen, includeExpired, ETag / If-None-Match (forwarded and envelope), and the read cache.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// GET /api/ServiceDiscovery with optional `If-None-Match`.
async fn discover_if_none_match(h: &Handler, query: &str, inm: Option<&str>) -> Resp {
    let mut rb = h
        .client
        .get(h.url(&format!("/api/ServiceDiscovery?{query}")))
        .header("x-ms-invocation-id", uuid::Uuid::new_v4().to_string());
    if let Some(v) = inm {
        rb = rb.header("If-None-Match", v);
    }
    Resp::read(rb.send().await.expect("GET /api/ServiceDiscovery")).await
}

/// The ETag of a 200 answer: present and of the form `W/"<hex>"` (weak: heartbeats move
/// `lastHeartbeat` and `expiresAt` in the body, not the tag).
fn etag_of(r: &Resp) -> String {
    let e = r
        .header("etag")
        .unwrap_or_else(|| panic!("a 200 from discovery must carry an ETag header: {r:?}"));
    assert_etag_form(&e);
    e
}

fn assert_etag_form(e: &str) {
    let opaque = e.strip_prefix("W/").unwrap_or_default();
    assert!(
        opaque.len() > 2
            && opaque.starts_with('"')
            && opaque.ends_with('"')
            && opaque[1..opaque.len() - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit()),
        "ETag must be a weak quoted hex string, got {e:?}"
    );
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

async fn seed_shop(h: &Handler) {
    h.register_instance(
        "blue",
        "shop",
        Some("a"),
        json!({"tags": ["prod", "eu"], "metadata": {"region": "eastus", "port": 443, "tls": true},
               "version": "1.2.0"}),
    )
    .await;
    h.register_instance(
        "blue",
        "shop",
        Some("b"),
        json!({"tags": ["prod"], "metadata": {"region": "westus", "port": 8443, "tls": false},
               "version": "1.2.0-beta"}),
    )
    .await;
    h.register_instance(
        "blue",
        "shop",
        Some("c"),
        json!({"tags": ["eu", "canary"], "metadata": {"region": "eastus", "port": "443"},
               "version": "1.2"}),
    )
    .await;
    h.register_instance(
        "green",
        "shop",
        Some("d"),
        json!({"tags": ["prod", "eu"], "metadata": {"region": "eastus"}, "version": "1.2.0"}),
    )
    .await;
    h.register_instance(
        "green",
        "cart",
        None,
        json!({"tags": ["prod", "eu"], "metadata": {"region": "eastus", "port": 443},
               "version": "1.2.0"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_metadata_version_and_instance_filters() {
    let h = Handler::start().await;
    seed_shop(&h).await;

    let cases: &[(&str, &[&str])] = &[
        (
            "",
            &[
                "blue/shop/a",
                "blue/shop/b",
                "blue/shop/c",
                "green/cart/-",
                "green/shop/d",
            ],
        ),
        (
            "serviceName=shop",
            &["blue/shop/a", "blue/shop/b", "blue/shop/c", "green/shop/d"],
        ),
        (
            "serviceName=shop&tags=prod",
            &["blue/shop/a", "blue/shop/b", "green/shop/d"],
        ),
        (
            "serviceName=shop&tags=prod,eu",
            &["blue/shop/a", "green/shop/d"],
        ),
        (
            "serviceName=shop&tags=prod&tags=eu",
            &["blue/shop/a", "green/shop/d"],
        ),
        ("serviceName=shop&tags=eu,canary", &["blue/shop/c"]),
        ("serviceName=shop&tags=prod,canary", &[]),
        ("tags=missing", &[]),
        (
            "tags=eu",
            &["blue/shop/a", "blue/shop/c", "green/cart/-", "green/shop/d"],
        ),
        (
            "serviceName=shop&metadata=region=eastus",
            &["blue/shop/a", "blue/shop/c", "green/shop/d"],
        ),
        (
            "serviceName=shop&metadata=region%3Deastus",
            &["blue/shop/a", "blue/shop/c", "green/shop/d"],
        ),
        // Numbers compare by their JSON text, strings by their value.
        (
            "serviceName=shop&metadata=port=443",
            &["blue/shop/a", "blue/shop/c"],
        ),
        ("serviceName=shop&metadata=port=8443", &["blue/shop/b"]),
        ("serviceName=shop&metadata=tls=true", &["blue/shop/a"]),
        ("serviceName=shop&metadata=tls=false", &["blue/shop/b"]),
        (
            "serviceName=shop&metadata=region=eastus&metadata=port=443",
            &["blue/shop/a", "blue/shop/c"],
        ),
        (
            "serviceName=shop&metadata=region=eastus&metadata=tls=false",
            &[],
        ),
        ("metadata=region=nowhere", &[]),
        ("metadata=absent=1", &[]),
        (
            "version=1.2.0",
            &["blue/shop/a", "green/cart/-", "green/shop/d"],
        ),
        ("version=1.2", &["blue/shop/c"]),
        ("version=1.2.0-beta", &["blue/shop/b"]),
        ("version=1", &[]),
        ("serviceName=shop&instanceId=b", &["blue/shop/b"]),
        (
            "serviceType=green&serviceName=shop&instanceId=d",
            &["green/shop/d"],
        ),
        ("serviceType=blue&serviceName=shop&instanceId=d", &[]),
        ("serviceType=blue&tags=prod&version=1.2.0", &["blue/shop/a"]),
        (
            "serviceType=green&tags=prod,eu&metadata=region=eastus&version=1.2.0",
            &["green/cart/-", "green/shop/d"],
        ),
        (
            "serviceType=green&serviceName=cart&tags=eu&metadata=port=443",
            &["green/cart/-"],
        ),
        // Empty values count as absent; unknown parameters are ignored.
        (
            "serviceName=shop&tags=&version=&metadata=&code=k",
            &["blue/shop/a", "blue/shop/b", "blue/shop/c", "green/shop/d"],
        ),
    ];
    let mut failures = vec![];
    for (q, expected) in cases {
        let r = h.discover(q).await;
        if r.status != 200 {
            failures.push(format!("?{q}: {} {}", r.status, r.text));
            continue;
        }
        let got = keys(&r.json());
        if got != *expected {
            failures.push(format!("?{q}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} filter case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    for (q, field) in [
        ("metadata=region", "metadata"),
        ("serviceName=shop&metadata=noequals", "metadata"),
        ("instanceId=a", "instanceId"),
        ("tags=prod&instanceId=a", "instanceId"),
        ("serviceName=shop&instanceId=a%2Fb", "instanceId"),
        ("serviceName=shop&instanceId=a%27b", "instanceId"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=2.5", "limit"),
        ("healthyOnly=true&failOpen=maybe", "failOpen"),
        ("includeExpired=1", "includeExpired"),
        ("includeExpired=yes", "includeExpired"),
        ("continuationToken=garbage", "continuationToken"),
        ("limit=2&continuationToken=%21%21%21", "continuationToken"),
    ] {
        let r = h.discover(q).await;
        let v = r.assert_error(400, Some(field));
        assert!(v.get("services").is_none(), "?{q}: {v}");
    }

    // Envelope: the same filters through Query.
    let res = h
        .invoke(
            "ServiceDiscovery",
            &ReqEnvelope::new("ServiceDiscovery", "GET")
                .query(&[
                    ("serviceName", "shop"),
                    ("tags", "prod,eu"),
                    ("version", "1.2.0"),
                ])
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(keys(&res.json()), vec!["blue/shop/a", "green/shop/d"]);
    let res = h
        .invoke(
            "ServiceDiscovery",
            &ReqEnvelope::new("ServiceDiscovery", "GET")
                .query(&[("metadata", "port=443"), ("serviceType", "blue")])
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(keys(&res.json()), vec!["blue/shop/a", "blue/shop/c"]);
}

// ---------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------

/// Follow continuation tokens from `query` with `limit`; returns the pages' keys.
async fn all_pages(h: &Handler, query: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = vec![];
    let mut token: Option<String> = None;
    loop {
        let mut q = format!("{query}&limit={limit}");
        if let Some(t) = &token {
            q.push_str(&format!("&continuationToken={}", encode(t)));
        }
        let v = h.discover_ok(&q).await;
        let page: Vec<String> = items(&v).iter().map(key_of).collect();
        assert!(
            page.len() <= limit,
            "a page holds at most limit={limit} items, got {}: ?{q}",
            page.len()
        );
        pages.push(page);
        assert!(
            pages.len() <= 100,
            "paging did not end after 100 pages of ?{query}&limit={limit}"
        );
        match &v["continuationToken"] {
            Value::Null => break,
            Value::String(t) => {
                assert!(!t.is_empty(), "continuationToken must not be empty: {v}");
                token = Some(t.clone());
            }
            other => panic!("continuationToken must be a string: {other}"),
        }
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_continuation_token_visit_every_instance_once() {
    let h = Handler::start().await;
    // 25 instances across two partitions: 13 of type "pa", 12 of type "pb"; odd ones tagged "odd".
    let mut expected = vec![];
    for i in 0..25 {
        let t = if i < 13 { "pa" } else { "pb" };
        let id = format!("i{i:02}");
        let tags = if i % 2 == 1 {
            json!(["odd"])
        } else {
            json!(["even"])
        };
        h.register_instance(t, "pg", Some(&id), json!({"tags": tags}))
            .await;
        expected.push(format!("{t}/pg/{id}"));
    }
    expected.sort();

    let first = h.discover_ok("serviceName=pg&limit=10").await;
    assert_eq!(first["count"], 10, "{first}");
    assert!(
        first["continuationToken"].is_string(),
        "more remain, so a continuationToken is due: {first}"
    );

    let pages = all_pages(&h, "serviceName=pg", 10).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5], "page sizes with limit=10 over 25");
    let flat: Vec<String> = pages.concat();
    assert_eq!(
        flat, expected,
        "every instance exactly once, in (serviceType, RowKey) order"
    );

    // The same without a name filter (whole table), and page size 1 across the partition boundary.
    let pages = all_pages(&h, "code=x", 10).await;
    assert_eq!(pages.concat(), expected);
    let pages = all_pages(&h, "serviceName=pg", 1).await;
    assert_eq!(pages.len(), 25, "25 pages of one");
    assert_eq!(pages.concat(), expected);

    // A filter combined with paging: 12 odd ones, pages of at most 5.
    let odd: Vec<String> = expected
        .iter()
        .filter(|k| {
            let n: u32 = k.rsplit('i').next().unwrap().parse().unwrap();
            n % 2 == 1
        })
        .cloned()
        .collect();
    assert_eq!(odd.len(), 12);
    let pages = all_pages(&h, "serviceName=pg&tags=odd", 5).await;
    let flat = pages.concat();
    assert_eq!(
        flat, odd,
        "filtered paging: every match exactly once, in order"
    );
    assert_eq!(
        flat.iter().collect::<HashSet<_>>().len(),
        flat.len(),
        "no duplicates"
    );

    // One partition only.
    let pages = all_pages(&h, "serviceType=pb", 4).await;
    assert_eq!(pages.concat(), expected[13..].to_vec());

    // Everything fits: no token.
    let v = h.discover_ok("serviceName=pg&limit=1000").await;
    assert_eq!(v["count"], 25);
    assert!(v.get("continuationToken").is_none_or(Value::is_null), "{v}");
    let v = h.discover_ok("serviceName=pg").await;
    assert_eq!(v["count"], 25);
    assert!(v.get("continuationToken").is_none_or(Value::is_null), "{v}");

    // Envelope paging gives the same first page and token semantics.
    let res = h
        .invoke(
            "ServiceDiscovery",
            &ReqEnvelope::new("ServiceDiscovery", "GET")
                .query(&[("serviceName", "pg"), ("limit", "10")])
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    let v = res.json();
    assert_eq!(keys(&v), expected[..10].to_vec());
    let token = v["continuationToken"].as_str().expect("token").to_string();
    let res = h
        .invoke(
            "ServiceDiscovery",
            &ReqEnvelope::new("ServiceDiscovery", "GET")
                .query(&[
                    ("serviceName", "pg"),
                    ("limit", "10"),
                    ("continuationToken", &token),
                ])
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(keys(&res.json()), expected[10..20].to_vec());
}

// ---------------------------------------------------------------------------
// healthyOnly + failOpen, includeExpired
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_returns_unhealthy_instances_only_when_none_is_healthy() {
    let h = Handler::start().await;
    let up = HttpTarget::status(200);
    let down = HttpTarget::status(503);
    h.register_instance("api", "good", Some("g1"), json!({"endpoint": up.url}))
        .await;
    h.register_instance("api", "bad", Some("b1"), json!({"endpoint": down.url}))
        .await;
    h.register_instance("api", "bad", Some("b2"), json!({"endpoint": down.url}))
        .await;
    h.sweep_report().await;
    let tables = h.tables();
    assert_eq!(
        tables.row(&h.health_table, "api", "good:g1").await.unwrap()["status"],
        "healthy"
    );
    for rk in ["bad:b1", "bad:b2"] {
        assert_eq!(
            tables.row(&h.health_table, "api", rk).await.unwrap()["status"],
            "unhealthy",
            "{rk}"
        );
    }

    let check = |v: &Value, expected: &[&str], failed_open: Option<bool>| {
        let got = keys(v);
        assert_eq!(got, expected, "{v}");
        match failed_open {
            Some(b) => assert_eq!(v["failedOpen"], json!(b), "{v}"),
            None => assert!(
                v.get("failedOpen").is_none(),
                "failedOpen only with healthyOnly=true: {v}"
            ),
        }
    };
    check(
        &h.discover_ok("").await,
        &["api/bad/b1", "api/bad/b2", "api/good/g1"],
        None,
    );
    check(
        &h.discover_ok("serviceName=bad&failOpen=true").await,
        &["api/bad/b1", "api/bad/b2"],
        None,
    );
    check(
        &h.discover_ok("healthyOnly=true").await,
        &["api/good/g1"],
        Some(false),
    );
    check(
        &h.discover_ok("healthyOnly=true&failOpen=true").await,
        &["api/good/g1"],
        Some(false),
    );
    check(
        &h.discover_ok("healthyOnly=true&serviceName=bad").await,
        &[],
        Some(false),
    );
    check(
        &h.discover_ok("healthyOnly=true&serviceName=bad&failOpen=false")
            .await,
        &[],
        Some(false),
    );
    let v = h
        .discover_ok("healthyOnly=true&serviceName=bad&failOpen=true")
        .await;
    check(&v, &["api/bad/b1", "api/bad/b2"], Some(true));
    for s in items(&v) {
        assert_eq!(s["healthStatus"]["status"], "unhealthy", "{s}");
        assert!(
            s["healthStatus"]["responseTimeEwma"].is_number(),
            "a checked instance shows responseTimeEwma: {s}"
        );
    }
    check(
        &h.discover_ok("healthyOnly=true&serviceName=good&failOpen=true")
            .await,
        &["api/good/g1"],
        Some(false),
    );
    check(
        &h.discover_ok("healthyOnly=true&serviceName=bad&instanceId=b2&failOpen=true")
            .await,
        &["api/bad/b2"],
        Some(true),
    );
    // Nothing selected at all: nothing to fail open to (failedOpen present, value not pinned).
    let v = h
        .discover_ok("healthyOnly=true&serviceName=none&failOpen=true")
        .await;
    assert_eq!(keys(&v), Vec::<String>::new());
    assert!(v["failedOpen"].is_boolean(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_expired_lists_lapsed_instances_flagged() {
    let h = Handler::start_with(&[("DISCOVERY_CACHE_TTL_MS", "0")]).await;
    h.register_instance("api", "ex", Some("live"), json!({"ttlSeconds": 600}))
        .await;
    h.register_instance("api", "ex", Some("dead"), json!({"ttlSeconds": 5}))
        .await;
    h.register_instance("api", "ex", None, json!({})).await;
    h.set_last_heartbeat(
        "api",
        "ex:dead",
        chrono::Utc::now() - chrono::Duration::seconds(60),
    )
    .await;

    let v = h.discover_ok("serviceName=ex").await;
    assert_eq!(keys(&v), vec!["api/ex/-", "api/ex/live"]);
    assert!(items(&v).iter().all(|s| s["expired"] == false));
    let v = h.discover_ok("serviceName=ex&includeExpired=true").await;
    assert_eq!(keys(&v), vec!["api/ex/-", "api/ex/dead", "api/ex/live"]);
    let flags: Vec<bool> = items(&v)
        .iter()
        .map(|s| s["expired"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, vec![false, true, false]);
    let dead = &items(&v)[1];
    assert!(
        parse_iso(dead["expiresAt"].as_str().unwrap()) < chrono::Utc::now(),
        "{dead}"
    );
    let v = h
        .discover_ok("serviceName=ex&includeExpired=TRUE&instanceId=dead")
        .await;
    assert_eq!(keys(&v), vec!["api/ex/dead"]);
    // healthyOnly never lists an unchecked instance, expired or not.
    let v = h
        .discover_ok("serviceName=ex&includeExpired=true&healthyOnly=true")
        .await;
    assert_eq!(keys(&v), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// ETag / If-None-Match
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_if_none_match_forwarded() {
    let h = Handler::start().await;
    let up = HttpTarget::status(200);
    h.register_instance("api", "et", Some("a"), json!({"endpoint": up.url}))
        .await;
    h.register_instance("api", "et", Some("b"), json!({"endpoint": up.url}))
        .await;
    let q = "serviceName=et";

    let r1 = discover_if_none_match(&h, q, None).await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    let e1 = etag_of(&r1);
    // The next answer's timestamp can only differ once the clock has passed this one.
    wait_until_past_stored(
        r1.json()["timestamp"].as_str().unwrap(),
        chrono::Duration::zero(),
    )
    .await;
    let r2 = discover_if_none_match(&h, q, None).await;
    assert_eq!(r2.status, 200);
    assert_ne!(
        r1.json()["timestamp"],
        r2.json()["timestamp"],
        "precondition: the timestamps differ"
    );
    assert_eq!(etag_of(&r2), e1, "the ETag must not depend on timestamp");

    let strong = e1.trim_start_matches("W/").to_owned();
    let list = format!("\"0123abcd\", {e1}");
    let strong_list = format!("\"0123abcd\", {strong}");
    for inm in [
        e1.as_str(),
        strong.as_str(),
        list.as_str(),
        strong_list.as_str(),
        "*",
    ] {
        let r = discover_if_none_match(&h, q, Some(inm)).await;
        assert_eq!(
            r.status, 304,
            "If-None-Match: {inm} -> {} {}",
            r.status, r.text
        );
        assert!(
            r.text.is_empty(),
            "a 304 has an empty body, got {:?}",
            r.text
        );
        assert_eq!(
            r.header("etag").as_deref(),
            Some(e1.as_str()),
            "a 304 carries the same ETag (If-None-Match: {inm})"
        );
    }
    for inm in ["\"0123abcd\"", "W/\"0123abcd\"", "\"\""] {
        let r = discover_if_none_match(&h, q, Some(inm)).await;
        assert_eq!(r.status, 200, "If-None-Match: {inm}: {}", r.text);
        assert_eq!(etag_of(&r), e1);
        assert_eq!(items(&r.json()).len(), 2);
    }

    // A heartbeat of a returned instance moves its `lastHeartbeat` in the body (read back through
    // this process at once), but not the tag: polling clients are not woken by heartbeats.
    let before = items(&r1.json())[0]["lastHeartbeat"].clone();
    wait_until_past_stored(before.as_str().unwrap(), chrono::Duration::zero()).await;
    let hb = h
        .heartbeat(&json!({"serviceName": "et", "serviceType": "api", "instanceId": "a"}))
        .await;
    assert_eq!(hb.status, 200, "{}", hb.text);
    let beat = hb.json()["lastHeartbeat"].clone();
    assert_ne!(beat, before);
    assert_eq!(discover_if_none_match(&h, q, Some(&e1)).await.status, 304);
    let r3 = discover_if_none_match(&h, q, None).await;
    assert_eq!(etag_of(&r3), e1, "a heartbeat must not move the ETag");
    assert_eq!(items(&r3.json())[0]["lastHeartbeat"], beat, "{}", r3.text);
    let e2 = e1.clone();

    // A health row change (a sweep) changes it.
    h.sweep_report().await;
    let r4 = discover_if_none_match(&h, q, Some(&e2)).await;
    assert_eq!(r4.status, 200, "{}", r4.text);
    let e3 = etag_of(&r4);
    assert_ne!(
        e3, e2,
        "the ETag must change when a returned health row changes"
    );

    // A new instance joining the result changes it; an instance leaving too.
    h.register_instance("api", "et", Some("c"), json!({"endpoint": up.url}))
        .await;
    let r5 = discover_if_none_match(&h, q, Some(&e3)).await;
    assert_eq!(r5.status, 200, "{}", r5.text);
    let e4 = etag_of(&r5);
    assert_ne!(e4, e3);
    let del = h
        .request(
            reqwest::Method::DELETE,
            "/api/ServiceRegistrar?serviceName=et&serviceType=api&instanceId=c",
            None,
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    let r6 = discover_if_none_match(&h, q, Some(&e4)).await;
    assert_eq!(r6.status, 200, "{}", r6.text);
    assert_ne!(etag_of(&r6), e4);

    // Every 200 carries one, including an empty list and other filters.
    let r = discover_if_none_match(&h, "serviceName=nothing-here", None).await;
    assert_eq!(r.status, 200);
    etag_of(&r);
    let r = discover_if_none_match(&h, "healthyOnly=true", None).await;
    assert_eq!(r.status, 200);
    etag_of(&r);
}

/// Outputs.res of an envelope reply, without requiring a body (a 304 has none).
fn envelope_res_value(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "envelope reply must be HTTP 200: {}", r.text);
    let v = r.json();
    check_envelope_shape(&v);
    let res = v["Outputs"]["res"].clone();
    assert!(res.is_object(), "Outputs.res must be an object: {v}");
    res
}

fn envelope_header(res: &Value, name: &str) -> Option<String> {
    res["headers"].as_object().and_then(|m| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_if_none_match_in_envelopes() {
    let h = Handler::start().await;
    h.register_instance("api", "ee", Some("a"), json!({})).await;
    h.register_instance("api", "ee", Some("b"), json!({})).await;

    let fwd = discover_if_none_match(&h, "serviceName=ee", None).await;
    assert_eq!(fwd.status, 200);
    let fwd_etag = etag_of(&fwd);

    let env = ReqEnvelope::new("ServiceDiscovery", "GET").query(&[("serviceName", "ee")]);
    let res = h
        .invoke("ServiceDiscovery", &env.build())
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    let etag = res
        .header("ETag")
        .unwrap_or_else(|| panic!("Outputs.res.headers must carry ETag: {}", res.raw));
    assert_etag_form(&etag);
    assert_eq!(etag, fwd_etag, "same list, same ETag in both modes");
    assert_eq!(keys(&res.json()), vec!["api/ee/a", "api/ee/b"]);

    let strong = etag.trim_start_matches("W/").to_owned();
    let list = format!("\"00ff\", {etag}");
    for inm in [etag.as_str(), strong.as_str(), list.as_str(), "*"] {
        let e = ReqEnvelope::new("ServiceDiscovery", "GET")
            .query(&[("serviceName", "ee")])
            .header("If-None-Match", inm)
            .build();
        let r = h.invoke("ServiceDiscovery", &e).await;
        let res = envelope_res_value(&r);
        assert_eq!(
            res["statusCode"].as_u64(),
            Some(304),
            "If-None-Match {inm}: Outputs.res {res}"
        );
        match &res["body"] {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            other => panic!("a 304 has an empty body, got {other}"),
        }
        assert_eq!(
            envelope_header(&res, "ETag").as_deref(),
            Some(etag.as_str()),
            "a 304 carries the same ETag: {res}"
        );
    }
    // Header name in another casing.
    let e = ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[("serviceName", "ee")])
        .header("if-none-match", &etag)
        .build();
    let res = envelope_res_value(&h.invoke("ServiceDiscovery", &e).await);
    assert_eq!(res["statusCode"].as_u64(), Some(304), "{res}");

    // Not matching: a full 200.
    let e = ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[("serviceName", "ee")])
        .header("If-None-Match", "\"00ff\"")
        .build();
    let res = h.invoke("ServiceDiscovery", &e).await.envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert_eq!(res.header("ETag").as_deref(), Some(etag.as_str()));
    assert_eq!(keys(&res.json()).len(), 2);

    // After a change (envelope heartbeat) the old ETag no longer matches.
    let hb = h
        .invoke(
            "ServiceHeartbeat",
            &ReqEnvelope::new("ServiceHeartbeat", "POST")
                .body(
                    &json!({"serviceName": "ee", "serviceType": "api", "instanceId": "b"})
                        .to_string(),
                )
                .build(),
        )
        .await
        .envelope_res();
    assert_eq!(hb.status, 200, "{}", hb.raw);
    let e = ReqEnvelope::new("ServiceDiscovery", "GET")
        .query(&[("serviceName", "ee")])
        .header("If-None-Match", &etag)
        .build();
    let res = envelope_res_value(&h.invoke("ServiceDiscovery", &e).await);
    assert_eq!(
        res["statusCode"].as_u64(),
        Some(304),
        "a heartbeat keeps it: {res}"
    );

    // After a change (a re-registration) the old ETag no longer matches.
    h.register_instance("api", "ee", Some("b"), json!({"version": "2.0.0"}))
        .await;
    let res = h.invoke("ServiceDiscovery", &e).await.envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    let new_etag = res.header("ETag").expect("ETag");
    assert_ne!(new_etag, etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_selects_its_rows_and_not_names_that_start_with_it() {
    let h = Handler::start().await;
    h.register_instance("api", "svc", Some("a"), json!({}))
        .await;
    h.register_instance("api", "svc", None, json!({})).await;
    // Inside the RowKey range `svc` .. `svc;`, but other services.
    h.register_instance("api", "svc-2", None, json!({})).await;
    h.register_instance("api", "svc0", Some("b"), json!({}))
        .await;
    h.register_instance("db", "svc", Some("c"), json!({})).await;
    let v = h.discover_ok("serviceName=svc").await;
    assert_eq!(keys(&v), vec!["api/svc/-", "api/svc/a", "db/svc/c"], "{v}");
    let v = h.discover_ok("serviceType=api&serviceName=svc").await;
    assert_eq!(keys(&v), vec!["api/svc/-", "api/svc/a"], "{v}");
    let v = h.discover_ok("serviceName=svc-2").await;
    assert_eq!(keys(&v), vec!["api/svc-2/-"], "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_moves_the_etag_on_time_and_a_heartbeat_of_an_expired_row_moves_it_back() {
    // A long cache TTL: only the page's own knowledge of when its rows lapse can make it flip.
    let h = Handler::start_with(&[("DISCOVERY_CACHE_TTL_MS", "600000")]).await;
    h.register_instance("api", "ex", Some("a"), json!({})).await;
    // b lapses in a few seconds (the shortest TTL a registration may ask for); c lapsed long ago.
    h.register_instance("api", "ex", Some("b"), json!({"ttlSeconds": 5}))
        .await;
    h.register_instance("api", "ex", Some("c"), json!({"ttlSeconds": 3600}))
        .await;
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    h.set_last_heartbeat("api", "ex:c", long_ago).await;
    let q = "serviceName=ex";
    let first = discover_if_none_match(&h, q, None).await;
    assert_eq!(
        keys(&first.json()),
        vec!["api/ex/a", "api/ex/b"],
        "{}",
        first.text
    );
    let e1 = etag_of(&first);
    let expires = items(&first.json())[1]["expiresAt"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until_past_stored(&expires, chrono::Duration::zero()).await;
    // No fixed wait: poll until the page flips (it must by itself, long before the cache TTL).
    let flipped = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let r = discover_if_none_match(&h, q, Some(&e1)).await;
            (r.status == 200).then_some(r)
        },
    )
    .await
    .expect("the page must change once b's TTL lapsed");
    assert_eq!(keys(&flipped.json()), vec!["api/ex/a"], "{}", flipped.text);
    let e2 = etag_of(&flipped);
    assert_ne!(e2, e1);
    assert_eq!(discover_if_none_match(&h, q, Some(&e2)).await.status, 304);
    let all = "serviceName=ex&includeExpired=true";
    let shown = discover_if_none_match(&h, all, None).await;
    assert_eq!(
        expired_flags(&shown.json()),
        vec![json!(false), json!(true), json!(true)],
        "{}",
        shown.text
    );

    // A heartbeat through this process revives c at once, however long the cache keeps pages.
    let hb = h
        .heartbeat(&json!({"serviceName": "ex", "serviceType": "api", "instanceId": "c"}))
        .await;
    assert_eq!(hb.status, 200, "{}", hb.text);
    let back = discover_if_none_match(&h, q, Some(&e2)).await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(keys(&back.json()), vec!["api/ex/a", "api/ex/c"]);
    assert_eq!(
        items(&back.json())[1]["lastHeartbeat"],
        hb.json()["lastHeartbeat"]
    );
    assert_ne!(etag_of(&back), e2);
    let shown = discover_if_none_match(&h, all, None).await;
    assert_eq!(
        expired_flags(&shown.json()),
        vec![json!(false), json!(true), json!(false)],
        "{}",
        shown.text
    );
}

/// Each listed instance's `expired`, in order.
fn expired_flags(body: &Value) -> Vec<Value> {
    items(body)
        .into_iter()
        .map(|i| i["expired"].clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Cache
// ---------------------------------------------------------------------------

/// A write by another process, shaped as the recipe's Node ServiceRegistrar writes a row.
fn direct_row(pk: &str, name: &str) -> Value {
    json!({
        "PartitionKey": pk, "RowKey": name,
        "serviceName": name,
        "endpoint": local_endpoint(name),
        "healthEndpoint": local_endpoint(name),
        "serviceType": pk,
        "version": "1.0.0",
        "tags": "[]",
        "metadata": "{}",
        "registeredAt": "2026-11-25T05:00:00.000Z",
        "lastHeartbeat": "2026-11-25T05:30:00.000Z"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_shows_own_writes_at_once() {
    let h = Handler::start_with(&[("DISCOVERY_CACHE_TTL_MS", "600000")]).await;
    let up = HttpTarget::status(200);
    assert_eq!(h.discover_ok("").await["count"], 0);

    h.register_instance("api", "own", Some("a"), json!({"endpoint": up.url}))
        .await;
    assert_eq!(keys(&h.discover_ok("").await), vec!["api/own/a"]);
    h.register_instance(
        "api",
        "own",
        Some("b"),
        json!({"endpoint": up.url, "weight": 4}),
    )
    .await;
    let v = h.discover_ok("").await;
    assert_eq!(keys(&v), vec!["api/own/a", "api/own/b"]);
    assert_eq!(items(&v)[1]["weight"], 4);

    // Re-registration.
    h.register_instance(
        "api",
        "own",
        Some("b"),
        json!({"endpoint": up.url, "weight": 9}),
    )
    .await;
    assert_eq!(items(&h.discover_ok("").await)[1]["weight"], 9);

    // Heartbeat.
    let before = items(&h.discover_ok("").await)[0]["lastHeartbeat"].clone();
    wait_until_past_stored(before.as_str().unwrap(), chrono::Duration::zero()).await;
    let hb = h
        .heartbeat(&json!({"serviceName": "own", "serviceType": "api", "instanceId": "a"}))
        .await;
    assert_eq!(hb.status, 200, "{}", hb.text);
    let after = items(&h.discover_ok("").await)[0]["lastHeartbeat"].clone();
    assert_ne!(after, before, "own heartbeat must be visible at once");
    assert_eq!(
        parse_iso(after.as_str().unwrap()),
        parse_iso(hb.json()["lastHeartbeat"].as_str().unwrap())
    );

    // Sweep.
    assert!(items(&h.discover_ok("").await)
        .iter()
        .all(|s| s["healthStatus"].is_null()));
    h.sweep_report().await;
    let v = h.discover_ok("healthyOnly=true").await;
    assert_eq!(keys(&v), vec!["api/own/a", "api/own/b"]);
    assert!(items(&v)
        .iter()
        .all(|s| s["healthStatus"]["status"] == "healthy"));

    // Deregistration.
    let del = h
        .request(
            reqwest::Method::DELETE,
            "/api/ServiceRegistrar?serviceName=own&serviceType=api&instanceId=a",
            None,
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(keys(&h.discover_ok("").await), vec!["api/own/b"]);
    assert_eq!(
        keys(&h.discover_ok("healthyOnly=true").await),
        vec!["api/own/b"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hides_foreign_writes_for_its_ttl_only() {
    // A long TTL: a row written straight into the table stays invisible.
    let cached = Handler::start_with(&[("DISCOVERY_CACHE_TTL_MS", "600000")]).await;
    cached
        .register_instance("api", "mine", None, json!({}))
        .await;
    let q = "serviceType=api";
    let v = cached.discover_ok(q).await;
    assert_eq!(keys(&v), vec!["api/mine/-"]);
    let tables = cached.tables();
    tables
        .upsert(&cached.registry_table, &direct_row("api", "foreign"))
        .await;
    assert!(tables
        .row(&cached.registry_table, "api", "foreign")
        .await
        .is_some());
    for _ in 0..3 {
        let v = cached.discover_ok(q).await;
        assert_eq!(
            keys(&v),
            vec!["api/mine/-"],
            "with DISCOVERY_CACHE_TTL_MS=600000 a foreign write must not be seen yet"
        );
        // Time passing is the point here: the write stays hidden, read after read.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Another process on the same tables with the cache off sees it at once, and every later
    // foreign write too.
    let mut cfg = HandlerConfig::new(Mode::CustomHandler).env("DISCOVERY_CACHE_TTL_MS", "0");
    cfg.registry_table = cached.registry_table.clone();
    cfg.health_table = cached.health_table.clone();
    let uncached = Handler::spawn(cfg).await;
    assert_eq!(
        keys(&uncached.discover_ok(q).await),
        vec!["api/foreign/-", "api/mine/-"]
    );
    tables
        .upsert(&cached.registry_table, &direct_row("api", "foreign2"))
        .await;
    assert_eq!(
        keys(&uncached.discover_ok(q).await),
        vec!["api/foreign/-", "api/foreign2/-", "api/mine/-"],
        "with DISCOVERY_CACHE_TTL_MS=0 a foreign write is visible immediately"
    );
    // A foreign health row too.
    tables.create_table(&cached.health_table).await;
    tables
        .upsert(
            &cached.health_table,
            &json!({"PartitionKey": "api", "RowKey": "foreign2", "serviceName": "foreign2",
                    "status": "healthy", "lastChecked": "2026-11-25T06:00:00.000Z",
                    "responseTime": 3, "errorMessage": ""}),
        )
        .await;
    assert_eq!(
        keys(&uncached.discover_ok("healthyOnly=true").await),
        vec!["api/foreign2/-"]
    );
    // The deregistration by the uncached process is a foreign write for the cached one.
    let del = uncached
        .request(
            reqwest::Method::DELETE,
            "/api/ServiceRegistrar?serviceName=mine&serviceType=api",
            None,
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(
        keys(&cached.discover_ok(q).await),
        vec!["api/mine/-"],
        "another process's delete is invisible to a long-TTL cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_expires_after_its_ttl() {
    const TTL: Duration = Duration::from_millis(400);
    let h = Handler::start_with(&[("DISCOVERY_CACHE_TTL_MS", "400")]).await;
    h.register_instance("api", "first", None, json!({})).await;
    assert_eq!(h.discover_ok("").await["count"], 1);
    // The cached answer was read from storage before this moment, so it has expired for any
    // request sent later than TTL after it (whatever the machine's speed).
    let cached_by = std::time::Instant::now();
    h.tables()
        .upsert(&h.registry_table, &direct_row("api", "later"))
        .await;
    let started = std::time::Instant::now();
    let seen = poll_until(
        Duration::from_secs(3),
        Duration::from_millis(50),
        || async {
            let sent = std::time::Instant::now();
            let v = h.discover_ok("").await;
            if v["count"] == 2 {
                return Some(());
            }
            assert!(
                sent < cached_by + TTL,
                "a request sent {:?} after the cached read still misses the foreign write \
                 (DISCOVERY_CACHE_TTL_MS=400; took {:?} so far)",
                sent - cached_by,
                started.elapsed()
            );
            None
        },
    )
    .await;
    assert!(
        seen.is_some(),
        "a foreign write must be visible once DISCOVERY_CACHE_TTL_MS=400 has passed"
    );
}
