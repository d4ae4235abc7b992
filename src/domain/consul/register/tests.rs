//! Register bodies as real clients send them (the Go client, Dapr, Fabio, python-consul, py-consul,
//! node-consul), each mapping rule, and every error's field.

use super::*;
use crate::domain::consul::CheckStatus;
use crate::domain::CheckKind;
use serde_json::{json, Map};

mod catalog;
mod checks;

fn parse(body: Value) -> Result<ConsulRegistration, ValidationError> {
    ConsulRegistration::parse(&body, &ConsulDefaults::default())
}

fn field_of(body: Value) -> &'static str {
    parse(body).unwrap_err().field
}

fn ok_body() -> Value {
    json!({"Name": "web", "Address": "10.0.0.5", "Port": 8080})
}

fn with(key: &str, value: Value) -> Value {
    let mut body = ok_body();
    body[key] = value;
    body
}

#[test]
fn the_go_clients_pascal_case_body_as_dapr_sends_it() {
    let r = parse(json!({
        "ID": "orders-10.0.0.7-3500", "Name": "orders", "Tags": ["dapr"],
        "Address": "10.0.0.7", "Port": 50002,
        "Meta": {"DAPR_PORT": "50002", "DAPR_PROTOCOL": "http"},
        "Checks": [{"Name": "Dapr Health Status", "CheckID": "daprHealth:orders",
                    "Interval": "15s", "HTTP": "http://10.0.0.7:3500/v1.0/healthz?appid=orders"}]
    }))
    .unwrap();
    let reg = &r.registration;
    assert_eq!(r.service_id, "orders-10.0.0.7-3500");
    assert_eq!(reg.key.row_key(), "orders:orders-10.0.0.7-3500");
    assert_eq!(reg.key.service_type.as_str(), "default");
    assert_eq!(reg.endpoint, "http://10.0.0.7:50002");
    assert_eq!(
        reg.health_endpoint,
        "http://10.0.0.7:3500/v1.0/healthz?appid=orders"
    );
    assert_eq!(
        reg.health_check.as_ref().unwrap().kind,
        Some(CheckKind::Http)
    );
    assert_eq!(reg.tags, ["dapr"]);
    assert_eq!(reg.metadata["DAPR_PORT"], json!("50002"));
    assert_eq!((reg.ttl_seconds, reg.weight), (None, None));
    assert_eq!(
        r.checks,
        [ConsulCheck {
            kind: ConsulCheckKind::Http,
            check_id: Some("daprHealth:orders".into()),
            name: Some("Dapr Health Status".into()),
            initial_status: None,
            deregister_critical_after: None,
        }]
    );
    assert_eq!(r.node, None);
}

#[test]
fn python_consuls_lowercase_keys_and_check() {
    let r = parse(json!({
        "name": "api", "id": "api-1", "address": "api.internal", "port": 443,
        "tags": ["v1"], "meta": {"scheme": "https", "version": "2.1.0"},
        "check": {"ttl": "10s"}, "enabletagoverride": true
    }))
    .unwrap();
    assert_eq!(r.registration.key.row_key(), "api:api-1");
    assert_eq!(r.registration.endpoint, "https://api.internal:443");
    assert_eq!(r.registration.version, "2.1.0");
    assert_eq!(r.registration.ttl_seconds, Some(10));
    assert!(r.registration.health_check.is_none());
    assert!(
        r.registration.metadata.is_empty(),
        "scheme and version are derived, not stored"
    );
    assert_eq!(r.checks[0].kind, ConsulCheckKind::Ttl);
}

#[test]
fn py_consuls_lowercase_checks_list_weights_and_snake_case() {
    let r = parse(json!({
        "name": "pay", "id": "pay-7", "address": "10.1.2.3", "port": 9000,
        "meta": {"serviceType": "api"}, "weights": {"Passing": 10, "Warning": 1},
        "tagged_addresses": {"lan": "10.1.2.3"},
        "checks": [{"tcp": "10.1.2.3:9000", "interval": "10s", "timeout": "2s",
                    "deregister_critical_service_after": "90m"}]
    }))
    .unwrap();
    let reg = &r.registration;
    assert_eq!(reg.key.service_type.as_str(), "api");
    assert_eq!(reg.weight, Some(10));
    assert_eq!(reg.health_endpoint, "tcp://10.1.2.3:9000");
    let check = reg.health_check.as_ref().unwrap();
    assert_eq!(check.kind, Some(CheckKind::Tcp));
    assert_eq!(check.timeout, Some(Duration::from_secs(2)));
    assert_eq!(r.deregister_critical_after, Some(Duration::from_secs(5400)));
    assert!(!reg.metadata.contains_key("serviceType"));
}

