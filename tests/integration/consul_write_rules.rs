//! The rules behind the Consul writes by ID: a caller acts only on registrations it may write (an
//! ID another scope holds answers as an unknown one), and a call by ID finds a registration made
//! through another process within the read cache's TTL.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn put_as(h: &Handler, key: &str, path: &str, body: Option<Value>) -> Resp {
    h.send(
        Method::PUT,
        path,
        &[("X-Consul-Token", key)],
        body.map(|b| b.to_string()),
    )
    .await
}

fn service(name: &str, id: &str, service_type: &str) -> Value {
    json!({"Name": name, "ID": id, "Address": "127.0.0.1", "Port": 8080,
           "Meta": {"serviceType": service_type}, "Check": {"TTL": "30s"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_by_id_see_only_the_rows_the_caller_may_write() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    // WRITER writes type `api`; PREFIXED writes names `orders-*` of any type. Both register the
    // Consul ID `pay-1` (so both rows' check is `service:pay-1`).
    let r = put_as(
        &h,
        WRITER,
        "/v1/agent/service/register",
        Some(service("pay", "pay-1", "api")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = put_as(
        &h,
        PREFIXED,
        "/v1/agent/service/register",
        Some(service("orders-squat", "pay-1", "web")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = |pk: &'static str, rk: &'static str| {
        let h = &h;
        async move { h.tables().row(&h.registry_table, pk, rk).await }
    };

    // Each one's pass reaches its own row only: not a 409 for an ID both hold.
    let r = put_as(&h, WRITER, "/v1/agent/check/pass/service:pay-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = put_as(&h, PREFIXED, "/v1/agent/check/fail/service:pay-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        row("api", "pay:pay-1").await.unwrap()["checkStatus"],
        "passing"
    );
    assert_eq!(
        row("web", "orders-squat:pay-1").await.unwrap()["checkStatus"],
        "critical"
    );

    // The squatter deregisters its own row; asked again, the owner's row is an unknown ID to it.
    let r = put_as(&h, PREFIXED, "/v1/agent/service/deregister/pay-1", None).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""), "{}", r.text);
    assert!(row("web", "orders-squat:pay-1").await.is_none());
    let r = put_as(&h, PREFIXED, "/v1/agent/service/deregister/pay-1", None).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""), "{}", r.text);
    let r = put_as(
        &h,
        PREFIXED,
        "/v1/catalog/deregister",
        Some(json!({"Node": "127.0.0.1"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(row("api", "pay:pay-1").await.is_some(), "not its to remove");

    // A check update on an ID only another scope holds is the unknown ID's 404, word for word.
    let theirs = put_as(&h, PREFIXED, "/v1/agent/check/fail/service:pay-1", None).await;
    let unknown = put_as(&h, PREFIXED, "/v1/agent/check/fail/service:pay-9", None).await;
    assert_eq!(theirs.status, 404, "{}", theirs.text);
    assert_eq!(
        theirs.text.replace("pay-1", "pay-9"),
        unknown.text,
        "no hint that it exists"
    );
    assert_eq!(
        row("api", "pay:pay-1").await.unwrap()["checkStatus"],
        "passing"
    );

    // Registering an ID another scope holds under the same name writes the caller's own row and
    // leaves the other (Consul's one-service-per-ID replacement stays within what it may write).
    let r = put_as(
        &h,
        ADMIN,
        "/v1/agent/service/register",
        Some(service("pay", "pay-2", "db")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = put_as(
        &h,
        WRITER,
        "/v1/agent/service/register",
        Some(service("pay", "pay-2", "api")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(row("db", "pay:pay-2").await.is_some(), "not replaced");
    assert!(row("api", "pay:pay-2").await.is_some());
    let r = put_as(&h, WRITER, "/v1/agent/service/deregister/pay-2", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(row("api", "pay:pay-2").await.is_none());
    assert!(row("db", "pay:pay-2").await.is_some());

    // A caller that may write nothing is refused before any lookup, whatever the ID.
    for id in ["pay-2", "nobody"] {
        let r = put_as(
            &h,
            READER,
            &format!("/v1/agent/service/deregister/{id}"),
            None,
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = put_as(
            &h,
            READER,
            &format!("/v1/agent/check/pass/service:{id}"),
            None,
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
}

/// Two processes on the same tables, each reading through a cache that lives a minute: the second
/// has read the catalog before the first registers.
async fn two_processes() -> (Handler, Handler) {
    let cfg = HandlerConfig::new(Mode::Standalone).env("DISCOVERY_CACHE_TTL_MS", "60000");
    (Handler::spawn(cfg.clone()).await, Handler::spawn(cfg).await)
}

async fn put(h: &Handler, path: &str, body: Option<Value>) -> Resp {
    h.request(Method::PUT, path, body.map(|b| b.to_string()))
        .await
}

/// Reads the catalog through `h`, so its snapshot and caches hold what storage has now.
async fn warm(h: &Handler) {
    let r = h.request(Method::GET, "/v1/agent/services", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_by_id_find_a_registration_made_through_another_process() {
    let (first, second) = two_processes().await;
    warm(&second).await;
    for id in ["late-1", "late-2"] {
        let r = put(
            &first,
            "/v1/agent/service/register",
            Some(service("late", id, "api")),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Not in the second's snapshot (read a minute's cache ago), yet found and removed.
    let r = put(&second, "/v1/agent/service/deregister/late-1", None).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""), "{}", r.text);
    assert!(
        second
            .tables()
            .row(&second.registry_table, "api", "late:late-1")
            .await
            .is_none(),
        "deregistered"
    );

    // A check update: the second reads again, then the first registers.
    warm(&second).await;
    let r = put(
        &first,
        "/v1/agent/service/register",
        Some(service("late", "late-3", "api")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = put(&second, "/v1/agent/check/fail/service:late-3", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = second
        .tables()
        .row(&second.registry_table, "api", "late:late-3")
        .await
        .unwrap();
    assert_eq!(row["checkStatus"], "critical");
    // An ID nobody has is still unknown after the fresh read.
    let r = put(&second, "/v1/agent/check/pass/service:nobody", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(second
        .tables()
        .row(&second.registry_table, "api", "late:late-2")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_after_a_fail_through_another_process_is_never_lost() {
    let (first, second) = two_processes().await;
    let status = || async {
        second
            .tables()
            .row(&second.registry_table, "api", "flip:flip-1")
            .await
            .unwrap()["checkStatus"]
            .clone()
    };
    let r = put(
        &first,
        "/v1/agent/service/register",
        Some(service("flip", "flip-1", "api")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = put(&second, "/v1/agent/check/pass/service:flip-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The second now holds `passing` in a cache that lives a minute.
    warm(&second).await;
    assert_eq!(status().await, "passing");
    let r = put(&first, "/v1/agent/check/fail/service:flip-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status().await, "critical");
    // The client recovers and passes through the second, whose snapshot still says passing.
    let r = put(&second, "/v1/agent/check/pass/service:flip-1", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status().await, "passing", "the pass is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregister_critical_service_after_counts_a_critical_set_by_fail() {
    let h = Handler::start_consul_anonymous().await;
    for (name, after) in [("failing", Some("1s")), ("kept", None)] {
        let mut check = json!({"TTL": "60s"});
        if let Some(after) = after {
            check["DeregisterCriticalServiceAfter"] = json!(after);
        }
        let r = put(
            &h,
            "/v1/agent/service/register",
            Some(json!({"Name": name, "Address": "127.0.0.1", "Port": 80, "Check": check})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = put(&h, &format!("/v1/agent/check/fail/service:{name}"), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Its TTL is far from lapsing: only the fail makes it critical, for over a second.
    let removed = poll_until(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(250),
        || async {
            let report = h.sweep_report().await;
            (report.deleted_expired > 0).then_some(report.deleted_expired)
        },
    )
    .await;
    assert_eq!(removed, Some(1), "removed by the sweep");
    let rows = h.tables().rows(&h.registry_table).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["serviceName"], "kept");
    assert_eq!(rows[0]["checkStatus"], "critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssrf_refusal_names_the_consul_field_the_address_came_from() {
    let h = Handler::start_with(&[
        ("HEALTH_ALLOW_LOOPBACK", "false"),
        ("REGISTRY_ALLOW_ANONYMOUS", "true"),
    ])
    .await;
    let base = json!({"Name": "probe", "Address": "127.0.0.1", "Port": 8080});
    let cases = [
        (
            "Check",
            json!({"HTTP": "http://127.0.0.1:8080/health", "Interval": "10s"}),
            "Check.HTTP",
        ),
        (
            "Check",
            json!({"TCP": "127.0.0.1:8080", "Interval": "10s"}),
            "Check.TCP",
        ),
        (
            "Checks",
            json!([{"TTL": "30s"}, {"http": "http://169.254.169.254/latest", "interval": "10s"}]),
            "Checks.HTTP",
        ),
    ];
    for (key, check, field) in cases {
        let mut body = base.clone();
        body[key] = check;
        let r = put(&h, "/v1/agent/service/register", Some(body)).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            r.text.starts_with(&format!("{field} is not allowed: ")),
            "{field}: {}",
            r.text
        );
        assert!(!r.text.contains("endpoint"), "{}", r.text);
    }
    let r = put(
        &h,
        "/v1/catalog/register",
        Some(json!({
            "Node": "n", "Address": "127.0.0.1",
            "Service": {"Service": "probe", "ID": "p-1", "Port": 8080},
            "Check": {"ServiceID": "p-1", "Definition": {"TCP": "127.0.0.1:8080", "Interval": "5s"}}
        })),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.starts_with("Check.Definition.TCP is not allowed: "),
        "{}",
        r.text
    );
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    // A TTL check alone is not probed up front: registered.
    let mut body = base.clone();
    body["Check"] = json!({"TTL": "30s"});
    let r = put(&h, "/v1/agent/service/register", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
