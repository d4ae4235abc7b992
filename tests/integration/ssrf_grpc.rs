//! The SSRF guard on gRPC health endpoints, table-driven: `grpc://` and `grpcs://` targets at every
//! address class the guard refuses are a 400 at registration when literal (nothing written), and
//! refused at probe time, unsent, when a name or another client's row leads there; hit counters on
//! local stand-ins prove no connection arrives. The same rules as for `http://` and `tcp://`
//! (ssrf.rs, ssrf_identity.rs).

use crate::harness::*;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

const SCHEMES: [&str; 2] = ["grpc", "grpcs"];

/// Every refused class, as `host:port` in a literal spelling.
fn refused_literals(loopback_port: u16) -> Vec<(String, &'static str)> {
    let p = loopback_port;
    vec![
        ("169.254.169.254:80".into(), "link-local (metadata)"),
        ("[fe80::1]:80".into(), "IPv6 link-local"),
        ("[::ffff:169.254.169.254]:80".into(), "IPv4-mapped metadata"),
        ("2852039166:80".into(), "decimal metadata"),
        ("0xa9fea9fe:80".into(), "hex metadata"),
        ("0251.0376.0251.0376:80".into(), "octal metadata"),
        ("[64:ff9b::a9fe:a9fe]:80".into(), "NAT64 metadata"),
        ("168.63.129.16:80".into(), "wireserver"),
        ("100.100.100.200:80".into(), "other cloud metadata"),
        ("[fd00:ec2::254]:80".into(), "IPv6 metadata"),
        ("0.0.0.0:80".into(), "unspecified"),
        ("[::]:80".into(), "IPv6 unspecified"),
        ("224.0.0.1:80".into(), "multicast"),
        ("[ff02::1]:80".into(), "IPv6 multicast"),
        ("255.255.255.255:80".into(), "broadcast"),
        ("[::10.0.0.1]:80".into(), "deprecated IPv4-compatible"),
        (format!("127.0.0.1:{p}"), "loopback"),
        (format!("127.1:{p}"), "short loopback"),
        (format!("[::1]:{p}"), "IPv6 loopback"),
        (format!("[::ffff:127.0.0.1]:{p}"), "IPv4-mapped loopback"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_grpc_targets_of_every_refused_class_are_400s() {
    let target = TcpTarget::start();
    let h = Handler::start_with(&[("HEALTH_ALLOW_LOOPBACK", "false")]).await;
    for scheme in SCHEMES {
        for (address, class) in refused_literals(target.port) {
            for path in ["", "/shop.v1.Orders"] {
                let endpoint = format!("{scheme}://{address}{path}");
                let r = h
                    .register(
                        &json!({"serviceName": "g", "endpoint": "http://10.1.2.3:8080/",
                                      "healthEndpoint": endpoint}),
                    )
                    .await;
                let error = r.assert_error(400, Some("healthEndpoint"));
                assert!(
                    error["error"].as_str().unwrap().contains("not allowed"),
                    "{endpoint} ({class}): {error}"
                );
            }
        }
    }
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    assert_eq!(target.accepted.load(Ordering::SeqCst), 0);
    // A private VNet address is fine by default, on both schemes.
    for scheme in SCHEMES {
        h.register_ok(
            &json!({"serviceName": scheme, "endpoint": "http://10.1.2.3:8080/",
                              "healthEndpoint": format!("{scheme}://10.1.2.3:50051")}),
        )
        .await;
    }
}

/// A registry row as another client would write it, bypassing registration's checks.
fn raw_row(name: &str, health_endpoint: &str) -> Value {
    json!({
        "PartitionKey": "default", "RowKey": name, "serviceName": name,
        "endpoint": "http://10.1.2.3:8080/", "healthEndpoint": health_endpoint,
        "serviceType": "default", "version": "1.0.0", "tags": "[]", "metadata": "{}",
        "registeredAt": "2026-11-25T09:12:58.413Z", "lastHeartbeat": "2026-11-25T09:12:58.413Z"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_stored_rows_leading_to_refused_addresses_are_never_contacted() {
    let target = TcpTarget::start();
    let p = target.port;
    let h = Handler::start_with(&[
        ("HEALTH_ALLOW_LOOPBACK", "false"),
        ("HEALTH_PROBE_TIMEOUT_MS", "2000"),
    ])
    .await;
    let mut names = Vec::new();
    for scheme in SCHEMES {
        // A name: registration accepts it, the probe resolves it to loopback and refuses it.
        let name = format!("{scheme}-by-name");
        h.register_ok(
            &json!({"serviceName": name, "endpoint": "http://10.1.2.3:8080/",
                              "healthEndpoint": format!("{scheme}://localhost:{p}/svc")}),
        )
        .await;
        names.push(name);
        // Rows another client wrote with refused literals: refused by the sweep, unsent.
        for (i, spelling) in [
            format!("127.0.0.1:{p}"),
            format!("127.1:{p}"),
            format!("0x7f000001:{p}"),
            format!("[::ffff:127.0.0.1]:{p}"),
        ]
        .iter()
        .enumerate()
        {
            let name = format!("{scheme}-row{i}");
            h.tables()
                .upsert(
                    &h.registry_table,
                    &raw_row(&name, &format!("{scheme}://{spelling}")),
                )
                .await;
            names.push(name);
        }
    }
    let report = h.sweep_report().await;
    assert_eq!(
        (report.probed, report.refused),
        (names.len() as u64, names.len() as u64),
        "{report:?}"
    );
    let rows = h.tables().rows(&h.health_table).await;
    assert_eq!(rows.len(), names.len(), "{rows:?}");
    for row in rows {
        assert_eq!(row["status"], "unhealthy", "{row}");
        let message = row["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("refused") && message.contains("loopback"),
            "{row}"
        );
    }
    assert_eq!(
        target.accepted.load(Ordering::SeqCst),
        0,
        "no connection may reach a refused address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_endpoint_and_the_deny_list_apply_to_grpc() {
    let identity = TcpTarget::start();
    let server = GrpcHealthServer::start(None).await;
    let (p, q) = (identity.port, server.port);
    let h = Handler::start_with(&[
        (
            "IDENTITY_ENDPOINT",
            &format!("http://127.0.0.1:{p}/msi/token"),
        ),
        ("HEALTH_DENY_CIDRS", "127.0.0.2/32"),
        ("HEALTH_PROBE_TIMEOUT_MS", "2000"),
    ])
    .await;
    for scheme in SCHEMES {
        for endpoint in [
            format!("{scheme}://127.0.0.1:{p}"),
            format!("{scheme}://[::ffff:127.0.0.1]:{p}/x"),
            format!("{scheme}://127.0.0.2:{q}"),
        ] {
            h.register(
                &json!({"serviceName": "lit", "endpoint": "http://10.1.2.3:8080/",
                               "healthEndpoint": endpoint}),
            )
            .await
            .assert_error(400, Some("healthEndpoint"));
        }
        h.register_ok(&json!({"serviceName": format!("{scheme}-identity"),
                              "endpoint": "http://10.1.2.3:8080/",
                              "healthEndpoint": format!("{scheme}://localhost:{p}")}))
            .await;
    }
    // The control: the same address at another port is an ordinary target.
    h.register_ok(
        &json!({"serviceName": "control", "endpoint": "http://10.1.2.3:8080/",
                          "healthEndpoint": format!("grpc://127.0.0.1:{q}")}),
    )
    .await;
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    for scheme in SCHEMES {
        let row = h
            .tables()
            .row(&h.health_table, "default", &format!("{scheme}-identity"))
            .await
            .unwrap();
        let message = row["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("refused") && message.contains("managed-identity"),
            "{row}"
        );
    }
    let control = h
        .tables()
        .row(&h.health_table, "default", "control")
        .await
        .unwrap();
    assert_eq!(control["status"], "healthy", "{control}");
    assert_eq!(
        identity.accepted.load(Ordering::SeqCst),
        0,
        "a probe reached the identity endpoint"
    );
    assert_eq!(server.checks().await, 1, "only the control was checked");
}