#[test]
fn fabios_http_and_ttl_checks_fill_both_the_health_endpoint_and_the_ttl() {
    let r = parse(json!({
        "ID": "fabio-host-9998", "Name": "fabio", "Address": "192.168.1.10", "Port": 9999,
        "Tags": [], "Checks": [
            {"HTTP": "http://192.168.1.10:9998/health", "Interval": "1s", "Timeout": "3s",
             "DeregisterCriticalServiceAfter": "1m"},
            {"TTL": "15s", "Status": "passing", "DeregisterCriticalServiceAfter": "30s"}
        ]
    }))
    .unwrap();
    assert_eq!(r.service_id, "fabio-host-9998");
    assert_eq!(r.registration.ttl_seconds, Some(15));
    assert_eq!(
        r.registration.health_endpoint,
        "http://192.168.1.10:9998/health"
    );
    assert_eq!(r.checks[1].initial_status, Some(CheckStatus::Passing));
    assert_eq!(
        r.deregister_critical_after,
        Some(Duration::from_secs(30)),
        "the shortest"
    );
}

#[test]
fn check_and_checks_together_merge_and_an_empty_check_is_none() {
    let r = parse(json!({
        "Name": "w", "Address": "w.example", "Port": 80,
        "Check": {"TTL": "30s"}, "Checks": [{"HTTP": "http://w.example/h", "Interval": "5s"}]
    }))
    .unwrap();
    let kinds: Vec<_> = r.checks.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ConsulCheckKind::Ttl, ConsulCheckKind::Http]);
    let r = parse(with("Check", json!({}))).unwrap();
    assert!(r.checks.is_empty());
    let r = parse(with("Checks", json!(null))).unwrap();
    assert!(r.checks.is_empty());
}

#[test]
fn an_absent_id_or_one_equal_to_the_name_is_the_recipe_style_row() {
    for body in [ok_body(), with("ID", json!("web")), with("ID", json!(""))] {
        let r = parse(body.clone()).unwrap();
        assert_eq!(r.service_id, "web", "{body}");
        assert_eq!(r.registration.key.instance_id, None, "{body}");
        assert_eq!(r.registration.key.row_key(), "web");
    }
}

#[test]
fn addresses_become_endpoint_hosts() {
    for (address, endpoint) in [
        ("10.0.0.5", "http://10.0.0.5:8080"),
        ("2001:db8::1", "http://[2001:db8::1]:8080"),
        ("[2001:db8::1]", "http://[2001:db8::1]:8080"),
        (
            "orders.svc.cluster.local",
            "http://orders.svc.cluster.local:8080",
        ),
        ("my_host", "http://my_host:8080"),
    ] {
        let r = parse(with("Address", json!(address))).unwrap();
        assert_eq!(r.registration.endpoint, endpoint, "{address}");
    }
}

#[test]
fn the_service_type_comes_from_meta_or_the_configured_default() {
    let defaults = ConsulDefaults {
        service_type: "consul".into(),
    };
    let r = ConsulRegistration::parse(&ok_body(), &defaults).unwrap();
    assert_eq!(r.registration.key.service_type.as_str(), "consul");
    let body = with(
        "Meta",
        json!({"serviceType": "db", "endpoint": "http://ignored"}),
    );
    let r = ConsulRegistration::parse(&body, &defaults).unwrap();
    assert_eq!(r.registration.key.service_type.as_str(), "db");
    assert!(r.registration.metadata.is_empty());
    let bad = ConsulDefaults {
        service_type: "no spaces".into(),
    };
    assert_eq!(
        ConsulRegistration::parse(&ok_body(), &bad)
            .unwrap_err()
            .field,
        "serviceType"
    );
}

