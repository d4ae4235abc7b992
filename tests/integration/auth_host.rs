//! API keys and tokens under the Functions host: authentication is opt-in beside the host's
//! function keys, envelopes are authenticated by the headers inside them, the timer stays the
//! host's, and App Service's `X-MS-CLIENT-PRINCIPAL` counts only when trusted.

use crate::harness::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

const FUNCTION_KEY: &str = "host-function-key-not-ours-000000000000";

fn principal(roles: &[&str]) -> String {
    let mut claims = vec![json!({
        "typ": "http://schemas.microsoft.com/identity/claims/objectidentifier",
        "val": "22222222-0000-4000-8000-000000000002"
    })];
    for role in roles {
        claims.push(json!({
            "typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
            "val": role
        }));
    }
    let value = json!({
        "auth_typ": "aad",
        "claims": claims,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    });
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_host_keys_are_opt_in_and_checked_inside_envelopes_too() {
    let h = Handler::start_with(&[("REGISTRY_API_KEYS", &key_lines())]).await;
    // The host's function key alone is not one of ours: 401 from the handler.
    let r = h
        .send(
            Method::POST,
            "/api/ServiceRegistrar",
            &[("x-functions-key", FUNCTION_KEY)],
            Some(service("api", "h").to_string()),
        )
        .await;
    r.assert_error(401, Some("x-functions-key"));
    // Beside it, our key in Authorization decides.
    let r = h
        .send(
            Method::POST,
            "/api/ServiceRegistrar",
            &[
                ("x-functions-key", FUNCTION_KEY),
                ("Authorization", &bearer(WRITER)),
            ],
            Some(service("api", "h").to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Envelopes (forwarding off): the caller's headers inside `Data.req` are what count.
    let delete = |key: Option<&str>| {
        let mut e = ReqEnvelope::new("ServiceRegistrar", "DELETE")
            .query(&[("serviceType", "api"), ("serviceName", "h")]);
        if let Some(key) = key {
            e = e.header("Authorization", &bearer(key));
        }
        e.build()
    };
    let res = h
        .invoke("ServiceRegistrar", &delete(None))
        .await
        .envelope_res();
    assert_eq!(res.status, 401, "{}", res.raw);
    assert_error_body(&res.json(), Some("Authorization"));
    let res = h
        .invoke("ServiceRegistrar", &delete(Some(READER)))
        .await
        .envelope_res();
    assert_eq!(res.status, 403, "{}", res.raw);
    assert!(h
        .tables()
        .row(&h.registry_table, "api", "h")
        .await
        .is_some());
    let res = h
        .invoke("ServiceRegistrar", &delete(Some(WRITER)))
        .await
        .envelope_res();
    assert_eq!(res.status, 200, "{}", res.raw);
    assert!(h
        .tables()
        .row(&h.registry_table, "api", "h")
        .await
        .is_none());

    // The timer is the host's: its envelope carries no caller and needs none.
    let r = h.sweep().await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Admin keys do not open anything else under the host.
    let r = h
        .call(Method::GET, "/api/ServiceDiscovery", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_principal_counts_only_when_trusted() {
    let h = Handler::start_with(&[("REGISTRY_TRUST_CLIENT_PRINCIPAL", "true")]).await;
    let as_principal = |roles: &[&str]| principal(roles);
    let reader = as_principal(&["Registry.Read"]);
    let r = h
        .send(
            Method::GET,
            "/api/ServiceDiscovery",
            &[("X-MS-CLIENT-PRINCIPAL", &reader)],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.send(
        Method::POST,
        "/api/ServiceRegistrar",
        &[("X-MS-CLIENT-PRINCIPAL", &reader)],
        Some(service("api", "p").to_string()),
    )
    .await
    .assert_error(403, Some("serviceType"));
    let writer = as_principal(&["Registry.Write:api"]);
    let r = h
        .send(
            Method::POST,
            "/api/ServiceRegistrar",
            &[("X-MS-CLIENT-PRINCIPAL", &writer)],
            Some(service("api", "p").to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    h.send(
        Method::POST,
        "/api/ServiceRegistrar",
        &[("X-MS-CLIENT-PRINCIPAL", &writer)],
        Some(service("db", "p").to_string()),
    )
    .await
    .assert_error(403, Some("serviceType"));
    h.send(
        Method::GET,
        "/api/ServiceDiscovery",
        &[("X-MS-CLIENT-PRINCIPAL", "garbage!")],
        None,
    )
    .await
    .assert_error(401, Some("X-MS-CLIENT-PRINCIPAL"));
    h.send(Method::GET, "/api/ServiceDiscovery", &[], None)
        .await
        .assert_error(401, Some("Authorization"));

    // Not trusted (keys configured instead): the same header, even claiming admin, is ignored.
    let h = Handler::start_with(&[("REGISTRY_API_KEYS", &key_lines())]).await;
    let admin = as_principal(&["Registry.Admin"]);
    h.send(
        Method::GET,
        "/api/ServiceDiscovery",
        &[("X-MS-CLIENT-PRINCIPAL", &admin)],
        None,
    )
    .await
    .assert_error(401, Some("Authorization"));
    let rows: Vec<Value> = h.tables().rows(&h.registry_table).await;
    assert!(rows.is_empty());
}
