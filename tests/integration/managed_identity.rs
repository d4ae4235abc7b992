//! Managed identity end to end: the handler gets its tokens from an imitation of App Service's
//! identity endpoint and signs table requests with them; a recording proxy shows which token reached
//! the table endpoint, and Azurite in OAuth mode behind it checks each one (`harness::identity`).
//!
//! Shown here: the token reaching storage and the rows written with it; `client_id` sent for a
//! user-assigned identity and not for the system-assigned one; one token request for many table
//! requests; a token near expiry replaced; a failing identity endpoint answered with 503 and
//! `Retry-After`, then recovered from; the SSRF guard refusing the identity endpoint; and neither
//! the token nor the header secret in the handler's output. The instance metadata fallback is not
//! contacted here (its protocol is unit-tested in `identity`).

use crate::harness::identity::*;
use crate::harness::*;
use serde_json::json;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const CLIENT_ID: &str = "5e29463d-71da-4fe0-8e69-999b57db23b0";

async fn register_and_discover(h: &Handler, name: &str) {
    let target = HttpTarget::status(200);
    h.register_ok(&json!({"serviceName": name, "serviceType": "api", "endpoint": target.url}))
        .await;
    let found = h.discover_ok("serviceType=api").await;
    assert!(
        found["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["serviceName"] == name),
        "{found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_assigned_token_reaches_storage_and_is_reused() {
    let azurite = OAuthAzurite::shared();
    let proxy = TableProxy::start(azurite).await;
    let identity = IdentityEndpoint::start(None, vec![Reply::Token(HOUR)]).await;
    let h = Handler::spawn(identity_config(&proxy, &identity, None)).await;

    register_and_discover(&h, "orders").await;
    for _ in 0..3 {
        h.discover_ok("").await;
    }
    let r = h
        .request(
            reqwest::Method::POST,
            "/api/ServiceHeartbeat",
            Some(json!({"serviceName": "orders", "serviceType": "api"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The rows are in the OAuth Azurite, which accepted nothing but the bearer token.
    let row = proxy
        .tables()
        .row(&h.registry_table, "api", "orders")
        .await
        .expect("the registration row");
    assert_eq!(row["serviceName"], "orders");
    assert!(row["lastHeartbeat"].is_string(), "{row}");

    let issued = identity.issued();
    assert_eq!(identity.problems(), Vec::<String>::new());
    assert_eq!(identity.hits(), 1, "one token for every table request");
    assert_eq!(issued.len(), 1);
    let seen = proxy.bearer_tokens();
    assert!(seen.len() >= 6, "table requests seen: {}", seen.len());
    assert!(
        seen.iter().all(|t| *t == issued[0]),
        "a token not issued reached storage"
    );
    assert!(
        identity
            .queries()
            .iter()
            .all(|q| !q.contains_key("client_id")),
        "the system-assigned identity is asked for without client_id: {:?}",
        identity.queries()
    );
    assert_no_secrets(&h, &identity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_assigned_identity_is_asked_for_by_its_client_id() {
    let azurite = OAuthAzurite::shared();
    let proxy = TableProxy::start(azurite).await;
    let identity = IdentityEndpoint::start(Some(CLIENT_ID), vec![Reply::Token(HOUR)]).await;
    let h = Handler::spawn(identity_config(&proxy, &identity, Some(CLIENT_ID))).await;

    register_and_discover(&h, "billing").await;

    assert_eq!(identity.problems(), Vec::<String>::new());
    let queries = identity.queries();
    assert_eq!(queries.len(), 1);
    assert_eq!(
        queries[0].get("client_id").map(String::as_str),
        Some(CLIENT_ID)
    );
    assert!(proxy
        .bearer_tokens()
        .iter()
        .all(|t| *t == identity.issued()[0]));
    assert!(proxy
        .tables()
        .row(&h.registry_table, "api", "billing")
        .await
        .is_some());
    assert!(
        !h.logs().contains("AZURE_STORAGETABLE_CLIENTID is set"),
        "no start-up notice about the client id any more:\n{}",
        h.logs()
    );
    assert_no_secrets(&h, &identity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_expiry_is_replaced_before_it_lapses() {
    let azurite = OAuthAzurite::shared();
    let proxy = TableProxy::start(azurite).await;
    // Two minutes left: inside the five-minute refresh window from the start, still valid.
    let identity = IdentityEndpoint::start(
        None,
        vec![Reply::Token(Duration::from_secs(120)), Reply::Token(HOUR)],
    )
    .await;
    let h = Handler::spawn(identity_config(&proxy, &identity, None)).await;

    register_and_discover(&h, "search").await;
    for _ in 0..3 {
        h.discover_ok("").await;
    }
    // The refresh runs beside requests that may still use the old, still valid token; wait until
    // the new one is in use (registrations always reach storage), then nothing sent after that
    // may carry the old one.
    let mut attempt = 0;
    let replaced = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        attempt += 1;
        let name = format!("refresh-{attempt}");
        let h = &h;
        let (proxy, identity) = (&proxy, &identity);
        async move {
            h.register_ok(&json!({"serviceName": name, "endpoint": "https://refresh.example.com"}))
                .await;
            let issued = identity.issued();
            (issued.len() == 2 && proxy.bearer_tokens().contains(&issued[1])).then_some(())
        }
    })
    .await;
    assert!(
        replaced.is_some(),
        "the near-expiry token was never replaced"
    );
    let before = proxy.bearer_tokens().len();
    h.register_ok(
        &json!({"serviceName": "after-refresh", "endpoint": "https://after.example.com"}),
    )
    .await;
    h.discover_ok("serviceName=after-refresh").await;

    let issued = identity.issued();
    assert_eq!(
        identity.hits(),
        2,
        "the short token once, then the long one for good"
    );
    let seen = proxy.bearer_tokens();
    assert!(seen.contains(&issued[0]), "the first token was used");
    let after = &seen[before..];
    assert!(!after.is_empty(), "the last requests reached storage");
    assert!(
        after.iter().all(|t| *t == issued[1]),
        "once replaced, the old token is not used again"
    );
    assert_no_secrets(&h, &identity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_identity_endpoint_is_a_503_and_the_handler_recovers() {
    let azurite = OAuthAzurite::shared();
    let proxy = TableProxy::start(azurite).await;
    let identity = IdentityEndpoint::start(None, vec![]).await;
    // The failure quotes the header secret and a token-looking pair: neither may be logged.
    identity.set_plan(vec![Reply::Fail(
        500,
        json!({
            "error": "service_unavailable",
            "error_description": format!("rejected {} access_token=abc.def.ghi", identity.header),
        })
        .to_string(),
    )]);
    let mut h = Handler::spawn(identity_config(&proxy, &identity, None)).await;

    let r = h.discover("").await;
    assert_eq!(r.status, 503, "{}", r.text);
    r.assert_json_content_type();
    assert_error_body(&r.json(), None);
    assert_eq!(r.header("retry-after").as_deref(), Some("5"));
    let r = h
        .register(&json!({"serviceName": "late", "endpoint": "https://late.example.com"}))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        h.try_exit_status().is_none(),
        "the handler must keep running"
    );
    assert!(
        proxy.bearer_tokens().is_empty(),
        "no token, no table request"
    );

    identity.set_plan(vec![Reply::Token(HOUR)]);
    let recovered = poll_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let r = h.discover("").await;
            (r.status == 200).then_some(r)
        },
    )
    .await;
    assert!(recovered.is_some(), "no recovery; logs:\n{}", h.logs());
    register_and_discover(&h, "late").await;

    let logs = h.logs();
    assert!(
        logs.contains("answered 500: service_unavailable"),
        "the log names the identity failure:\n{logs}"
    );
    assert!(!logs.contains("abc.def.ghi"), "{logs}");
    assert_eq!(identity.problems(), Vec::<String>::new());
    assert_no_secrets(&h, &identity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_endpoint_is_never_a_probe_target() {
    let azurite = OAuthAzurite::shared();
    let proxy = TableProxy::start(azurite).await;
    let identity = IdentityEndpoint::start(None, vec![Reply::Token(HOUR)]).await;
    // The harness allows loopback probes: the identity endpoint is refused all the same.
    let h = Handler::spawn(identity_config(&proxy, &identity, None)).await;
    let r = h
        .register(&json!({"serviceName": "steal", "endpoint": identity.url}))
        .await;
    let error = r.assert_error(400, Some("endpoint"));
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("managed-identity endpoint"),
        "{error}"
    );
    assert!(proxy
        .tables()
        .row(&h.registry_table, "default", "steal")
        .await
        .is_none());
    assert_no_secrets(&h, &identity);
}
