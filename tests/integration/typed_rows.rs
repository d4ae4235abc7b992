//! How rows are typed: every number the handler writes carries its Edm type, so it reads back as
//! written whatever its value; and text it cannot decode in a row another client wrote is shown as
//! stored and counts as absent for every rule.

use crate::harness::*;
use serde_json::{json, Value};

/// The Edm type of a property of a row read with full metadata. Where the table leaves the
/// annotation off, the JSON shape says the type: text is a String, an integer an Int32, and a number
/// with a fraction part (`1.0`, as Azurite sends a whole Double) a Double.
fn edm_type(row: &Value, name: &str) -> String {
    match row
        .get(format!("{name}@odata.type"))
        .and_then(Value::as_str)
    {
        Some(annotated) => annotated.to_owned(),
        None if row[name].is_string() => "Edm.String".to_owned(),
        None if row[name].is_i64() || row[name].is_u64() => "Edm.Int32".to_owned(),
        None if row[name].is_f64() => "Edm.Double".to_owned(),
        None => format!("no value ({})", row[name]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_response_time_average_is_stored_as_a_double() {
    let h = Handler::start().await;
    let ok = HttpTarget::status(200);
    h.register_ok(&json!({
        "serviceName": "whole", "serviceType": "typed", "endpoint": ok.url,
        "instanceId": "i-1", "ttlSeconds": 300, "weight": 5
    }))
    .await;
    let t = h.tables();

    // The first probe's average is its own response time: a whole number of milliseconds.
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = t
        .row(&h.health_table, "typed", "whole:i-1")
        .await
        .expect("a health row after the sweep");
    let ewma = row["responseTimeEwma"]
        .as_f64()
        .unwrap_or_else(|| panic!("responseTimeEwma must be a number: {row}"));
    assert_eq!(ewma.fract(), 0.0, "the first average is whole: {row}");
    assert_eq!(edm_type(&row, "responseTimeEwma"), "Edm.Double", "{row}");
    for name in [
        "responseTime",
        "consecutiveFailures",
        "consecutiveSuccesses",
        "openTrials",
    ] {
        assert_eq!(edm_type(&row, name), "Edm.Int32", "{name}: {row}");
    }
    for name in [
        "status",
        "lastChecked",
        "lastTransition",
        "circuit",
        "checkedBy",
    ] {
        assert_eq!(edm_type(&row, name), "Edm.String", "{name}: {row}");
    }

    // The next sweep reads the Double back and keeps it one.
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = t.row(&h.health_table, "typed", "whole:i-1").await.unwrap();
    assert_eq!(edm_type(&row, "responseTimeEwma"), "Edm.Double", "{row}");

    let registration = t
        .row(&h.registry_table, "typed", "whole:i-1")
        .await
        .unwrap();
    for name in ["ttlSeconds", "weight"] {
        assert_eq!(
            edm_type(&registration, name),
            "Edm.Int32",
            "{name}: {registration}"
        );
    }
    assert_eq!(
        (
            registration["ttlSeconds"].as_i64(),
            registration["weight"].as_i64()
        ),
        (Some(300), Some(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_text_is_shown_as_stored_and_judged_as_absent() {
    let h = Handler::start().await;
    let ok = HttpTarget::status(200);
    let t = h.tables();
    t.create_table(&h.registry_table).await;
    t.create_table(&h.health_table).await;
    // Written by some other client: times that are not times, a status and a circuit state this
    // handler does not know, a time in another RFC 3339 spelling.
    t.upsert(
        &h.registry_table,
        &json!({
            "PartitionKey": "typed", "RowKey": "odd", "serviceName": "odd",
            "endpoint": ok.url, "healthEndpoint": ok.url, "serviceType": "typed",
            "version": "1.0.0", "tags": "[]", "metadata": "{}",
            "registeredAt": "last week", "lastHeartbeat": "yesterday", "ttlSeconds": 30
        }),
    )
    .await;
    // And a recipe-style sibling, healthy, so that `healthyOnly` has something to return.
    t.upsert(
        &h.registry_table,
        &json!({
            "PartitionKey": "typed", "RowKey": "fine", "serviceName": "fine",
            "endpoint": ok.url, "healthEndpoint": ok.url, "serviceType": "typed",
            "version": "1.0.0", "tags": "[]", "metadata": "{}",
            "registeredAt": "2026-11-25T05:00:00.000Z", "lastHeartbeat": "2026-11-25T05:00:00.000Z"
        }),
    )
    .await;
    t.upsert(
        &h.health_table,
        &json!({
            "PartitionKey": "typed", "RowKey": "fine", "serviceName": "fine", "status": "healthy",
            "lastChecked": "2026-11-25T05:05:00.000Z", "responseTime": 5, "errorMessage": ""
        }),
    )
    .await;
    t.upsert(
        &h.health_table,
        &json!({
            "PartitionKey": "typed", "RowKey": "odd", "serviceName": "odd",
            "status": "warning", "lastChecked": "2026-11-25T05:05:00Z", "responseTime": 5,
            "errorMessage": "", "circuit": "ajar", "lastTransition": "soon",
            "consecutiveFailures": 2, "consecutiveSuccesses": 0, "checkedBy": "elsewhere",
            "responseTimeEwma": 5.5
        }),
    )
    .await;

    let v = h.discover_ok("serviceType=typed").await;
    let s = assert_discovery_shape(&v);
    let names: Vec<&str> = s
        .iter()
        .map(|x| x["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["fine", "odd"],
        "an unreadable heartbeat is fresh, never expired: {v}"
    );
    let item = &s[1];
    assert_eq!(item["registeredAt"], "last week", "{item}");
    assert_eq!(item["lastHeartbeat"], "yesterday", "{item}");
    assert_eq!(
        (&item["ttlSeconds"], &item["expiresAt"], &item["expired"]),
        (&json!(30), &Value::Null, &json!(false)),
        "{item}"
    );
    assert_eq!(
        item["healthStatus"],
        json!({"status": "warning", "lastChecked": "2026-11-25T05:05:00Z", "responseTime": 5,
               "circuit": "ajar", "consecutiveFailures": 2, "consecutiveSuccesses": 0,
               "lastTransition": "soon", "checkedBy": "elsewhere", "responseTimeEwma": 5.5}),
        "{item}"
    );
    // An unknown status is not healthy...
    let v = h.discover_ok("serviceType=typed&healthyOnly=true").await;
    let names: Vec<Value> = assert_discovery_shape(&v)
        .iter()
        .map(|x| x["serviceName"].clone())
        .collect();
    assert_eq!(names, [json!("fine")], "{v}");

    // ...and to the sweep it is never checked: probed, and its first result taken at once.
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let SweepReport {
        probed, healthy, ..
    } = sweep_report(&logs_of(&r.json())).expect("summary");
    assert_eq!((probed, healthy), (2, 2), "{}", r.text);
    let row = t.row(&h.health_table, "typed", "odd").await.unwrap();
    assert_eq!(
        (&row["status"], &row["circuit"]),
        (&json!("healthy"), &json!("closed")),
        "{row}"
    );
    // A sweep never rewrites the registration, whatever it holds.
    let registration = t.row(&h.registry_table, "typed", "odd").await.unwrap();
    assert_eq!(registration["registeredAt"], "last week", "{registration}");
}
