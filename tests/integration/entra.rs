//! Microsoft Entra ID access tokens, checked against a tenant the test plays on
//! 127.0.0.1 (its own RSA keys, metadata and JWKS; `harness::entra`).

use crate::harness::entra::*;
use crate::harness::*;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn handler(tenant: &TestTenant, extra: &[(&str, &str)]) -> Handler {
    let mut cfg = HandlerConfig::new(Mode::Standalone);
    for (k, v) in tenant.env() {
        cfg = cfg.env(k, &v);
    }
    for (k, v) in extra {
        cfg = cfg.env(k, v);
    }
    Handler::spawn(cfg).await
}

async fn with_token(
    h: &Handler,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Resp {
    h.send(
        method,
        path,
        &[("Authorization", &bearer(token))],
        body.map(|b| b.to_string()),
    )
    .await
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_roles_in_a_valid_token_decide_what_it_may_do() {
    let tenant = TestTenant::start();
    let h = handler(&tenant, &[]).await;
    let writer = tenant.token(&["Registry.Write"]);
    let r = with_token(
        &h,
        Method::POST,
        "/api/ServiceRegistrar",
        &writer,
        Some(service("api", "t")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reader = tenant.token(&["Registry.Read"]);
    let r = with_token(&h, Method::GET, "/api/ServiceDiscovery", &reader, None).await;
    assert_eq!(r.json()["count"], 1, "{}", r.text);
    with_token(
        &h,
        Method::POST,
        "/api/ServiceRegistrar",
        &reader,
        Some(service("api", "u")),
    )
    .await
    .assert_error(403, Some("serviceType"));
    let scoped = tenant.token(&["Registry.Write:api"]);
    let r = with_token(
        &h,
        Method::POST,
        "/api/ServiceRegistrar",
        &scoped,
        Some(service("api", "v")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    with_token(
        &h,
        Method::POST,
        "/api/ServiceRegistrar",
        &scoped,
        Some(service("db", "v")),
    )
    .await
    .assert_error(403, Some("serviceType"));
    // Authenticated but holding no role of ours: nothing.
    let none = tenant.token(&["Some.Other.Role"]);
    with_token(&h, Method::GET, "/api/ServiceDiscovery", &none, None)
        .await
        .assert_error(403, Some("serviceName"));
    let sweep = Some(timer_envelope(timer_info_object()));
    with_token(&h, Method::POST, "/HealthMonitor", &writer, sweep.clone())
        .await
        .assert_error(403, None);
    let admin = tenant.token(&["Registry.Admin"]);
    let r = with_token(&h, Method::POST, "/HealthMonitor", &admin, sweep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Fetched once, then served from memory.
    assert_eq!((tenant.metadata_hits(), tenant.jwks_hits()), (1, 1));
    assert_eq!(
        h.tables().rows(&h.registry_table).await.len(),
        2,
        "only the allowed registrations were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_token_is_refused_with_401() {
    let tenant = TestTenant::start();
    let h = handler(&tenant, &[]).await;
    let (published, unpublished) = signing_keys();
    let now = chrono::Utc::now().timestamp();
    let with = |changes: Value| {
        let mut claims = tenant.claims(&["Registry.Admin"]);
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &with(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret anyone could guess").unwrap(),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": published.kid})),
        b64(&with(json!({})))
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(published, &with(json!({"exp": now - 3600}))),
        ),
        (
            "not valid yet",
            sign(published, &with(json!({"nbf": now + 3600}))),
        ),
        (
            "wrong audience",
            sign(published, &with(json!({"aud": "api://someone-else"}))),
        ),
        (
            "wrong issuer",
            sign(
                published,
                &with(json!({"iss": "https://login.microsoftonline.com/another-tenant/v2.0"})),
            ),
        ),
        ("no exp", sign(published, &with(json!({"exp": null})))),
        ("no nbf", sign(published, &with(json!({"nbf": null})))),
        ("unknown kid", sign(unpublished, &with(json!({})))),
        (
            "forged signature",
            sign_with_kid(unpublished, &published.kid, &with(json!({}))),
        ),
        ("HS256", hs256),
        ("alg none", alg_none),
        ("garbage", "abc.def.ghi".to_owned()),
    ];
    for (what, token) in &cases {
        for path in ["/api/ServiceDiscovery", "/HealthMonitor"] {
            let method = if path == "/HealthMonitor" {
                Method::POST
            } else {
                Method::GET
            };
            let r = with_token(
                &h,
                method,
                path,
                token,
                Some(timer_envelope(timer_info_object())),
            )
            .await;
            r.assert_error(401, Some("Authorization"));
            assert!(
                r.header("www-authenticate")
                    .unwrap_or_default()
                    .contains(r#"error="invalid_token""#),
                "{what}: {:?}",
                r.headers
            );
        }
    }
    let r = with_token(
        &h,
        Method::POST,
        "/api/ServiceRegistrar",
        &cases[0].1,
        Some(service("api", "x")),
    )
    .await;
    r.assert_error(401, Some("Authorization"));
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
    // Within the 60 s leeway an expiry still counts as valid (clock skew), beyond it not.
    let skewed = sign(published, &with(json!({"exp": now - 20, "nbf": now + 20})));
    let r = with_token(&h, Method::GET, "/api/ServiceDiscovery", &skewed, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A stream of unknown kids costs no fetch within the refresh interval (5 minutes by default).
    assert_eq!(tenant.jwks_hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refreshes_the_keys_at_most_once_per_interval() {
    let tenant = TestTenant::start();
    let interval = Duration::from_millis(500);
    let h = handler(&tenant, &[("REGISTRY_ENTRA_KEY_REFRESH_MS", "500")]).await;
    let started = Instant::now();
    let current = tenant.token(&["Registry.Read"]);
    let r = with_token(&h, Method::GET, "/api/ServiceDiscovery", &current, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let next = sign(&signing_keys().1, &tenant.claims(&["Registry.Read"]));
    with_token(&h, Method::GET, "/api/ServiceDiscovery", &next, None)
        .await
        .assert_error(401, Some("Authorization"));

    // The tenant rolls its keys: the new kid is accepted once a refresh picks it up.
    tenant.publish_both();
    let mut attempts = 0u64;
    let accepted = poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        attempts += 1;
        let h = &h;
        let next = &next;
        async move {
            let r = with_token(h, Method::GET, "/api/ServiceDiscovery", next, None).await;
            (r.status == 200).then_some(())
        }
    })
    .await;
    assert!(
        accepted.is_some(),
        "the rotated key was never fetched:\n{}",
        h.logs()
    );

    // Bounded: 40 concurrent tokens with a kid nobody publishes.
    let forged = sign_with_kid(
        &signing_keys().1,
        "never-published",
        &tenant.claims(&["Registry.Read"]),
    );
    let burst: Vec<_> = (0..40)
        .map(|_| with_token(&h, Method::GET, "/api/ServiceDiscovery", &forged, None))
        .collect();
    for r in futures::future::join_all(burst).await {
        r.assert_error(401, Some("Authorization"));
    }
    let elapsed = started.elapsed();
    let allowed = 2 + (elapsed.as_millis() / interval.as_millis()) as u64;
    let hits = tenant.jwks_hits();
    assert!(
        hits <= allowed,
        "{hits} key-set fetches in {elapsed:?} ({attempts} polls, 40 forged tokens) at one per {interval:?}"
    );
    assert!(hits >= 2, "the rotation needed a second fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_unreachable_at_first_use_is_a_503_until_it_answers() {
    let tenant = TestTenant::start();
    tenant.set_down(true);
    let h = handler(&tenant, &[("REGISTRY_ENTRA_KEY_REFRESH_MS", "300")]).await;
    let token = tenant.token(&["Registry.Read"]);
    let r = with_token(&h, Method::GET, "/api/ServiceDiscovery", &token, None).await;
    r.assert_error(503, None);
    assert_eq!(r.header("retry-after").as_deref(), Some("5"));
    tenant.set_down(false);
    let served = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let r = with_token(&h, Method::GET, "/api/ServiceDiscovery", &token, None).await;
            (r.status == 200).then_some(())
        },
    )
    .await;
    assert!(served.is_some(), "{}", h.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_tokens_work_side_by_side() {
    let tenant = TestTenant::start();
    let h = handler(&tenant, &[("REGISTRY_API_KEYS", &key_lines())]).await;
    let r = with_token(
        &h,
        Method::POST,
        "/api/ServiceRegistrar",
        WRITER,
        Some(service("api", "k")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = with_token(
        &h,
        Method::GET,
        "/api/ServiceDiscovery",
        &tenant.token(&["Registry.Read"]),
        None,
    )
    .await;
    assert_eq!(r.json()["count"], 1, "{}", r.text);
    // The token's secret-free identity, not the token, is what the log line shows.
    let logs = h.logs();
    assert!(
        !logs.contains(&tenant.token(&["Registry.Read"])[..40]),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_roles_match_exactly_and_the_issuer_must_be_a_string() {
    let tenant = TestTenant::start();
    let h = handler(&tenant, &[]).await;
    let sweep = || Some(timer_envelope(timer_info_object()));
    // Signed by the tenant's published key, valid in every other way: only the role's spelling
    // differs, so each is authenticated and holds no right of ours.
    for role in [
        "registry.admin",
        "REGISTRY.ADMIN",
        "Registry.admin",
        "Registry.Admin:*",
        "registry.Admin:*",
    ] {
        let token = tenant.token(&[role]);
        with_token(&h, Method::POST, "/HealthMonitor", &token, sweep())
            .await
            .assert_error(403, None);
        with_token(&h, Method::GET, "/api/Sweep", &token, None)
            .await
            .assert_error(403, None);
    }
    for role in ["registry.write", "REGISTRY.WRITE:api"] {
        let token = tenant.token(&[role]);
        with_token(
            &h,
            Method::POST,
            "/api/ServiceRegistrar",
            &token,
            Some(service("api", "cased")),
        )
        .await
        .assert_error(403, Some("serviceType"));
    }
    let admin = tenant.token(&["Registry.Admin"]);
    let r = with_token(&h, Method::POST, "/HealthMonitor", &admin, sweep()).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // `iss` as an array holding the right issuer: refused (RFC 7519: a string).
    let (published, _) = signing_keys();
    let mut claims = tenant.claims(&["Registry.Admin"]);
    let issuer = claims["iss"].clone();
    assert!(issuer.is_string(), "{claims}");
    claims["iss"] = json!([issuer]);
    let token = sign(published, &claims);
    for (method, path) in [
        (Method::GET, "/api/ServiceDiscovery"),
        (Method::POST, "/HealthMonitor"),
    ] {
        let r = with_token(&h, method, path, &token, sweep()).await;
        r.assert_error(401, Some("Authorization"));
        assert!(r.text.contains("iss"), "{}", r.text);
    }
    claims["iss"] = json!([issuer, "https://other.example/"]);
    with_token(
        &h,
        Method::GET,
        "/api/ServiceDiscovery",
        &sign(published, &claims),
        None,
    )
    .await
    .assert_error(401, Some("Authorization"));
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}
