//! The Consul-compatible API as real client libraries no one here wrote see it: py-consul 1.8.0 and
//! node-consul 2.0.1 (`harness::ConsulClient`), against a standalone handler and through the
//! imitated Functions host front door. Each registers with a TTL check and with an HTTP check to a
//! local target, passes the TTL, reads `health.service(passing)`, blocks on the index (returning
//! early on a change, holding the whole wait without one), sees the index stay still through
//! heartbeats and move on a deregistration, and uses its token option against a keyed handler. What
//! they register is checked in the native API (`/api/ServiceDiscovery`) too.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A standalone handler whose own sweep schedule never fires during a test: its five-minute tick
/// judging a TTL-passed instance for the first time moves the index (a spurious wake Consul's
/// contract allows) and would cut a hold the test measures. Sweeps here are the test's own.
fn standalone(cfg: HandlerConfig) -> HandlerConfig {
    cfg.env("HEALTH_MONITOR_SCHEDULE", "0 0 0 1 1 *")
}

/// A per-library service name, so both libraries' rows can sit in one handler.
fn name(library: Library) -> &'static str {
    match library {
        Library::PyConsul => "orders-py",
        Library::NodeConsul => "orders-js",
    }
}

fn registration(library: Library, tags: &[&str]) -> Value {
    let service = name(library);
    json!({
        "name": service,
        "id": format!("{service}-1"),
        "address": "127.0.0.1",
        "port": 8080,
        "tags": tags,
        "meta": {"team": "payments", "DAPR_PORT": "50002"},
        "check": {"ttl": "30s"},
    })
}

/// The one entry `health.service` returns for the registration above, checked field by field.
fn assert_entry(library: Library, answer: &Value, tags: &[&str]) {
    let entries = answer["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{library:?}: {answer}"));
    assert_eq!(entries.len(), 1, "{library:?}: {answer}");
    let service = &entries[0]["Service"];
    assert_eq!(service["Service"], name(library), "{library:?}: {service}");
    assert_eq!(service["ID"], format!("{}-1", name(library)));
    assert_eq!(service["Address"], "127.0.0.1");
    assert_eq!(service["Port"], 8080);
    assert_eq!(service["Tags"], json!(tags));
    assert_eq!(service["Meta"]["team"], "payments");
    assert_eq!(service["Meta"]["DAPR_PORT"], "50002");
    assert_eq!(entries[0]["Node"]["Datacenter"], "dc1");
    let checks = entries[0]["Checks"].as_array().unwrap();
    assert!(!checks.is_empty(), "{library:?}: {answer}");
    for check in checks {
        assert_eq!(check["Status"], "passing", "{library:?}: {check}");
    }
}

/// A blocking `health.service` read on `index` for `wait`, run in the background; its answer and
/// how long the library waited for it.
fn blocking_read(
    client: std::sync::Arc<ConsulClient>,
    service: &str,
    index: u64,
    wait: &str,
) -> tokio::task::JoinHandle<(Value, Duration)> {
    let args = json!({"service": service, "passing": true, "index": index, "wait": wait});
    tokio::spawn(async move {
        let started = Instant::now();
        let answer = client.ok("health", args).await;
        (answer, started.elapsed())
    })
}

