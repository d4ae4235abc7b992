//! The function app's public URLs through the imitated host front door (`HostFront`, routing by
//! the repository's own host.json and function.json): with host.json's empty `routePrefix` and the
//! explicit `api/<Name>` routes, every URL the recipe and the docs use reaches the same function
//! with the same function-key check and the same path at the handler as before, forwarded and as
//! an envelope; `/v1/...` reaches `ConsulApi`, which the host lets through without a key and the
//! handler refuses while no authentication is configured.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

const FUNCTION_KEY: &str = "host-function-key-for-the-front-door";

async fn call(
    front: &HostFront,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut request = http_client().request(method, format!("{}{path}", front.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    Resp::read(request.send().await.expect("the front door answers")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipes_urls_reach_the_same_functions_forwarded_and_as_envelopes() {
    let h = Handler::start().await;
    let mut answers = vec![];
    for delivery in [Delivery::Forwarded, Delivery::Envelope] {
        let front = HostFront::start(&h, delivery, FUNCTION_KEY).await;
        let key = [("x-functions-key", FUNCTION_KEY)];
        let body = json!({"serviceName": "orders", "serviceType": "api", "instanceId": "pod-1",
                          "endpoint": "http://127.0.0.1:9/"});
        // The host's key check still guards the recipe's functions.
        let r = call(
            &front,
            Method::POST,
            "/api/ServiceRegistrar",
            &[],
            Some(body.clone()),
        )
        .await;
        assert_eq!(r.status, 401, "{delivery:?}: {}", r.text);
        let r = call(
            &front,
            Method::POST,
            &format!("/api/ServiceRegistrar?code={FUNCTION_KEY}"),
            &[],
            Some(body),
        )
        .await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);
        let heartbeat =
            json!({"serviceName": "orders", "serviceType": "api", "instanceId": "pod-1"});
        let r = call(
            &front,
            Method::POST,
            "/api/ServiceHeartbeat",
            &key,
            Some(heartbeat),
        )
        .await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);
        let discovery = call(
            &front,
            Method::GET,
            "/api/ServiceDiscovery?serviceType=api",
            &key,
            None,
        )
        .await;
        assert_eq!(discovery.status, 200, "{delivery:?}: {}", discovery.text);
        assert_eq!(
            keys(&discovery.json()),
            vec!["api/orders/pod-1"],
            "{delivery:?}"
        );
        let r = call(
            &front,
            Method::GET,
            "/api/ServiceResolver?serviceName=orders",
            &key,
            None,
        )
        .await;
        assert_ne!(r.status, 404, "{delivery:?}: {}", r.text);
        let r = call(&front, Method::GET, "/api/Sweep", &key, None).await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);
        let openapi = call(&front, Method::GET, "/api/openapi.json", &key, None).await;
        assert_eq!(openapi.status, 200, "{delivery:?}: {}", openapi.text);
        // The dashboard's page needs no key; a path no function declares is the host's 404.
        let r = call(&front, Method::GET, "/api/Dashboard", &[], None).await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);
        let r = call(&front, Method::GET, "/api/NotAFunction", &key, None).await;
        assert_eq!(r.status, 404, "{delivery:?}");
        let r = call(
            &front,
            Method::DELETE,
            "/api/ServiceRegistrar?serviceType=api&serviceName=orders&instanceId=pod-1",
            &key,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);

        let passed: Vec<(String, String)> = front
            .passed()
            .into_iter()
            .map(|p| (p.function, p.sent))
            .collect();
        let expected: Vec<(&str, String)> = match delivery {
            // The handler gets the public path: the same as under the default `api` prefix.
            Delivery::Forwarded => vec![
                (
                    "ServiceRegistrar",
                    format!("/api/ServiceRegistrar?code={FUNCTION_KEY}"),
                ),
                ("ServiceHeartbeat", "/api/ServiceHeartbeat".into()),
                (
                    "ServiceDiscovery",
                    "/api/ServiceDiscovery?serviceType=api".into(),
                ),
                (
                    "ServiceResolver",
                    "/api/ServiceResolver?serviceName=orders".into(),
                ),
                ("Sweep", "/api/Sweep".into()),
                ("OpenApi", "/api/openapi.json".into()),
                ("Dashboard", "/api/Dashboard".into()),
                (
                    "ServiceRegistrar",
                    "/api/ServiceRegistrar?serviceType=api&serviceName=orders&instanceId=pod-1"
                        .into(),
                ),
            ],
            Delivery::Envelope => [
                "ServiceRegistrar",
                "ServiceHeartbeat",
                "ServiceDiscovery",
                "ServiceResolver",
                "Sweep",
                "OpenApi",
                "Dashboard",
                "ServiceRegistrar",
            ]
            .into_iter()
            .map(|f| (f, format!("/{f}")))
            .collect(),
        };
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(f, s)| (f.to_owned(), s))
            .collect();
        assert_eq!(passed, expected, "{delivery:?}");
        answers.push((discovery.json(), openapi.text));
    }
    // Both ways give the caller the same answers.
    assert_eq!(answers[0].1, answers[1].1, "the OpenAPI document");
    assert_eq!(keys(&answers[0].0), keys(&answers[1].0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_reaches_consul_api_without_a_function_key_and_is_refused_while_nothing_authenticates() {
    let h = Handler::start().await;
    for delivery in [Delivery::Forwarded, Delivery::Envelope] {
        let front = HostFront::start(&h, delivery, FUNCTION_KEY).await;
        // No function key needed at the host; the handler refuses: nothing would check callers.
        let r = call(&front, Method::GET, "/v1/agent/self", &[], None).await;
        let error = r.assert_error(403, Some("Authorization"));
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .contains("REGISTRY_API_KEYS"),
            "{delivery:?}: {error}"
        );
        let body = json!({"Name": "web", "Address": "127.0.0.1", "Port": 8080});
        let r = call(
            &front,
            Method::PUT,
            "/v1/agent/service/register",
            &[],
            Some(body),
        )
        .await;
        r.assert_error(403, Some("Authorization"));
        // Consul's API is GET and PUT only: anything else is the host's 404.
        let r = call(&front, Method::POST, "/v1/agent/self", &[], None).await;
        assert_eq!(r.status, 404, "{delivery:?}");
        let sent: Vec<String> = front
            .passed()
            .into_iter()
            .map(|p| {
                assert_eq!(p.function, "ConsulApi");
                p.sent
            })
            .collect();
        let expected = match delivery {
            Delivery::Forwarded => vec!["/v1/agent/self", "/v1/agent/service/register"],
            Delivery::Envelope => vec!["/ConsulApi", "/ConsulApi"],
        };
        assert_eq!(sent, expected, "{delivery:?}");
    }
    assert!(h.tables().rows(&h.registry_table).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_agent_self_reaches_the_handler_through_the_host_with_keys_or_chosen_anonymity() {
    let keyed = Handler::spawn(
        HandlerConfig::new(Mode::CustomHandler).env("REGISTRY_API_KEYS", &key_lines()),
    )
    .await;
    let open = Handler::start_with(&[("REGISTRY_ALLOW_ANONYMOUS", "true")]).await;
    for delivery in [Delivery::Forwarded, Delivery::Envelope] {
        let front = HostFront::start(&keyed, delivery, FUNCTION_KEY).await;
        let r = call(&front, Method::GET, "/v1/agent/self", &[], None).await;
        assert_eq!(r.status, 401, "{delivery:?}: {}", r.text);
        let auth = bearer(READER);
        let r = call(
            &front,
            Method::GET,
            "/v1/agent/self",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);
        assert_eq!(r.json()["Config"]["Datacenter"], "dc1", "{delivery:?}");
        let r = call(
            &front,
            Method::GET,
            "/v1/agent/self",
            &[("X-Consul-Token", READER)],
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);

        let front = HostFront::start(&open, delivery, FUNCTION_KEY).await;
        let r = call(&front, Method::GET, "/v1/agent/self", &[], None).await;
        assert_eq!(r.status, 200, "{delivery:?}: {}", r.text);
        assert!(r.json()["Config"]["NodeName"].is_string(), "{}", r.text);
        assert_eq!(front.passed()[0].function, "ConsulApi");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_joins_a_repeated_query_key_before_forwarding() {
    let h = Handler::start().await;
    let front = HostFront::start(&h, Delivery::Forwarded, FUNCTION_KEY).await;
    let path = format!("/api/ServiceDiscovery?tag=a&tag=b%20c&code={FUNCTION_KEY}");
    call(&front, Method::GET, &path, &[], None).await;
    assert_eq!(
        front.passed()[0].sent,
        format!("/api/ServiceDiscovery?tag=a%2Cb%20c&code={FUNCTION_KEY}")
    );
    assert_eq!(
        rebuilt_query("tag=a&tag=b&x=1"),
        vec![
            ("tag".to_owned(), "a,b".to_owned()),
            ("x".to_owned(), "1".to_owned())
        ]
    );
}
