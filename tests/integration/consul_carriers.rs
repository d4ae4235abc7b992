//! The Consul token carriers behind a proxy that adds its own `Authorization: Basic`: the
//! `X-Consul-Token` or `?token=` the client sent still authenticates, since only a bearer token
//! (vmagent's carrier) takes precedence over them.

use crate::harness::*;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_authorization_does_not_hide_the_consul_token() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    let basic = [("Authorization", "Basic cHJveHk6c2VjcmV0")];
    let r = h
        .send(Method::GET, "/v1/catalog/services", &basic, None)
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    let with_token = [basic[0], ("X-Consul-Token", READER)];
    let r = h
        .send(Method::GET, "/v1/catalog/services", &with_token, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .send(
            Method::GET,
            &format!("/v1/catalog/services?token={READER}"),
            &basic,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A bearer token still wins over the other carriers: a wrong one is refused.
    let wrong = bearer("not-a-key");
    let r = h
        .send(
            Method::GET,
            "/v1/catalog/services",
            &[
                ("Authorization", wrong.as_str()),
                ("X-Consul-Token", READER),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
}
