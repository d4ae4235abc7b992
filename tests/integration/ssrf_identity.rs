//! The SSRF guard against the managed-identity endpoint and against numeric host spellings, judged
//! by address *and port*, with hit counters on local stand-ins proving that no packet reaches a
//! refused address:port.
//!
//! The identity endpoint is a local HTTP target counting every connection (`IDENTITY_ENDPOINT`
//! pointing at it, loopback otherwise allowed as the harness does), so "refused" here is the
//! identity rule alone. Names other than `localhost` come from a hosts file only the handler sees
//! (`HandlerConfig::host`), so nothing outside 127.0.0.1 is ever resolved or contacted.

use crate::harness::*;
use serde_json::{json, Value};

/// Runs one sweep and returns each registration's health row by service name.
async fn sweep_rows(h: &Handler) -> Vec<(String, Value)> {
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut rows: Vec<(String, Value)> = h
        .tables()
        .rows(&h.health_table)
        .await
        .into_iter()
        .map(|row| (row["serviceName"].as_str().unwrap().to_owned(), row))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// `cases`: (service name, endpoint, Some(expected refusal text) or None for healthy).
async fn assert_sweep(h: &Handler, cases: &[(&str, String, Option<&str>)]) {
    for (name, endpoint, _) in cases {
        h.register_ok(&json!({"serviceName": name, "endpoint": endpoint}))
            .await;
    }
    let rows = sweep_rows(h).await;
    assert_eq!(rows.len(), cases.len(), "{rows:?}");
    for (name, endpoint, refusal) in cases {
        let row = &rows.iter().find(|(n, _)| n == name).unwrap().1;
        let message = row["errorMessage"].as_str().unwrap_or_default();
        match refusal {
            Some(reason) => {
                assert_eq!(row["status"], "unhealthy", "{endpoint}: {row}");
                assert!(
                    message.contains("refused") && message.contains(reason),
                    "{endpoint} must be refused ({reason}): {row}"
                );
            }
            None => assert_eq!(row["status"], "healthy", "{endpoint} must be probed: {row}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_endpoint_on_an_ip_is_refused_at_its_port_and_only_there() {
    let identity = HttpTarget::status(200);
    let other = HttpTarget::status(200);
    let other_tcp = TcpTarget::start();
    let (p, q, r) = (identity.port, other.port, other_tcp.port);
    let h = Handler::start_with(&[
        (
            "IDENTITY_ENDPOINT",
            &format!("http://127.0.0.1:{p}/msi/token"),
        ),
        ("HEALTH_PROBE_TIMEOUT_MS", "2000"),
        ("HEALTH_PROBE_JITTER_MS", "0"),
    ])
    .await;
    // Literals are judged at registration.
    for endpoint in [
        format!("http://127.0.0.1:{p}/msi/token"),
        format!("tcp://127.0.0.1:{p}"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
    ] {
        h.register(&json!({"serviceName": "lit", "endpoint": endpoint}))
            .await
            .assert_error(400, Some("endpoint"));
    }
    let identity_reason = "managed-identity";
    assert_sweep(
        &h,
        &[
            // A name resolving to the identity address, at its port: refused on HTTP and TCP.
            (
                "http-name",
                format!("http://localhost:{p}/msi/token"),
                Some(identity_reason),
            ),
            (
                "tcp-name",
                format!("tcp://localhost:{p}"),
                Some(identity_reason),
            ),
            // The same address at other ports is an ordinary target.
            ("http-other-port", format!("http://localhost:{q}/"), None),
            ("tcp-other-port", format!("tcp://127.0.0.1:{r}"), None),
            ("http-literal-other", format!("http://127.0.0.1:{q}/"), None),
        ],
    )
    .await;
    assert_eq!(identity.hits(), 0, "a probe reached the identity endpoint");
    assert!(other.hits() >= 2, "the control targets were not probed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_endpoint_by_name_refuses_the_addresses_it_resolves_to() {
    if !private_hosts_file_works() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to run this test"
        );
        eprintln!("skipped: needs root for a private hosts file (unshare --mount)");
        return;
    }
    let identity = HttpTarget::status(200);
    let other = HttpTarget::status(200);
    let other_tcp = TcpTarget::start();
    let (p, q, r) = (identity.port, other.port, other_tcp.port);
    let cfg = HandlerConfig::new(Mode::CustomHandler)
        .env(
            "IDENTITY_ENDPOINT",
            &format!("http://msi.test:{p}/msi/token"),
        )
        .env("HEALTH_PROBE_TIMEOUT_MS", "2000")
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .host("msi.test", "127.0.0.1")
        .host("svc.test", "127.0.0.1");
    let h = Handler::spawn(cfg).await;
    // The identity host by name, and the address it resolves to, at its port: no at registration.
    for endpoint in [
        format!("http://msi.test:{p}/"),
        format!("tcp://MSI.test:{p}"),
        format!("http://127.0.0.1:{p}/msi/token"),
        format!("tcp://127.0.0.1:{p}"),
    ] {
        h.register(&json!({"serviceName": "lit", "endpoint": endpoint}))
            .await
            .assert_error(400, Some("endpoint"));
    }
    let identity_reason = "managed-identity";
    assert_sweep(
        &h,
        &[
            // Another name for the same address, at the identity port.
            (
                "http-alias",
                format!("http://svc.test:{p}/msi/token"),
                Some(identity_reason),
            ),
            (
                "tcp-alias",
                format!("tcp://svc.test:{p}"),
                Some(identity_reason),
            ),
            // The identity host itself and its address at other ports are ordinary targets.
            ("http-other-port", format!("http://svc.test:{q}/"), None),
            ("tcp-identity-host", format!("tcp://msi.test:{r}"), None),
            ("http-literal-other", format!("http://127.0.0.1:{q}/"), None),
        ],
    )
    .await;
    assert_eq!(identity.hits(), 0, "a probe reached the identity endpoint");
    assert!(other.hits() >= 2, "the control targets were not probed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_spellings_are_judged_alike_on_every_scheme() {
    let target = TcpTarget::start();
    let p = target.port;
    let h = Handler::start_with(&[("HEALTH_ALLOW_LOOPBACK", "false")]).await;
    let spellings = [
        "tcp://2852039166:80".to_owned(), // 169.254.169.254 in decimal
        format!("tcp://127.1:{p}"),
        format!("tcp://0x7f000001:{p}"),
        format!("tcp://017700000001:{p}"),
        format!("tcp://0:{p}"),
        format!("tcp://%31%32%37.0.0.1:{p}"),
        format!("tcp://0x7f.1:{p}"),
        format!("http://[::127.0.0.1]:{p}/"),
        format!("tcp://[::127.0.0.1]:{p}"),
        "http://[::a9fe:a9fe]/".to_owned(),
    ];
    for endpoint in &spellings {
        let r = h
            .register(&json!({"serviceName": "num", "endpoint": endpoint}))
            .await;
        let error = r.assert_error(400, Some("endpoint"));
        assert!(
            error["error"].as_str().unwrap().contains("not allowed"),
            "{endpoint}: {error}"
        );
    }
    assert!(
        h.tables().rows(&h.registry_table).await.is_empty(),
        "a refused registration must write nothing"
    );
    // Rows another client wrote with those spellings are refused by the sweep, unsent. (Only the
    // ones the system resolver also reads as numbers: on a guard that did not normalise them, the
    // others would become DNS queries or IPv6 packets off this machine.)
    let written = &spellings[..5];
    for (i, endpoint) in written.iter().enumerate() {
        h.tables()
            .upsert(
                &h.registry_table,
                &json!({
                    "PartitionKey": "default", "RowKey": format!("num{i}"),
                    "serviceName": format!("num{i}"), "endpoint": endpoint,
                    "healthEndpoint": endpoint, "serviceType": "default",
                    "version": "1.0.0", "tags": "[]", "metadata": "{}",
                    "registeredAt": "2026-11-25T09:12:58.413Z",
                    "lastHeartbeat": "2026-11-25T09:12:58.413Z"
                }),
            )
            .await;
    }
    let rows = sweep_rows(&h).await;
    assert_eq!(rows.len(), written.len(), "{rows:?}");
    for (name, row) in rows {
        assert_eq!(row["status"], "unhealthy", "{name}: {row}");
        assert!(
            row["errorMessage"].as_str().unwrap().contains("refused"),
            "{name}: {row}"
        );
    }
    assert_eq!(
        target.accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection may reach a refused address"
    );
}
