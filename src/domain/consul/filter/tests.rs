//! Every grammar form, precedence, each kind of field's operators and missing-key rules, and every
//! refusal (unknown selector, unsupported operator, over-long or too-deep expression).

use super::*;
use std::collections::HashMap;

/// An entry as a map from the selector's dotted text to its value.
#[derive(Default)]
struct Entry(HashMap<String, FieldValue<'static>>);

impl Entry {
    fn text(mut self, selector: &str, value: &str) -> Self {
        self.0.insert(
            selector.to_owned(),
            FieldValue::Text(Cow::Owned(value.to_owned())),
        );
        self
    }

    fn list(mut self, selector: &str, values: &[&str]) -> Self {
        let items = values.iter().map(|v| Cow::Owned(v.to_string())).collect();
        self.0.insert(selector.to_owned(), FieldValue::List(items));
        self
    }
}

impl FilterSubject for Entry {
    fn field(&self, selector: &[&str]) -> FieldValue<'_> {
        self.0
            .get(&selector.join("."))
            .cloned()
            .unwrap_or(FieldValue::Missing)
    }
}

/// A health entry: orders on a node, tagged v1 and prod, with two checks.
fn orders() -> Entry {
    Entry::default()
        .text("Node.Node", "orders.example")
        .text("Node.Datacenter", "dc1")
        .list("Node.Meta", &["external-node"])
        .text("Node.Meta.external-node", "true")
        .text("Service.ID", "orders-1")
        .text("Service.Service", "orders")
        .text("Service.Port", "8080")
        .list("Service.Tags", &["v1", "prod"])
        .list("Service.Meta", &["serviceType", "DAPR_PORT"])
        .text("Service.Meta.serviceType", "api")
        .text("Service.Meta.DAPR_PORT", "50002")
        .list("Checks.CheckID", &["service:orders-1", "serfHealth"])
        .list("Checks.Status", &["passing", "warning"])
}

fn health(text: &str) -> bool {
    Filter::parse(text, FilterSchema::HealthServiceEntry)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .matches(&orders())
}

fn refused(text: &str, schema: FilterSchema) -> ValidationError {
    let error = Filter::parse(text, schema).expect_err(text);
    assert_eq!(error.field, "filter", "{text}");
    error
}

