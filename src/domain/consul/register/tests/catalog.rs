//! `PUT /v1/catalog/register` bodies: the node address fallback, catalog checks, and every error's
//! field.

use super::*;

fn catalog(body: Value) -> Result<ConsulRegistration, ValidationError> {
    ConsulRegistration::parse_catalog(&body, &ConsulDefaults::default())
}

fn catalog_body() -> Value {
    json!({
        "Datacenter": "dc1", "Node": "ext-node", "Address": "203.0.113.9",
        "NodeMeta": {"external-node": "true"},
        "Service": {"ID": "redis1", "Service": "redis", "Tags": ["primary"], "Port": 6379, "Address": "",
                    "Meta": {"redis_version": "7.2"}},
        "Check": {"Node": "ext-node", "CheckID": "service:redis1", "Name": "Redis health check",
                  "Status": "passing", "ServiceID": "redis1",
                  "Definition": {"TCP": "203.0.113.9:6379", "Interval": "5s", "Timeout": "1s",
                                 "DeregisterCriticalServiceAfter": "30s"}}
    })
}

#[test]
fn a_catalog_registration_falls_back_to_the_node_address() {
    let r = catalog(catalog_body()).unwrap();
    assert_eq!(r.node.as_deref(), Some("ext-node"));
    assert_eq!(r.service_id, "redis1");
    assert_eq!(r.registration.key.row_key(), "redis:redis1");
    assert_eq!(r.registration.endpoint, "http://203.0.113.9:6379");
    assert_eq!(r.registration.health_endpoint, "tcp://203.0.113.9:6379");
    assert_eq!(r.registration.metadata["redis_version"], json!("7.2"));
    assert_eq!(r.checks[0].initial_status, Some(CheckStatus::Passing));
    assert_eq!(r.checks[0].check_id.as_deref(), Some("service:redis1"));
    assert_eq!(r.deregister_critical_after, Some(Duration::from_secs(30)));
    let mut own = catalog_body();
    own["Service"]["Address"] = json!("10.9.9.9");
    own["service"] = own["Service"].take();
    own.as_object_mut().unwrap().remove("Service");
    assert_eq!(
        catalog(own).unwrap().registration.endpoint,
        "http://10.9.9.9:6379"
    );
}

#[test]
fn catalog_errors_name_the_consul_field() {
    let without = |key: &str| {
        let mut body = catalog_body();
        body.as_object_mut().unwrap().remove(key);
        catalog(body).unwrap_err().field
    };
    assert_eq!(without("Node"), "Node");
    assert_eq!(without("Address"), "Address");
    assert_eq!(without("Service"), "Service");
    let set = |pointer: &str, value: Value| {
        let mut body = catalog_body();
        *body.pointer_mut(pointer).unwrap() = value;
        catalog(body).unwrap_err().field
    };
    assert_eq!(set("/Service/Service", json!("")), "Service.Service");
    assert_eq!(set("/Service/ID", json!("a:b")), "Service.ID");
    assert_eq!(set("/Service/Port", json!(0)), "Service.Port");
    assert_eq!(set("/Service/Address", json!("0.0.0.0")), "Service.Address");
    assert_eq!(
        set("/Service/Meta", json!({"consul-x": "y"})),
        "Service.Meta"
    );
    assert_eq!(set("/Service/Tags", json!(5)), "Service.Tags");
    assert_eq!(set("/Check/ServiceID", json!("")), "Check.ServiceID");
    assert_eq!(set("/Check/ServiceID", json!("other")), "Check.ServiceID");
    assert_eq!(set("/Check/Status", json!("maintenance")), "Check.Status");
    assert_eq!(set("/Check/Definition", json!(null)), "Check.Definition");
    assert_eq!(
        set("/Check/Definition", json!({"TTL": "10s"})),
        "Check.Definition.TTL"
    );
    assert_eq!(
        set("/Check/Definition", json!({"GRPC": "h:1"})),
        "Check.Definition.GRPC"
    );
    assert_eq!(
        set("/Check/Definition", json!({"HTTP": "ftp://h"})),
        "Check.Definition.HTTP"
    );
    assert_eq!(
        set("/Check/Definition", json!({"TCP": "h"})),
        "Check.Definition.TCP"
    );
    assert_eq!(
        set(
            "/Check/Definition",
            json!({"HTTP": "http://h", "Timeout": "1ms"})
        ),
        "Check.Definition.Timeout"
    );
    let mut listed = catalog_body();
    listed["Checks"] = json!([listed["Check"].take()]);
    listed.as_object_mut().unwrap().remove("Check");
    assert!(catalog(listed.clone()).is_ok());
    listed["Checks"][0]["Definition"] = json!({"HTTP": "nope"});
    assert_eq!(catalog(listed).unwrap_err().field, "Checks.Definition.HTTP");
    assert!(
        catalog(json!({"Node": "n", "Address": "a", "Service": {"Service": "s", "Port": 1}}))
            .is_ok()
    );
}

#[test]
fn node_consuls_duration_spellings_in_a_catalog_definition() {
    let mut body = catalog_body();
    body["Check"]["Definition"] = json!({"TCP": "203.0.113.9:6379", "IntervalDuration": "5s",
        "TimeoutDuration": "2s", "DeregisterCriticalServiceAfterDuration": "1m"});
    let r = catalog(body.clone()).unwrap();
    assert_eq!(r.deregister_critical_after, Some(Duration::from_secs(60)));
    let check = r.registration.health_check.unwrap();
    assert_eq!(check.timeout, Some(Duration::from_secs(2)));
    body["Check"]["Definition"]["Timeout"] = json!("3s");
    assert_eq!(catalog(body).unwrap_err().field, "Check.Definition.Timeout");
    let agent = json!({"Name": "a", "Address": "h", "Port": 1,
        "Check": {"HTTP": "http://h", "Interval": "5s", "TimeoutDuration": "2s"}});
    let error = ConsulRegistration::parse(&agent, &ConsulDefaults::default()).unwrap_err();
    assert_eq!(error.field, "Check", "an agent check has no such key");
}

#[test]
fn a_catalog_checks_probed_address_names_its_definition() {
    assert_eq!(
        catalog(catalog_body()).unwrap().probe_field,
        "Check.Definition.TCP"
    );
    let mut bare = catalog_body();
    bare.as_object_mut().unwrap().remove("Check");
    assert_eq!(catalog(bare).unwrap().probe_field, "Service.Address");
}
