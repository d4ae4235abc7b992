//! Start-up: storage configuration, secrets, readiness, routes, log format.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What "GET / answers at once" allows: far above any scheduling hiccup of a loaded machine, and
/// half the storage timeout (10 s) a request that touched storage could wait for.
const ROOT_AT_ONCE: Duration = Duration::from_secs(5);

const VARS: [&str; 3] = [
    "STORAGE_CONNECTION_STRING",
    "AZURE_STORAGETABLE_CONNECTIONSTRING",
    "AzureWebJobsStorage",
];

#[test]
fn no_storage_configuration_exits_nonzero_naming_the_variables() {
    for mode in [Mode::CustomHandler, Mode::Standalone] {
        let cfg = HandlerConfig::bare(mode);
        let (status, elapsed, stdout, stderr) = run_handler_to_exit(&cfg, Duration::from_secs(10));
        let status = status.unwrap_or_else(|| {
            panic!("{mode:?}: still running 10 s after start with no storage configured\n{stdout}\n{stderr}")
        });
        assert!(
            !status.success(),
            "{mode:?}: must exit non-zero, got {status:?}"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "{mode:?}: took {elapsed:?} to give up (contract: within a second)"
        );
        let line = stderr.lines().find(|l| VARS.iter().all(|v| l.contains(v)));
        assert!(
            line.is_some(),
            "{mode:?}: stderr needs one line naming {VARS:?}; stderr was:\n{stderr}"
        );
    }
}

