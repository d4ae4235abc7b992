//! The health-check settings' rules: what each field accepts, the errors naming it, the target
//! the settings make, and the stored form read back.

use super::*;

fn http() -> Endpoint {
    Endpoint::parse("endpoint", "https://svc.internal:8443/ready?x=1").unwrap()
}

fn grpc() -> Endpoint {
    Endpoint::parse_health(
        "healthEndpoint",
        "grpcs://orders.internal:50051/shop.Orders",
    )
    .unwrap()
}

fn tcp() -> Endpoint {
    Endpoint::parse("endpoint", "tcp://redis.internal:6380").unwrap()
}

fn field_of(value: Value, endpoint: Endpoint) -> &'static str {
    HealthCheck::parse(&value, &endpoint).unwrap_err().field
}

#[test]
fn settings_apply_to_the_target() {
    let check = HealthCheck::parse(
        &json!({"path": "/healthz?deep=1", "timeoutMs": 750}),
        &http(),
    )
    .unwrap();
    assert_eq!(check.timeout, Some(Duration::from_millis(750)));
    let Endpoint::Http(url) = check.target(http()) else {
        panic!("an http check stays http")
    };
    assert_eq!(url.as_str(), "https://svc.internal:8443/healthz?deep=1");

    let check = HealthCheck::parse(&json!({"kind": "tcp"}), &http()).unwrap();
    assert_eq!(
        check.target(http()),
        Endpoint::Tcp {
            host: "svc.internal".into(),
            port: 8443
        }
    );
    assert_eq!(HealthCheck::default().target(tcp()), tcp());
    let check = HealthCheck::parse(&json!({"kind": "grpc", "timeoutMs": 900}), &grpc()).unwrap();
    assert_eq!(check.target(grpc()), grpc());
    let check = HealthCheck::parse(&json!({"kind": "tcp"}), &grpc()).unwrap();
    assert_eq!(
        check.target(grpc()),
        Endpoint::Tcp {
            host: "orders.internal".into(),
            port: 50051
        }
    );
}

#[test]
fn the_probe_target_without_settings_is_the_health_endpoint() {
    assert_eq!(probe_target(http(), None), http());
    assert_eq!(probe_target(tcp(), None), tcp());
    let check = HealthCheck::parse(&json!({"kind": "tcp"}), &http()).unwrap();
    assert_eq!(probe_target(http(), Some(&check)), check.target(http()));
}

#[test]
fn every_rule_names_its_field() {
    assert_eq!(field_of(json!("tcp"), http()), "healthCheck");
    assert_eq!(
        field_of(json!({"kind": "icmp"}), http()),
        "healthCheck.kind"
    );
    assert_eq!(field_of(json!({"kind": "http"}), tcp()), "healthCheck.kind");
    assert_eq!(
        field_of(json!({"kind": "grpc"}), http()),
        "healthCheck.kind"
    );
    assert_eq!(
        field_of(json!({"kind": "http"}), grpc()),
        "healthCheck.kind"
    );
    assert_eq!(field_of(json!({"path": "/x"}), grpc()), "healthCheck.path");
    for bad in [json!(99), json!(30_001), json!(1.5), json!("500")] {
        assert_eq!(
            field_of(json!({"timeoutMs": bad}), http()),
            "healthCheck.timeoutMs"
        );
    }
    for bad in [
        json!("health"),
        json!("//evil.example/x"),
        json!("/a b"),
        json!(5),
    ] {
        assert_eq!(field_of(json!({"path": bad}), http()), "healthCheck.path");
    }
    assert_eq!(field_of(json!({"path": "/x"}), tcp()), "healthCheck.path");
    assert_eq!(
        field_of(json!({"kind": "tcp", "path": "/x"}), http()),
        "healthCheck.path"
    );
    for (check, field) in [
        (
            json!({"expectedStatus": [200]}),
            "healthCheck.expectedStatus",
        ),
        (json!({"expectBody": "ok"}), "healthCheck.expectBody"),
    ] {
        assert_eq!(field_of(check.clone(), tcp()), field, "{check}");
        let mut by_connect = check.clone();
        by_connect["kind"] = json!("tcp");
        assert_eq!(field_of(by_connect, http()), field, "{check}");
    }
    assert_eq!(
        field_of(json!({"expectedStatus": [200, 1000]}), http()),
        "healthCheck.expectedStatus[1]"
    );
    let plain = Endpoint::parse("endpoint", "http://svc.internal/").unwrap();
    for (check, endpoint) in [
        (json!({"tlsExpiryWarningDays": 0}), http()),
        (json!({"tlsExpiryWarningDays": 366}), http()),
        (json!({"tlsExpiryWarningDays": "30"}), http()),
        (json!({"tlsExpiryWarningDays": 30}), plain),
        (json!({"tlsExpiryWarningDays": 30}), tcp()),
        (json!({"tlsExpiryWarningDays": 30, "kind": "tcp"}), grpc()),
    ] {
        assert_eq!(
            field_of(check.clone(), endpoint),
            "healthCheck.tlsExpiryWarningDays",
            "{check}"
        );
    }
    for endpoint in [http(), grpc()] {
        let check = HealthCheck::parse(&json!({"tlsExpiryWarningDays": 365}), &endpoint).unwrap();
        assert_eq!(check.tls_expiry_warning_days, Some(365));
    }
}

#[test]
fn stored_text_round_trips_and_garbage_is_ignored() {
    let check = HealthCheck::parse(
        &json!({"kind": "http", "timeoutMs": 2000, "path": "/h",
                "expectedStatus": [200, "401-403"], "expectBody": "UP",
                "tlsExpiryWarningDays": 14}),
        &http(),
    )
    .unwrap();
    assert_eq!(check.to_json()["expectedStatus"], json!([200, "401-403"]));
    assert_eq!(
        HealthCheck::from_stored(&check.to_json().to_string()),
        Some(check)
    );
    assert_eq!(HealthCheck::from_stored("not json"), None);
    assert_eq!(
        HealthCheck::from_stored(r#"{"kind":"smoke","path":"nope"}"#),
        Some(HealthCheck::default())
    );
}