#[test]
fn durations_as_numbers_are_nanoseconds() {
    let r = parse(with("Check", json!({"TTL": 20_000_000_000u64}))).unwrap();
    assert_eq!(r.registration.ttl_seconds, Some(20));
}

#[test]
fn service_errors_name_the_consul_field() {
    assert_eq!(field_of(json!([1])), "body");
    assert_eq!(field_of(json!({"Address": "a", "Port": 1})), "Name");
    assert_eq!(field_of(with("Name", json!(""))), "Name");
    assert_eq!(field_of(with("Name", json!("a/b"))), "Name");
    assert_eq!(field_of(with("Name", json!(7))), "Name");
    assert_eq!(
        field_of(json!({"Name": "a", "name": "b", "Address": "a", "Port": 1})),
        "Name"
    );
    assert_eq!(field_of(with("ID", json!("a:b"))), "ID");
    assert_eq!(field_of(with("ID", json!("x".repeat(129)))), "ID");
    for address in [
        json!(null),
        json!(""),
        json!("0.0.0.0"),
        json!("::"),
        json!("http://h"),
        json!("h:80"),
        json!("a b"),
        json!("h/p"),
        json!(5),
        json!("-h"),
    ] {
        assert_eq!(
            field_of(with("Address", address.clone())),
            "Address",
            "{address}"
        );
    }
    for port in [
        json!(null),
        json!(0),
        json!(65536),
        json!(-1),
        json!("80"),
        json!(80.5),
    ] {
        assert_eq!(field_of(with("Port", port.clone())), "Port", "{port}");
    }
    assert_eq!(field_of(with("Tags", json!("t"))), "Tags");
    assert_eq!(field_of(with("Tags", json!([1]))), "Tags");
    assert_eq!(field_of(with("Tags", json!(vec!["t"; 33]))), "Tags");
    assert_eq!(field_of(with("Tags", json!([""]))), "Tags");
    assert_eq!(field_of(with("Meta", json!(["a"]))), "Meta");
    assert_eq!(field_of(with("Meta", json!({"n": 1}))), "Meta");
    assert_eq!(field_of(with("Meta", json!({"a.b": "x"}))), "Meta");
    assert_eq!(field_of(with("Meta", json!({"consul-x": "x"}))), "Meta");
    assert_eq!(
        field_of(with("Meta", json!({"k": "v".repeat(513)}))),
        "Meta"
    );
    assert_eq!(
        field_of(with("Meta", json!({"k".repeat(129): "v"}))),
        "Meta"
    );
    let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(field_of(with("Meta", Value::Object(many))), "Meta");
    let big: Map<String, Value> = (0..20)
        .map(|i| (format!("k{i}"), json!("v".repeat(500))))
        .collect();
    assert_eq!(
        field_of(with("Meta", Value::Object(big))),
        "Meta",
        "native 8 KiB limit"
    );
    assert_eq!(
        field_of(with("Meta", json!({"scheme": "ftp"}))),
        "Meta.scheme"
    );
    assert_eq!(
        field_of(with("Meta", json!({"serviceType": "a b"}))),
        "Meta.serviceType"
    );
    assert_eq!(
        field_of(with("Meta", json!({"version": ""}))),
        "Meta.version"
    );
    assert_eq!(
        field_of(with("Weights", json!({"Passing": 0}))),
        "Weights.Passing"
    );
    assert_eq!(
        field_of(with("Weights", json!({"Passing": 1001}))),
        "Weights.Passing"
    );
    assert_eq!(
        field_of(with("Weights", json!({"Warning": 1}))),
        "Weights.Passing"
    );
    assert_eq!(
        field_of(with("Weights", json!({"Passing": 1, "Warning": -1}))),
        "Weights"
    );
    assert_eq!(field_of(with("Weights", json!(3))), "Weights");
    assert_eq!(field_of(with("Kind", json!("connect-proxy"))), "Kind");
    assert_eq!(field_of(with("SocketPath", json!("/tmp/s"))), "SocketPath");
    assert!(parse(with("Kind", json!("typical"))).is_ok());
}