#[test]
fn malformed_connection_strings_never_print_the_secret() {
    let malformed = [
        "AccountName=devstoreaccount1;AccountKey=SECRETSECRET;garbage-without-equals;TableEndpoint=not a url",
        "DefaultEndpointsProtocol=http;AccountKey=SECRETSECRET",
        "AccountKey=SECRETSECRET;;;===",
        "SECRETSECRET",
        "TableEndpoint=http://[::1;AccountName=a;AccountKey=SECRETSECRET",
    ];
    for var in VARS {
        for cs in malformed {
            let cfg = HandlerConfig::bare(Mode::CustomHandler).env(var, cs);
            let (status, _elapsed, stdout, stderr) =
                run_handler_to_exit(&cfg, Duration::from_secs(5));
            assert!(
                !stdout.contains("SECRETSECRET") && !stderr.contains("SECRETSECRET"),
                "{var}={cs:?}: the secret was printed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
            let status = status.unwrap_or_else(|| {
                panic!("{var}={cs:?}: a malformed connection string must stop start-up (still running after 5 s)")
            });
            assert!(
                !status.success(),
                "{var}={cs:?}: must exit non-zero, got {status:?}\n{stderr}"
            );
            assert!(!stderr.trim().is_empty(), "{var}={cs:?}: no error printed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_key_never_logged_even_when_storage_unreachable() {
    // Well-formed string with a distinctive key, pointing to a closed port.
    let key = "U1VQRVJTRUNSRVRLRVlWQUxVRTEyMzQ1Njc4OTA=";
    let closed = closed_port();
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};TableEndpoint=http://127.0.0.1:{}/{ACCOUNT};",
        closed.port
    );
    let cfg = HandlerConfig::with_storage(Mode::CustomHandler, &cs).env("RUST_LOG", "debug");
    let h = Handler::spawn(cfg).await;
    let r = h
        .register(&json!({"serviceName": "x", "endpoint": "https://x.example.com"}))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    let _ = h.discover("").await;
    let _ = h.sweep().await;
    // The request line is logged before the answer goes out: once the last one is there, so is
    // everything these three requests made the handler log.
    let logs = h
        .wait_for_log("\"/HealthMonitor\"", Duration::from_secs(10))
        .await;
    assert!(!logs.contains(key), "the account key was logged:\n{logs}");
    assert!(
        !logs.contains("U1VQRVJTRUNSRVRLRVlW"),
        "part of the account key was logged:\n{logs}"
    );
}

/// `RUST_LOG` naming a submodule of a storage or HTTP crate must not lift the cap that keeps request
/// headers (the SharedKey signature) out of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_http_client_traces_never_logs_request_headers() {
    let cfg = HandlerConfig::new(Mode::CustomHandler).env(
        "RUST_LOG",
        "trace,azure_core::policies=trace,azure_core::http_client=trace,reqwest::connect=trace",
    );
    let h = Handler::spawn(cfg).await;
    h.register_ok(&json!({"serviceName": "loud", "endpoint": "https://x.example.com"}))
        .await;
    let _ = h.discover_ok("").await;
    let logs = h
        .wait_for_log("\"/api/ServiceDiscovery\"", Duration::from_secs(10))
        .await;
    for leak in ["SharedKey", "authorization", "Authorization"] {
        assert!(!logs.contains(leak), "{leak} appeared in the log:\n{logs}");
    }
    assert!(
        logs.contains("service registered"),
        "our own lines still print:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_storage_variable_works_and_first_one_wins() {
    let good = Azurite::shared().connection_string();
    let closed = closed_port();
    let bad = connection_string_for_port(closed.port);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "AZURE_STORAGETABLE_CONNECTIONSTRING",
            vec![("AZURE_STORAGETABLE_CONNECTIONSTRING", good.clone())],
        ),
        (
            "AzureWebJobsStorage",
            vec![("AzureWebJobsStorage", good.clone())],
        ),
        (
            "STORAGE_CONNECTION_STRING first",
            vec![
                ("STORAGE_CONNECTION_STRING", good.clone()),
                ("AZURE_STORAGETABLE_CONNECTIONSTRING", bad.clone()),
                ("AzureWebJobsStorage", bad.clone()),
            ],
        ),
        (
            "AZURE_STORAGETABLE_CONNECTIONSTRING before AzureWebJobsStorage",
            vec![
                ("AZURE_STORAGETABLE_CONNECTIONSTRING", good.clone()),
                ("AzureWebJobsStorage", bad.clone()),
            ],
        ),
    ];
    for (name, vars) in cases {
        let mut cfg = HandlerConfig::bare(Mode::CustomHandler);
        for (k, v) in &vars {
            cfg = cfg.env(k, v);
        }
        let h = Handler::spawn(cfg).await;
        let r = h
            .register(&json!({"serviceName": "v", "endpoint": "https://v.example.com"}))
            .await;
        assert_eq!(r.status, 200, "{name}: {} {}", r.status, r.text);
        assert!(
            h.tables()
                .row(&h.registry_table, "default", "v")
                .await
                .is_some(),
            "{name}: row not in the expected storage"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_tables_and_answers_root_at_once() {
    let h = Handler::start().await;
    let t = h.tables();
    // Tables are created by the handler if absent (allow a moment if done after binding).
    let both = poll_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            (t.table_exists(&h.registry_table).await
                && t.table_exists(&h.health_table).await
                && t.table_exists(&h.state_table).await)
                .then_some(())
        },
    )
    .await;
    assert!(both.is_some(), "handler did not create its tables");
    let t0 = Instant::now();
    let r = h.client.get(h.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(t0.elapsed() < ROOT_AT_ONCE, "GET / took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_answers_when_storage_is_down_at_start() {
    let closed = closed_port();
    let cfg = HandlerConfig::with_storage(
        Mode::CustomHandler,
        &connection_string_for_port(closed.port),
    );
    // Storage stays down for the whole test, so a handler that waited for it before binding would
    // never become ready (spawn gives up after 30 s); one that waited for an attempt to time out
    // would take STORAGE_TIMEOUT_MS (10 s).
    let started = Instant::now();
    let h = Handler::spawn(cfg).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "binding must not wait for storage ({:?})",
        started.elapsed()
    );
    let r = h.client.get(h.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = h.discover("").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_are_json_errors() {
    let h = Handler::start().await;
    for (m, p, status) in [
        (reqwest::Method::GET, "/api/Nope", 404),
        (reqwest::Method::POST, "/api/Nope", 404),
        (reqwest::Method::GET, "/nope/at/all", 404),
        (reqwest::Method::POST, "/SomeOtherFunction", 404),
        (reqwest::Method::GET, "/api/ServiceRegistrar", 405),
        (reqwest::Method::PUT, "/api/ServiceRegistrar", 405),
        (reqwest::Method::DELETE, "/api/ServiceDiscovery", 405),
        (reqwest::Method::POST, "/api/ServiceDiscovery", 405),
    ] {
        let r = h.request(m.clone(), p, None).await;
        assert_eq!(r.status, status, "{m} {p}: {} {}", r.status, r.text);
        r.assert_json_content_type();
        let v: Value = r.json();
        assert_error_body(&v, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_writes_one_object_per_line() {
    let cfg = HandlerConfig::new(Mode::CustomHandler).env("RUST_LOG_FORMAT", "json");
    let h = Handler::spawn(cfg).await;
    h.register_ok(&json!({"serviceName": "logme", "endpoint": "https://l.example.com"}))
        .await;
    let _ = h.register(&json!({"serviceName": "bad/one"})).await;
    let _ = h.sweep().await;
    h.wait_for_log("\"/HealthMonitor\"", Duration::from_secs(10))
        .await;
    let stdout = h.stdout();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty(),
        "no log lines on stdout with RUST_LOG_FORMAT=json; stderr:\n{}",
        h.stderr()
    );
    for l in lines {
        let v: Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"));
        assert!(v.is_object(), "stdout line is not a JSON object: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_storage_gives_503_not_a_hang() {
    // Storage accepts TCP connections but never answers.
    let silent = SilentTarget::start();
    let cfg = HandlerConfig::with_storage(
        Mode::CustomHandler,
        &connection_string_for_port(silent.port),
    );
    let h = Handler::spawn(cfg).await;
    // A GET / that touched this storage would wait for its 10 s timeout.
    let t0 = Instant::now();
    let r = h.client.get(h.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(t0.elapsed() < ROOT_AT_ONCE, "GET / took {:?}", t0.elapsed());
    let t0 = Instant::now();
    let r = h
        .register(&json!({"serviceName": "x", "endpoint": "https://x.example.com"}))
        .await;
    let took = t0.elapsed();
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    // One storage timeout (STORAGE_TIMEOUT_MS, 10 s by default) plus slack: a request
    // must not stack several full timeouts, and two take at least 20 s however fast the machine.
    assert!(
        took < Duration::from_secs(20),
        "a black-holed storage request took {took:?}"
    );
}

#[test]
fn invalid_table_names_stop_start_up() {
    for (var, value) in [
        ("REGISTRY_TABLE", "bad-name"),
        ("HEALTH_TABLE", "1starts"),
        ("REGISTRY_TABLE", "ab"),
    ] {
        let mut cfg = HandlerConfig::new(Mode::CustomHandler);
        cfg.set_tables = false;
        let cfg = cfg.env(var, value);
        let (status, _elapsed, _stdout, stderr) = run_handler_to_exit(&cfg, Duration::from_secs(5));
        let status = status
            .unwrap_or_else(|| panic!("{var}={value}: still running after 5 s (must refuse)"));
        assert!(!status.success(), "{var}={value}: {status:?}");
        assert!(
            stderr.contains(var),
            "{var}={value}: stderr should name the variable:\n{stderr}"
        );
    }
}

/// Runs a standalone handler that must refuse to start, and returns its stderr.
fn refused_at_start(cfg: &HandlerConfig, what: &str) -> String {
    let (status, _elapsed, stdout, stderr) = run_handler_to_exit(cfg, Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("{what}: still running after 10 s (must refuse)"));
    assert!(!status.success(), "{what}: {status:?}");
    assert!(!stdout.contains("handler listening"), "{what}: {stdout}");
    stderr
}

#[test]
fn a_wildcard_origin_stops_start_up_naming_the_variable() {
    let cfg = HandlerConfig::new(Mode::Standalone)
        .env("REGISTRY_ALLOWED_ORIGINS", "https://*.example.com");
    let stderr = refused_at_start(&cfg, "wildcard origin");
    assert!(
        stderr.contains("REGISTRY_ALLOWED_ORIGINS is invalid") && stderr.contains("wildcard"),
        "{stderr}"
    );
}

#[test]
fn a_key_pasted_into_any_field_of_a_key_line_is_never_printed() {
    // Standard Base64, as a key is often pasted: `+`, `/` and `=` fit no field.
    let key = "PASTEDKEY+01234/56789abcdefPASTEDKEY=";
    let digest = sha256_hex(key);
    for line in [
        format!("ci {key} api {digest}"),
        format!("ci write {key} {digest}"),
        format!("ci write api:{key}/x {digest}"),
        format!("ci write api {key}"),
        format!("{key}/ write api {digest}"),
    ] {
        let cfg = HandlerConfig::new(Mode::Standalone).env("REGISTRY_API_KEYS", &line);
        let stderr = refused_at_start(&cfg, &line);
        assert!(
            stderr.contains("REGISTRY_API_KEYS is invalid: line 1"),
            "{stderr}"
        );
        assert!(!stderr.contains("PASTEDKEY"), "{line}: printed:\n{stderr}");
    }
}

#[test]
fn metrics_on_a_reachable_address_stop_start_up_without_the_opt_in() {
    // Refused before anything binds. The address is TEST-NET-1 (RFC 5737), held by no interface
    // here: even a handler that skipped the check could not listen on it, so no test ever opens a
    // non-loopback listener.
    let cfg = HandlerConfig::new(Mode::Standalone)
        .env("METRICS_BIND", &format!("192.0.2.1:{}", free_port()));
    let stderr = refused_at_start(&cfg, "METRICS_BIND 192.0.2.1");
    let line = stderr
        .lines()
        .find(|l| l.contains("METRICS_BIND is invalid") && l.contains("METRICS_ALLOW_REMOTE=true"));
    assert!(line.is_some(), "one line naming both variables:\n{stderr}");
}
