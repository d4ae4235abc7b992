//! The credential against a token service on 127.0.0.1: caching, one fetch at a time, shared
//! failures, a failed refresh, the timeout, and the instance metadata protocol with its base URL
//! pointed at the loopback server (nothing here may contact 169.254.169.254).

use super::*;
use crate::configuration::Secret;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;
use url::Url;

const SCOPE: &str = "https://storage.azure.com/.default";

/// What the fake service answers: one entry per request, the last one repeated.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

fn token_answer(token: &str, valid_for: Duration) -> Answer {
    let expires_on = (SystemTime::now() + valid_for)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Answer {
        status: 200,
        body: format!(
            r#"{{"access_token":"{token}","expires_on":"{expires_on}","resource":"https://storage.azure.com","token_type":"Bearer"}}"#
        ),
        delay: Duration::ZERO,
    }
}

fn failing(status: u16) -> Answer {
    Answer {
        status,
        body: r#"{"error":"unavailable","error_description":"try later"}"#.into(),
        delay: Duration::ZERO,
    }
}

/// A request as the service saw it: path and query, and its headers.
type Seen = (String, Vec<(String, String)>);

#[derive(Default)]
struct Service {
    answers: Mutex<Vec<Answer>>,
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

impl Service {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn set(&self, answers: Vec<Answer>) {
        *self.answers.lock().unwrap() = answers;
    }
}

async fn answer(State(service): State<Arc<Service>>, request: Request) -> impl IntoResponse {
    let n = service.hits.fetch_add(1, Ordering::SeqCst);
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let target = request.uri().to_string();
    service.seen.lock().unwrap().push((target, headers));
    let chosen = {
        let answers = service.answers.lock().unwrap();
        answers[n.min(answers.len() - 1)].clone()
    };
    tokio::time::sleep(chosen.delay).await;
    (StatusCode::from_u16(chosen.status).unwrap(), chosen.body)
}

async fn serve(answers: Vec<Answer>) -> (Arc<Service>, String) {
    let service = Arc::new(Service::default());
    service.set(answers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(service.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (service, format!("http://{address}/msi/token"))
}

fn app_service(url: &str, client_id: Option<&str>, timeout: Duration) -> ManagedIdentityCredential {
    ManagedIdentityCredential::with_endpoint(
        TokenEndpoint::AppService {
            url: Url::parse(url).unwrap(),
            header: Secret::new("THE-HEADER"),
        },
        client_id.map(str::to_owned),
        timeout,
    )
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_token_is_fetched_once_and_reused_until_near_expiry() {
    let (service, url) = serve(vec![token_answer("first", HOUR)]).await;
    let credential = app_service(&url, None, Duration::from_secs(5));
    for _ in 0..5 {
        let token = credential.get_token(&[SCOPE]).await.unwrap();
        assert_eq!(token.token.secret(), "first");
    }
    assert_eq!(service.hits(), 1);
    let (target, headers) = service.seen.lock().unwrap()[0].clone();
    assert_eq!(
        target,
        "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com"
    );
    assert!(headers.contains(&("x-identity-header".into(), "THE-HEADER".into())));
    credential.clear_cache().await.unwrap();
    credential.get_token(&[SCOPE]).await.unwrap();
    assert_eq!(service.hits(), 2, "a cleared cache fetches again");
}

#[tokio::test]
async fn a_token_inside_the_refresh_window_is_replaced() {
    let (service, url) = serve(vec![
        token_answer("short", Duration::from_secs(120)),
        token_answer("long", HOUR),
    ])
    .await;
    let credential = app_service(&url, None, Duration::from_secs(5));
    let first = credential.get_token(&[SCOPE]).await.unwrap();
    assert_eq!(first.token.secret(), "short");
    for _ in 0..3 {
        assert_eq!(
            credential.get_token(&[SCOPE]).await.unwrap().token.secret(),
            "long"
        );
    }
    assert_eq!(service.hits(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let mut slow = token_answer("shared", HOUR);
    slow.delay = Duration::from_millis(300);
    let (service, url) = serve(vec![slow]).await;
    let credential = Arc::new(app_service(&url, None, Duration::from_secs(5)));
    let calls = (0..16).map(|_| {
        let credential = credential.clone();
        tokio::spawn(async move { credential.get_token(&[SCOPE]).await.map(|t| t.token) })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().secret(), "shared");
    }
    assert_eq!(service.hits(), 1);
}

#[tokio::test]
async fn callers_waiting_for_a_failed_fetch_share_its_failure() {
    let mut slow = failing(500);
    slow.delay = Duration::from_millis(300);
    let (service, url) = serve(vec![slow, token_answer("later", HOUR)]).await;
    let credential = Arc::new(app_service(&url, None, Duration::from_secs(5)));
    let calls = (0..8).map(|_| {
        let credential = credential.clone();
        tokio::spawn(async move { credential.get_token(&[SCOPE]).await.map(|t| t.token) })
    });
    for call in futures::future::join_all(calls).await {
        let error = call.unwrap().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Credential);
        assert!(
            error
                .to_string()
                .contains("answered 500: unavailable: try later"),
            "{error}"
        );
    }
    assert_eq!(service.hits(), 1, "one outage, one request");
    // The next caller starts a new fetch, and the service has recovered.
    assert_eq!(
        credential.get_token(&[SCOPE]).await.unwrap().token.secret(),
        "later"
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_still_valid_token() {
    let (service, url) = serve(vec![
        token_answer("expiring", Duration::from_secs(120)),
        failing(503),
    ])
    .await;
    let credential = app_service(&url, None, Duration::from_secs(5));
    for _ in 0..3 {
        assert_eq!(
            credential.get_token(&[SCOPE]).await.unwrap().token.secret(),
            "expiring"
        );
    }
    assert_eq!(
        service.hits(),
        3,
        "each use inside the refresh window tries again"
    );
}

#[tokio::test]
async fn a_silent_service_times_out() {
    let mut silent = token_answer("never", HOUR);
    silent.delay = Duration::from_secs(30);
    let (_service, url) = serve(vec![silent]).await;
    let credential = app_service(&url, None, Duration::from_millis(200));
    let started = Instant::now();
    let error = credential.get_token(&[SCOPE]).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(error.to_string().contains("managed identity:"), "{error}");
}

#[tokio::test]
async fn an_unreachable_service_is_a_credential_error_without_the_header() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let credential = app_service(
        &format!("http://127.0.0.1:{port}/msi/token"),
        None,
        Duration::from_secs(2),
    );
    let error = credential.get_token(&[SCOPE]).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("unreachable"), "{text}");
    assert!(!text.contains("THE-HEADER"), "{text}");
    assert!(!format!("{credential:?}").contains("THE-HEADER"));
}

#[tokio::test]
async fn the_instance_metadata_protocol_sends_its_header_version_and_client_id() {
    let (service, url) = serve(vec![token_answer("imds", HOUR)]).await;
    let url = url.replace("/msi/token", "/metadata/identity/oauth2/token");
    let client_id = "0d3a4c2e-1b5f-4a6e-9c7d-8e9f0a1b2c3d";
    let credential = ManagedIdentityCredential::with_endpoint(
        TokenEndpoint::InstanceMetadata {
            url: Url::parse(&url).unwrap(),
        },
        Some(client_id.into()),
        Duration::from_secs(5),
    );
    assert_eq!(
        credential.get_token(&[SCOPE]).await.unwrap().token.secret(),
        "imds"
    );
    let (target, headers) = service.seen.lock().unwrap()[0].clone();
    assert_eq!(
        target,
        format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com&client_id={client_id}")
    );
    assert!(headers.contains(&("metadata".into(), "true".into())));
    assert!(!headers.iter().any(|(k, _)| k == "x-identity-header"));
}
