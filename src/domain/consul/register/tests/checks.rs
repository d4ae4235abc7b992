//! Every check error names the Consul field it came from, and no error echoes a value.

use super::*;

#[test]
fn check_errors_name_the_consul_field() {
    let check = |c: Value| field_of(with("Check", c));
    let checks = |c: Value| field_of(with("Checks", json!([c])));
    assert_eq!(check(json!("10s")), "Check");
    assert_eq!(field_of(with("Checks", json!({"TTL": "10s"}))), "Checks");
    assert_eq!(field_of(with("Checks", json!(["x"]))), "Checks");
    assert_eq!(
        check(json!({"GRPC": "10.0.0.5:9090", "Interval": "5s"})),
        "Check.GRPC"
    );
    assert_eq!(
        checks(json!({"grpc": "10.0.0.5:9090", "grpc_use_tls": true})),
        "Checks.GRPC"
    );
    assert_eq!(
        check(json!({"Args": ["/bin/true"], "Interval": "5s"})),
        "Check"
    );
    assert_eq!(
        check(json!({"script": "x", "docker_container_id": "c"})),
        "Check"
    );
    assert_eq!(check(json!({"UDP": "h:53", "Interval": "5s"})), "Check");
    assert_eq!(check(json!({"TTL": "10s", "Bogus": 1})), "Check");
    assert_eq!(check(json!({"Notes": "only notes"})), "Check.TTL");
    assert_eq!(check(json!({"TTL": "10"})), "Check.TTL");
    assert_eq!(check(json!({"TTL": "4s"})), "Check.TTL");
    assert_eq!(check(json!({"TTL": "25h"})), "Check.TTL");
    assert_eq!(check(json!({"TTL": "10.5s"})), "Check.TTL");
    assert_eq!(checks(json!({"ttl": "1s"})), "Checks.TTL");
    assert_eq!(
        check(json!({"TTL": "10s", "Interval": "5s"})),
        "Check.Interval"
    );
    assert_eq!(
        check(json!({"TTL": "10s", "HTTP": "http://h", "Interval": "5s"})),
        "Check"
    );
    assert_eq!(check(json!({"HTTP": "http://h/health"})), "Check.Interval");
    assert_eq!(
        check(json!({"HTTP": "ftp://h", "Interval": "5s"})),
        "Check.HTTP"
    );
    assert_eq!(
        checks(json!({"http": "not a url", "interval": "5s"})),
        "Checks.HTTP"
    );
    assert_eq!(
        check(json!({"HTTP": "http://h", "Interval": "5s", "Method": "POST"})),
        "Check.HTTP"
    );
    assert_eq!(
        check(json!({"HTTP": "http://h", "Interval": "5s", "Header": {"a": ["b"]}})),
        "Check.HTTP"
    );
    assert_eq!(
        check(json!({"HTTP": "http://h", "Interval": "5s", "Body": "{}"})),
        "Check.HTTP"
    );
    assert_eq!(
        check(json!({"HTTP": "http://h", "Interval": "5s", "TLSSkipVerify": true})),
        "Check.HTTP"
    );
    assert_eq!(
        checks(json!({"http": "http://h", "interval": "5s", "tls_skip_verify": true})),
        "Checks.HTTP"
    );
    assert!(parse(with(
        "Check",
        json!({"HTTP": "http://h", "Interval": "5s", "Method": "get",
                                        "Header": {}, "TLSSkipVerify": false})
    ))
    .is_ok());
    assert_eq!(check(json!({"TCP": "h", "Interval": "5s"})), "Check.TCP");
    assert_eq!(
        check(json!({"TCP": "::1:80", "Interval": "5s"})),
        "Check.TCP"
    );
    assert_eq!(
        check(json!({"TCP": "h:99999", "Interval": "5s"})),
        "Check.TCP"
    );
    assert_eq!(
        check(json!({"TCP": "h:80", "Interval": "5s", "TCPUseTLS": true})),
        "Check.TCP"
    );
    assert!(parse(with("Check", json!({"TCP": "[::1]:80", "Interval": "5s"}))).is_ok());
    assert_eq!(
        check(json!({"HTTP": "http://h", "Interval": "5s", "Timeout": "10ms"})),
        "Check.Timeout"
    );
    assert_eq!(
        check(json!({"HTTP": "http://h", "Interval": "5s", "Timeout": "31s"})),
        "Check.Timeout"
    );
    assert_eq!(
        check(json!({"HTTP": "http://h", "Interval": "x"})),
        "Check.Interval"
    );
    assert_eq!(
        check(json!({"TTL": "10s", "Status": "unknown"})),
        "Check.Status"
    );
    assert_eq!(
        checks(json!({"ttl": "10s", "status": "ok"})),
        "Checks.Status"
    );
    assert_eq!(
        check(json!({"TTL": "10s", "DeregisterCriticalServiceAfter": "soon"})),
        "Check.DeregisterCriticalServiceAfter"
    );
    assert_eq!(check(json!({"TTL": "10s", "CheckID": 5})), "Check");
    assert_eq!(check(json!({"TTL": "10s", "ttl": "20s"})), "Check.TTL");
    assert_eq!(
        field_of(with("Checks", json!([{"TTL": "10s"}, {"ttl": "20s"}]))),
        "Checks",
        "a second TTL check"
    );
    assert_eq!(
        field_of(with(
            "Checks",
            json!([{"TCP": "h:1", "Interval": "1s"}, {"HTTP": "http://h", "Interval": "1s"}])
        )),
        "Checks",
        "a second probed check"
    );
}

#[test]
fn errors_never_echo_values() {
    for body in [
        with("Address", json!("https://user:s3cr3t@h")),
        with("Meta", json!({"token": "s3cr3t".repeat(100)})),
        with(
            "Check",
            json!({"HTTP": "ftp://user:s3cr3t@h", "Interval": "1s"}),
        ),
        with("Check", json!({"TTL": "s3cr3t"})),
        with("ID", json!("s3cr3t:x")),
    ] {
        let error = parse(body.clone()).unwrap_err();
        assert!(
            !error.message.contains("s3cr3t"),
            "{body}: {}",
            error.message
        );
    }
}

#[test]
fn the_probed_address_names_the_consul_field_it_came_from() {
    let probe_field = |body: Value| parse(body).unwrap().probe_field;
    assert_eq!(probe_field(ok_body()), "Address");
    assert_eq!(probe_field(with("Check", json!({"TTL": "10s"}))), "Address");
    assert_eq!(
        probe_field(with(
            "Check",
            json!({"HTTP": "http://127.0.0.1:80/h", "Interval": "5s"})
        )),
        "Check.HTTP"
    );
    assert_eq!(
        probe_field(with(
            "Checks",
            json!([{"TTL": "10s"}, {"tcp": "127.0.0.1:80", "interval": "5s"}])
        )),
        "Checks.TCP"
    );
}