#[test]
fn equality_on_text_and_numbers() {
    assert!(health(r#"Service.Service == "orders""#));
    assert!(!health(r#"Service.Service == "order""#));
    assert!(health(r#"Service.Service != "billing""#));
    assert!(health("Service.Service==`orders`"));
    assert!(health("Service.Port == 8080"));
    assert!(health(r#"Service.Port == "8080""#));
    assert!(health("Service.Port != 80"));
    assert!(
        health("Service.Service == orders"),
        "a bare word is a value"
    );
    assert!(health(r#"Node.Datacenter == "dc1""#));
}

#[test]
fn in_and_contains_on_lists_maps_and_text() {
    assert!(health(r#""v1" in Service.Tags"#));
    assert!(!health(r#""v2" in Service.Tags"#));
    assert!(health(r#""v2" not in Service.Tags"#));
    assert!(health(r#"Service.Tags contains "prod""#));
    assert!(health(r#"Service.Tags not contains "dev""#));
    assert!(
        health(r#""DAPR_PORT" in Service.Meta"#),
        "in tests a map's keys"
    );
    assert!(!health(r#""50002" in Service.Meta"#));
    assert!(
        health(r#""ord" in Service.Service"#),
        "in on text is a substring test"
    );
    assert!(health(r#"Service.Service contains "der""#));
    assert!(health(r#"Service.Service not contains "x""#));
    assert!(health("Service.Tags is not empty"));
    assert!(!health("Service.Tags is empty"));
    assert!(health("Node.Meta is not empty"));
}

#[test]
fn map_keys_by_dot_or_index_and_missing_keys() {
    assert!(health(r#"Service.Meta.serviceType == "api""#));
    assert!(health(r#"Service.Meta["serviceType"] == "api""#));
    assert!(health(r#"Service.Meta[ `DAPR_PORT` ] == "50002""#));
    assert!(health(r#"Node.Meta["external-node"] == "true""#));
    assert!(!health(r#"Service.Meta.absent == "x""#));
    assert!(health(r#"Service.Meta.absent != "x""#));
    assert!(!health(r#""x" in Service.Meta.absent"#));
    assert!(health(r#""x" not in Service.Meta.absent"#));
    assert!(!health(r#"Service.Meta.absent == """#));
}

#[test]
fn a_field_of_each_check_matches_when_any_check_does() {
    assert!(health(r#"Checks.Status == "passing""#));
    assert!(health(r#"Checks.Status == "warning""#));
    assert!(!health(r#"Checks.Status == "critical""#));
    assert!(
        health(r#"Checks.Status != "passing""#),
        "some check is not passing"
    );
    assert!(health(
        r#"not Checks.Status != "passing" or Checks.CheckID == "serfHealth""#
    ));
    assert!(health(r#""pass" in Checks.Status"#));
    assert!(health("Checks is not empty"));
    let no_checks = Entry::default()
        .list("Checks.CheckID", &[])
        .list("Checks.Status", &[]);
    let f = |t| Filter::parse(t, FilterSchema::HealthServiceEntry).unwrap();
    assert!(f("Checks is empty").matches(&no_checks));
    assert!(!f(r#"Checks.Status == "passing""#).matches(&no_checks));
    assert!(!f(r#"Checks.Status != "passing""#).matches(&no_checks));
}

#[test]
fn precedence_is_not_then_and_then_or() {
    // a and not b or c  ==  (a and (not b)) or c
    let (t, f) = (
        r#"Service.Service == "orders""#,
        r#"Service.Service == "x""#,
    );
    assert!(health(&format!("{f} and not {t} or {t}")));
    assert!(!health(&format!("{f} and (not {t} or {t})")));
    assert!(
        health(&format!("{t} or {t} and {f}")),
        "and binds tighter than or"
    );
    assert!(!health(&format!("({t} or {t}) and {f}")));
    assert!(health(&format!("not {f} and {t}")), "not binds tightest");
    assert!(!health(&format!("not ({f} or {t})")));
    assert!(health(&format!("not not {t}")));
    assert!(health(&format!("( ( {t} ) )")));
    assert!(health(&format!("\n\t{t}\r\n")));
    assert!(health(&format!("{f} or {f} or {f} or {t}")));
    assert!(!health(&format!("{t} and {t} and {t} and {f}")));
}

#[test]
fn what_clients_send_parses_on_their_endpoints() {
    let dapr = r#"ServiceName == "a" or ServiceName == "b""#;
    let check = Entry::default()
        .text("ServiceName", "b")
        .list("ServiceTags", &["urlprefix-/"]);
    assert!(Filter::parse(dapr, FilterSchema::HealthCheck)
        .unwrap()
        .matches(&check));
    let node = Entry::default()
        .text("ServiceName", "api-internal")
        .text("ServicePort", "9090")
        .list("NodeMeta", &["os"])
        .text("NodeMeta.os", "linux");
    let f = Filter::parse(
        r#"NodeMeta.os == "linux" and ServicePort == 9090"#,
        FilterSchema::CatalogServiceNode,
    );
    assert!(f.unwrap().matches(&node));
    let agent = Entry::default()
        .text("Service", "redis")
        .text("Meta.env", "qa")
        .text("Port", "1234");
    let f = Filter::parse(
        r#"Meta.env == "qa" and Port != 1"#,
        FilterSchema::AgentService,
    );
    assert!(f.unwrap().matches(&agent));
}

#[test]
fn strings_follow_go_quoting() {
    let entry = Entry::default()
        .text("Service", "a\tb\\c\u{e9}")
        .text("ID", r"a\tb");
    let f = |t: &str| {
        Filter::parse(t, FilterSchema::AgentService)
            .unwrap()
            .matches(&entry)
    };
    assert!(f(r#"Service == "a\tb\\c\u00e9""#));
    assert!(f(r#"Service == "a\x09b\\c\U000000e9""#));
    assert!(f(r"ID == `a\tb`"), "backquotes are raw");
    for bad in [
        r#"Service == "a\qb""#,
        r#"Service == "a\101""#,
        "Service == \"a\nb\"",
        r#"Service == "a\"b""#,
    ] {
        refused(bad, FilterSchema::AgentService);
    }
}

#[test]
fn grammar_errors_are_refused() {
    for bad in [
        "",
        "   ",
        "Service.Service",
        r#"Service.Service =="#,
        r#"Service.Service = "x""#,
        r#"Service.Service == "x" and"#,
        r#"Service.Service == "x"and Service.ID == "y""#,
        r#"not(Service.Service == "x")"#,
        r#"(Service.Service == "x""#,
        r#"Service.Service == "x")"#,
        r#"Service.Service == "unterminated"#,
        "Service.Service == `unterminated",
        r#""x" == Service.Service"#,
        r#""x" in "y""#,
        r#"Service.Port == 01"#,
        r#"Service.Port == 1.2.3"#,
        r#"Service.Port == 5x"#,
        r#"Service. == "x""#,
        r#"Service.Meta[x] == "y""#,
        r#"Service.Meta["x" == "y""#,
        r#"Service.Tags is full"#,
        r#"Service.Service AND Service.ID"#,
        r#"[ "a" ] in Service.Tags"#,
        r#""/Service/ID" == "x""#,
    ] {
        refused(bad, FilterSchema::HealthServiceEntry);
    }
}

#[test]
fn unknown_selectors_and_unsupported_operators_are_refused() {
    use FilterSchema::*;
    let e = refused(r#"Service.Nope == "x""#, HealthServiceEntry);
    assert!(
        e.message.contains("Selector \"Service.Nope\" is not valid"),
        "{}",
        e.message
    );
    refused(r#"service.service == "x""#, HealthServiceEntry);
    refused(r#"ServiceName == "x""#, HealthServiceEntry);
    refused(r#"Service.Service == "x""#, HealthCheck);
    refused(r#"Notes == "x""#, AgentService);
    refused(r#"Checks.Output == "x""#, HealthServiceEntry);
    for selector in ["Type", "Notes", "Output"] {
        assert!(Filter::parse(&format!(r#"{selector} == """#), HealthCheck).is_ok());
    }
    assert!(Filter::parse(r#"Checks.Type == "ttl""#, HealthServiceEntry).is_ok());
    refused(r#"Service.Meta.a.b == "x""#, HealthServiceEntry);
    refused(r#"Service.Tags == "v1""#, HealthServiceEntry);
    refused(r#"Service.Service is empty"#, HealthServiceEntry);
    refused(r#"Service.Port contains "8""#, HealthServiceEntry);
    refused(r#"Service.Port == "eighty""#, HealthServiceEntry);
    refused(r#"Service.Port == 80.5"#, HealthServiceEntry);
    refused(r#"Checks == "x""#, HealthServiceEntry);
    refused(r#"Service.Meta == "x""#, HealthServiceEntry);
    let e = refused(r#"Service.Service matches "ord.*""#, HealthServiceEntry);
    assert!(e.message.contains("matches"), "{}", e.message);
    refused(r#"Service.Service not matches "x""#, HealthServiceEntry);
    assert!(Filter::parse(r#"ServiceTags is empty"#, CatalogServiceNode).is_ok());
    assert!(Filter::parse(r#"Tags is empty"#, AgentService).is_ok());
}

#[test]
fn over_long_or_too_deep_expressions_are_refused() {
    let one = r#"Service.Service == "orders""#;
    let long = vec![one; 200].join(" or ");
    assert!(long.len() > MAX_FILTER_LEN);
    assert!(refused(&long, FilterSchema::HealthServiceEntry)
        .message
        .contains("4096"));
    let fits = vec![one; 100].join(" or ");
    assert!(fits.len() <= MAX_FILTER_LEN && health(&fits));
    let deep = format!("{}{one}{}", "(".repeat(33), ")".repeat(33));
    refused(&deep, FilterSchema::HealthServiceEntry);
    let ok = format!("{}{one}{}", "(".repeat(32), ")".repeat(32));
    assert!(health(&ok));
    refused(
        &format!("{}{one}", "not ".repeat(33)),
        FilterSchema::HealthServiceEntry,
    );
    assert!(health(&format!("{}{one}", "not ".repeat(32))));
    // Nesting that closes does not add up.
    let siblings = vec![format!("({one})"); 60].join(" and ");
    assert!(health(&siblings));
}

#[test]
fn errors_do_not_echo_values() {
    let e = refused(
        r#"Service.Nope == "s3cr3t""#,
        FilterSchema::HealthServiceEntry,
    );
    assert!(!e.message.contains("s3cr3t"), "{}", e.message);
    let e = refused(
        r#"Service.Port == "s3cr3t""#,
        FilterSchema::HealthServiceEntry,
    );
    assert!(!e.message.contains("s3cr3t"), "{}", e.message);
}