/// The whole round, with `library`, against `base` (a handler or the front door), as the caller
/// `token` (or none). `other` makes the changes a watcher waits for.
async fn round(library: Library, base: &str, token: Option<&str>) -> u64 {
    let watcher = std::sync::Arc::new(ConsulClient::start(library, base, token));
    let other = ConsulClient::start(library, base, token);
    let service = name(library);
    let id = format!("{service}-1");

    let agent = watcher.call("self", json!({})).await;
    if library == Library::PyConsul && token.is_some() {
        // py-consul 1.8.0's `agent.self()` sends no token (it alone skips `prepare_headers`), so
        // against a registry that authenticates it is the library's 401 error.
        assert_eq!(agent["error"], "ACLDisabled", "{agent}");
    } else {
        assert_eq!(
            agent["result"]["Config"]["Datacenter"], "dc1",
            "{library:?}: {agent}"
        );
        assert!(agent["result"]["Config"]["NodeName"].is_string(), "{agent}");
    }

    let answer = watcher
        .ok("register", registration(library, &["v1", "blue"]))
        .await;
    assert_eq!(answer["result"], true, "{library:?}: {answer}");
    watcher
        .ok("pass", json!({"check_id": format!("service:{id}")}))
        .await;
    let first = watcher
        .ok("health", json!({"service": service, "passing": true}))
        .await;
    assert_entry(library, &first, &["v1", "blue"]);
    let index = index_of(&first);
    assert!(index >= 1);

    // Heartbeats (TTL passes) change nothing a client sees: the index stays.
    for _ in 0..2 {
        watcher
            .ok("pass", json!({"check_id": format!("service:{id}")}))
            .await;
    }
    let again = watcher
        .ok("health", json!({"service": service, "passing": true}))
        .await;
    assert_eq!(
        index_of(&again),
        index,
        "{library:?}: a heartbeat moved the index"
    );

    // Nothing changes: the read is held for the whole wait (plus at most a sixteenth), and comes
    // back with the same index.
    let (held, took) = blocking_read(watcher.clone(), service, index, "3s")
        .await
        .unwrap();
    println!("figure: {library:?} held without a change, wait 3s: {took:?}");
    assert!(
        took >= Duration::from_millis(2900),
        "{library:?}: returned after {took:?}: {held}"
    );
    assert!(
        took < Duration::from_millis(3188 + 2000),
        "{library:?}: held {took:?}"
    );
    assert_eq!(index_of(&held), index, "{library:?}: {held}");
    assert_entry(library, &held, &["v1", "blue"]);

    // A tag change while a read is held wakes it early, with a larger index and the new tags. The
    // change is made a second into the hold: what is measured is that the server held the read
    // and let go of it on the change, well before its 20 s.
    let pending = blocking_read(watcher.clone(), service, index, "20s");
    tokio::time::sleep(Duration::from_secs(1)).await;
    other
        .ok("register", registration(library, &["v1", "green"]))
        .await;
    other
        .ok("pass", json!({"check_id": format!("service:{id}")}))
        .await;
    let (woken, took) = pending.await.unwrap();
    println!("figure: {library:?} woken by a tag change made 1 s into the hold: {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "{library:?}: woke after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "{library:?}: not held ({took:?}): {woken}"
    );
    let changed = index_of(&woken);
    assert!(changed > index, "{library:?}: {changed} after {index}");

    // The deregistration wakes a held read too, and moves the index.
    let current = watcher
        .ok("health", json!({"service": service, "passing": true}))
        .await;
    assert_entry(library, &current, &["v1", "green"]);
    let before = index_of(&current);
    let pending = blocking_read(watcher.clone(), service, before, "20s");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gone = other.ok("deregister", json!({"id": id})).await;
    assert_eq!(gone["result"], true, "{library:?}: {gone}");
    let (mut woken, took) = pending.await.unwrap();
    println!("figure: {library:?} woken by a deregistration made 1 s into the hold: {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "{library:?}: woke after {took:?}"
    );
    // A removal moves the index twice, before its deletes and after them (docs/consul.md): a read
    // woken by the first may still list the row, and then holds on that index, as a client does,
    // until the second.
    if woken["result"] != json!([]) {
        let (again, took) = blocking_read(watcher.clone(), service, index_of(&woken), "20s")
            .await
            .unwrap();
        assert!(
            took < Duration::from_secs(10),
            "{library:?}: the removal's second move came after {took:?}"
        );
        woken = again;
    }
    assert_eq!(woken["result"], json!([]), "{library:?}: {woken}");
    assert!(
        index_of(&woken) > before,
        "{library:?}: {woken} after {before}"
    );
    println!(
        "figure: {library:?} X-Consul-Index {index} before two TTL passes, {} after them; \
         {before} before the deregistration, {} after it",
        index_of(&again),
        index_of(&woken)
    );
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_library_registers_passes_reads_blocks_and_deregisters_standalone() {
    let h = Handler::spawn(standalone(HandlerConfig::new(Mode::Standalone))).await;
    for library in Library::ALL {
        // Before deregistering, the rows a library wrote are ordinary registrations.
        let client = ConsulClient::start(library, &h.base, None);
        client
            .ok("register", registration(library, &["v1", "blue"]))
            .await;
        let found = h
            .discover_ok(&format!("serviceName={}", name(library)))
            .await;
        assert_eq!(
            keys(&found),
            vec![format!("consul/{0}/{0}-1", name(library))],
            "{library:?}"
        );
        let item = &items(&found)[0];
        assert_eq!(item["endpoint"], "http://127.0.0.1:8080", "{item}");
        assert_eq!(item["tags"], json!(["v1", "blue"]), "{item}");
        assert_eq!(item["metadata"]["team"], "payments", "{item}");
        assert_eq!(item["metadata"]["DAPR_PORT"], "50002", "{item}");

        round(library, &h.base, None).await;
        let left = h
            .discover_ok(&format!("serviceName={}", name(library)))
            .await;
        assert!(keys(&left).is_empty(), "{library:?}: {left}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_check_to_a_local_target_turns_passing_after_a_sweep() {
    let h = Handler::spawn(standalone(HandlerConfig::new(Mode::Standalone))).await;
    let target = HttpTarget::status(200);
    for library in Library::ALL {
        let client = ConsulClient::start(library, &h.base, None);
        let service = format!("{}-http", name(library));
        let body = json!({
            "name": service, "id": format!("{service}-1"), "address": "127.0.0.1",
            "port": target.port, "tags": ["web"],
            "check": {"http": target.url, "interval": "10s"},
        });
        client.ok("register", body).await;
        let found = h.discover_ok(&format!("serviceName={service}")).await;
        let item = &items(&found)[0];
        assert_eq!(item["healthEndpoint"], target.url, "{item}");
        h.sweep_report().await;
        let answer = client
            .ok("health", json!({"service": service, "passing": true}))
            .await;
        let entries = answer["result"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{library:?}: {answer}");
        assert_eq!(entries[0]["Service"]["Port"], target.port);
        assert_eq!(entries[0]["Checks"][0]["Status"], "passing", "{answer}");
        client
            .ok("deregister", json!({"id": format!("{service}-1")}))
            .await;
    }
    assert!(target.hits.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_librarys_token_option_is_checked_and_a_wrong_token_is_the_librarys_error() {
    let h = Handler::spawn(standalone(HandlerConfig::with_keys())).await;
    for library in Library::ALL {
        // A key that may write `*:orders-*`: the library's own token option carries it.
        let writer = ConsulClient::start(library, &h.base, Some(PREFIXED));
        writer.ok("register", registration(library, &["v1"])).await;
        let reader = ConsulClient::start(library, &h.base, Some(READER));
        writer
            .ok(
                "pass",
                json!({"check_id": format!("service:{}-1", name(library))}),
            )
            .await;
        let answer = reader.ok("health", json!({"service": name(library)})).await;
        assert_eq!(answer["result"].as_array().unwrap().len(), 1, "{answer}");

        let (denied, unknown): (&[&str], &[&str]) = match library {
            Library::PyConsul => (
                &["ACLPermissionDenied"],
                &["ACLPermissionDenied", "ACLDisabled"],
            ),
            Library::NodeConsul => (&["Error"], &["Error"]),
        };
        // A reader's token on a write: refused, nothing written.
        let answer = reader
            .call("register", registration(library, &["v2"]))
            .await;
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{library:?}: {answer}"));
        assert!(denied.contains(&error), "{library:?}: {answer}");
        if library == Library::NodeConsul {
            assert_eq!(answer["status"], 403, "{answer}");
        }
        // A token the registry does not know: the library's error, on reads and writes.
        let stranger = ConsulClient::start(library, &h.base, Some("not-a-key-of-this-registry"));
        for (op, args) in [
            ("health", json!({"service": name(library)})),
            ("register", registration(library, &["v3"])),
        ] {
            let answer = stranger.call(op, args).await;
            let error = answer["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{library:?}: {op} {answer}"));
            assert!(unknown.contains(&error), "{library:?}: {op} {answer}");
            if library == Library::NodeConsul {
                let status = answer["status"].as_u64().unwrap();
                assert!(status == 401 || status == 403, "{answer}");
            }
        }
        // No token at all.
        let nobody = ConsulClient::start(library, &h.base, None);
        assert!(nobody
            .call("health", json!({"service": name(library)}))
            .await["error"]
            .is_string());
        // py-consul's per-call token beside the client's: the call's wins.
        if library == Library::PyConsul {
            let answer = stranger
                .call("health", json!({"service": name(library), "token": READER}))
                .await;
            assert!(answer.get("error").is_none(), "{answer}");
        }
        let found = h
            .call(
                reqwest::Method::GET,
                &format!("/api/ServiceDiscovery?serviceName={}", name(library)),
                Some(READER),
                None,
            )
            .await;
        assert_eq!(found.status, 200, "{}", found.text);
        let tags: Vec<Value> = items(&found.json())
            .iter()
            .map(|i| i["tags"].clone())
            .collect();
        assert_eq!(
            tags,
            vec![json!(["v1"])],
            "{library:?}: only the writer's registration"
        );
        writer
            .ok("deregister", json!({"id": format!("{}-1", name(library))}))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_library_works_through_the_functions_host_front_door() {
    let h = Handler::spawn(
        HandlerConfig::new(Mode::CustomHandler).env("REGISTRY_API_KEYS", &key_lines()),
    )
    .await;
    let front = HostFront::start(
        &h,
        Delivery::Forwarded,
        "a-function-key-no-consul-client-sends",
    )
    .await;
    for library in Library::ALL {
        round(library, &front.base, Some(PREFIXED)).await;
        let found = h
            .call(
                reqwest::Method::GET,
                &format!("/api/ServiceDiscovery?serviceName={}", name(library)),
                Some(READER),
                None,
            )
            .await;
        assert!(keys(&found.json()).is_empty(), "{}", found.text);
    }
    let passed = front.passed();
    assert!(
        passed
            .iter()
            .all(|p| p.function == "ConsulApi" && p.sent.starts_with("/v1/")),
        "{passed:?}"
    );
    // And as envelopes (forwarding off): the library cannot tell.
    let front = HostFront::start(
        &h,
        Delivery::Envelope,
        "a-function-key-no-consul-client-sends",
    )
    .await;
    for library in Library::ALL {
        let client = ConsulClient::start(library, &front.base, Some(PREFIXED));
        client
            .ok("register", registration(library, &["v1", "blue"]))
            .await;
        client
            .ok(
                "pass",
                json!({"check_id": format!("service:{}-1", name(library))}),
            )
            .await;
        let answer = client
            .ok("health", json!({"service": name(library), "passing": true}))
            .await;
        assert_entry(library, &answer, &["v1", "blue"]);
        client
            .ok("deregister", json!({"id": format!("{}-1", name(library))}))
            .await;
    }
    assert!(front.passed().iter().all(|p| p.sent == "/ConsulApi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_through_the_host_is_held_only_up_to_the_cap() {
    // The cap (CONSUL_MAX_HOLD_SECONDS, at most 200) keeps every hold under the front end's 230 s;
    // 5 s here so the test is short. A client asking for 10 minutes gets the same index back
    // after the cap and its jitter, not a cut connection.
    let h = Handler::spawn(
        HandlerConfig::new(Mode::CustomHandler)
            .env("REGISTRY_API_KEYS", &key_lines())
            .env("CONSUL_MAX_HOLD_SECONDS", "5"),
    )
    .await;
    let front = HostFront::start(&h, Delivery::Forwarded, "unused-function-key").await;
    let client = std::sync::Arc::new(ConsulClient::start(
        Library::PyConsul,
        &front.base,
        Some(PREFIXED),
    ));
    client
        .ok("register", registration(Library::PyConsul, &["v1"]))
        .await;
    let first = client
        .ok("health", json!({"service": name(Library::PyConsul)}))
        .await;
    let index = index_of(&first);
    let (held, took) = blocking_read(client.clone(), name(Library::PyConsul), index, "10m")
        .await
        .unwrap();
    assert!(
        took >= Duration::from_millis(4900),
        "returned after {took:?}: {held}"
    );
    assert!(
        took < Duration::from_millis(5313 + 2000),
        "held {took:?}, past the cap"
    );
    assert!(took < FRONT_END_LIMIT);
    assert_eq!(index_of(&held), index, "{held}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_library_reads_and_watches_native_registrations() {
    // The other direction: rows written by the native API, read and watched by the libraries.
    let h = Handler::spawn(standalone(HandlerConfig::new(Mode::Standalone))).await;
    for library in Library::ALL {
        let service = name(library);
        let native = json!({
            "serviceName": service, "serviceType": "api", "instanceId": "pod-1",
            "endpoint": "http://127.0.0.1:8080", "tags": ["v1"],
            "metadata": {"DAPR_PORT": "50002", "replicas": 3}, "ttlSeconds": 60,
        });
        h.register_ok(&native).await;
        let client = std::sync::Arc::new(ConsulClient::start(library, &h.base, None));
        let first = client.ok("health", json!({"service": service})).await;
        let entries = first["result"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{library:?}: {first}");
        let entry = &entries[0]["Service"];
        assert_eq!(entry["ID"], "pod-1", "{entry}");
        assert_eq!(entry["Address"], "127.0.0.1");
        assert_eq!(entry["Port"], 8080);
        assert_eq!(entry["Tags"], json!(["v1"]));
        // Metadata values reach Go-typed clients as strings.
        assert_eq!(entry["Meta"]["DAPR_PORT"], "50002");
        assert_eq!(entry["Meta"]["replicas"], "3");
        assert_eq!(entry["Meta"]["serviceType"], "api");
        let index = index_of(&first);
        let services = client.ok("services", json!({})).await;
        assert_eq!(services["result"][service], json!(["v1"]), "{services}");

        // Native heartbeats do not move it.
        let key = json!({"serviceName": service, "serviceType": "api", "instanceId": "pod-1"});
        for _ in 0..2 {
            assert_eq!(h.heartbeat(&key).await.status, 200);
        }
        let again = client.ok("health", json!({"service": service})).await;
        assert_eq!(
            index_of(&again),
            index,
            "{library:?}: a heartbeat moved the index"
        );

        // A native deregistration wakes a held read, with a larger index and no entry.
        let args = json!({"service": service, "index": index, "wait": "20s"});
        let watcher = client.clone();
        let pending = tokio::spawn(async move {
            let started = Instant::now();
            (watcher.ok("health", args).await, started.elapsed())
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = h
            .deregister(&format!(
                "serviceType=api&serviceName={service}&instanceId=pod-1"
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let (woken, took) = pending.await.unwrap();
        assert!(
            took >= Duration::from_millis(900),
            "{library:?}: not held ({took:?})"
        );
        assert!(
            took < Duration::from_secs(10),
            "{library:?}: woke after {took:?}"
        );
        assert_eq!(woken["result"], json!([]), "{woken}");
        assert!(
            index_of(&woken) > index,
            "{library:?}: {woken} after {index}"
        );
    }
}
