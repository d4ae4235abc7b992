//! Stand-ins for a managed identity, all on 127.0.0.1:
//!
//! - `IdentityEndpoint`: an imitation of App Service's local token service. It checks what the
//!   platform's would (`X-IDENTITY-HEADER`, `api-version`, `resource`: storage's, or the one the
//!   test names with `start_for`) and the `client_id` the test expects, counts requests, and answers with the tokens (or failures) the test plans;
//! - `OAuthAzurite`: Azurite in its OAuth mode (`--oauth basic`), which checks a bearer token's
//!   audience, issuer and lifetime (not its signature) and accepts bearer tokens only over HTTPS, so
//!   it is started with a throwaway certificate;
//! - `TableProxy`: the table endpoint the handler is given. It records each request's
//!   `Authorization` header and passes the request on to the OAuth Azurite over HTTPS (the handler's
//!   TLS trusts only public roots, which a local certificate is not among).
//!
//! The tokens are unsigned JWTs that Azurite's basic check accepts; each carries its serial number,
//! so a test can tell which one reached the table endpoint.

use super::*;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const STORAGE_RESOURCE: &str = "https://storage.azure.com";

/// What the imitation answers: request n gets plan[n], the last entry repeated.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A token that expires this long after it is issued.
    Token(Duration),
    /// A failure with this status and body.
    Fail(u16, String),
}

#[derive(Default)]
struct Identity {
    header: String,
    resource: String,
    client_id: Option<String>,
    plan: Mutex<Vec<Reply>>,
    hits: AtomicU64,
    /// Every request's query parameters, in order.
    queries: Mutex<Vec<HashMap<String, String>>>,
    /// What a real token service would have refused.
    problems: Mutex<Vec<String>>,
    issued: Mutex<Vec<String>>,
}

pub struct IdentityEndpoint {
    pub url: String,
    /// The `IDENTITY_HEADER` value the handler is given, and must send.
    pub header: String,
    state: Arc<Identity>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An unsigned JWT Azurite's basic OAuth check accepts: storage audience, an Entra issuer, a
/// lifetime; `serial` makes every token distinct.
fn jwt(audience: &str, serial: u64, expires_on: u64) -> String {
    let header = azure_core::base64::encode_url_safe(r#"{"alg":"HS256","typ":"JWT"}"#);
    let issued_at = unix_now() - 60;
    let claims = serde_json::json!({
        "aud": audience,
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_on,
        "serial": format!("token-{serial}-{}", short_id()),
    });
    let claims = azure_core::base64::encode_url_safe(claims.to_string());
    format!("{header}.{claims}.bm90LXNpZ25lZA")
}

async fn token_service(State(id): State<Arc<Identity>>, request: Request) -> Response {
    let n = id.hits.fetch_add(1, Ordering::SeqCst) as usize;
    let query = query_of(request.uri());
    id.queries.lock().unwrap().push(query.clone());
    let header = request
        .headers()
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    let mut problems = Vec::new();
    if request.method() != Method::GET || request.uri().path() != "/msi/token" {
        problems.push(format!("{} {}", request.method(), request.uri().path()));
    }
    if header != Some(id.header.as_str()) {
        problems.push("X-IDENTITY-HEADER missing or wrong".to_owned());
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        problems.push(format!("api-version {:?}", query.get("api-version")));
    }
    if query.get("resource") != Some(&id.resource) {
        problems.push(format!("resource {:?}", query.get("resource")));
    }
    if query.get("client_id") != id.client_id.as_ref() {
        problems.push(format!("client_id {:?}", query.get("client_id")));
    }
    if !problems.is_empty() {
        id.problems.lock().unwrap().extend(problems);
        let body = r#"{"error":"invalid_request","error_description":"refused by the imitation"}"#;
        return (StatusCode::BAD_REQUEST, body).into_response();
    }
    let reply = {
        let plan = id.plan.lock().unwrap();
        plan[n.min(plan.len() - 1)].clone()
    };
    match reply {
        Reply::Token(valid_for) => {
            let expires_on = unix_now() + valid_for.as_secs();
            let token = jwt(&id.resource, n as u64, expires_on);
            id.issued.lock().unwrap().push(token.clone());
            let body = serde_json::json!({
                "access_token": token,
                // App Service sends it as a string of seconds.
                "expires_on": expires_on.to_string(),
                "resource": id.resource,
                "token_type": "Bearer",
                "client_id": id.client_id.clone().unwrap_or_else(|| "system-assigned".into()),
            });
            ([("content-type", "application/json")], body.to_string()).into_response()
        }
        Reply::Fail(status, body) => (StatusCode::from_u16(status).unwrap(), body).into_response(),
    }
}

async fn listen(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

impl IdentityEndpoint {
    /// Expects `client_id` on every request when given, and none when not.
    pub async fn start(client_id: Option<&str>, plan: Vec<Reply>) -> IdentityEndpoint {
        IdentityEndpoint::start_for(STORAGE_RESOURCE, client_id, plan).await
    }

    /// Hands out tokens for `resource` only (e.g. Resource Manager's audience).
    pub async fn start_for(
        resource: &str,
        client_id: Option<&str>,
        plan: Vec<Reply>,
    ) -> IdentityEndpoint {
        let header = format!("identity-header-{}", short_id());
        let state = Arc::new(Identity {
            header: header.clone(),
            resource: resource.to_owned(),
            client_id: client_id.map(str::to_owned),
            plan: Mutex::new(plan),
            ..Identity::default()
        });
        let app = axum::Router::new()
            .fallback(token_service)
            .with_state(state.clone());
        let port = listen(app).await;
        IdentityEndpoint {
            url: format!("http://127.0.0.1:{port}/msi/token"),
            header,
            state,
        }
    }

    pub fn set_plan(&self, plan: Vec<Reply>) {
        *self.state.plan.lock().unwrap() = plan;
    }

    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn queries(&self) -> Vec<HashMap<String, String>> {
        self.state.queries.lock().unwrap().clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }

    /// The tokens handed out, in order.
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }
}

/// Azurite with `--oauth basic` over HTTPS, one per test binary, and the certificate it serves.
pub struct OAuthAzurite {
    pub azurite: Azurite,
    pub certificate_pem: String,
}

impl OAuthAzurite {
    pub fn shared() -> &'static OAuthAzurite {
        static SHARED: OnceLock<OAuthAzurite> = OnceLock::new();
        SHARED.get_or_init(|| {
            std::thread::spawn(|| {
                let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
                    .expect("a self-signed certificate for 127.0.0.1");
                let dir = scratch_dir("oauth-cert");
                let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
                std::fs::write(&cert, certified.cert.pem()).unwrap();
                std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
                let azurite = Azurite::private_with_args(vec![
                    "--oauth".into(),
                    "basic".into(),
                    "--cert".into(),
                    cert.display().to_string(),
                    "--key".into(),
                    key.display().to_string(),
                ]);
                OAuthAzurite {
                    azurite,
                    certificate_pem: certified.cert.pem(),
                }
            })
            .join()
            .expect("start the OAuth Azurite")
        })
    }
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    authorizations: Mutex<Vec<String>>,
}

/// The handler's table endpoint: records `Authorization`, forwards to the OAuth Azurite.
pub struct TableProxy {
    pub port: u16,
    state: Arc<Proxy>,
}

/// Hop-by-hop and framing headers, which the proxy's own HTTP stacks set.
const NOT_FORWARDED: [&str; 5] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
];

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        proxy.authorizations.lock().unwrap().push(value.to_owned());
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = proxy
        .client
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    let status = answer.status();
    let mut back = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            back.append(name, value.clone());
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    (status, back, body).into_response()
}

impl TableProxy {
    pub async fn start(azurite: &OAuthAzurite) -> TableProxy {
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(
                reqwest::Certificate::from_pem(azurite.certificate_pem.as_bytes()).unwrap(),
            )
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let state = Arc::new(Proxy {
            upstream: format!("https://127.0.0.1:{}", azurite.azurite.port),
            client,
            authorizations: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        TableProxy {
            port: listen(app).await,
            state,
        }
    }

    /// What `AZURE_STORAGETABLE_RESOURCEENDPOINT` is set to (path-style, as Azurite serves).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The bearer tokens that reached the table endpoint, in order (the test's own SharedKey
    /// reads through `tables()` are left out).
    pub fn bearer_tokens(&self) -> Vec<String> {
        self.state
            .authorizations
            .lock()
            .unwrap()
            .iter()
            .filter_map(|value| value.strip_prefix("Bearer ").map(str::to_owned))
            .collect()
    }

    /// A SharedKey client for the OAuth Azurite, through this proxy.
    pub fn tables(&self) -> Tables {
        Tables::new(self.port)
    }
}

/// The handler for these stand-ins: managed identity, App Service protocol, nothing else.
pub fn identity_config(
    proxy: &TableProxy,
    identity: &IdentityEndpoint,
    client_id: Option<&str>,
) -> HandlerConfig {
    let mut cfg = HandlerConfig::bare(Mode::CustomHandler)
        .env("AZURE_STORAGETABLE_RESOURCEENDPOINT", &proxy.endpoint())
        .env("IDENTITY_ENDPOINT", &identity.url)
        .env("IDENTITY_HEADER", &identity.header)
        // Every log line there is, so a leak has nowhere to hide.
        .env("RUST_LOG", "trace");
    if let Some(id) = client_id {
        cfg = cfg.env("AZURE_STORAGETABLE_CLIENTID", id);
    }
    cfg
}

/// Neither the header secret nor any token (or its claims) is in the handler's output.
pub fn assert_no_secrets(handler: &Handler, identity: &IdentityEndpoint) {
    let logs = handler.logs();
    assert!(
        !logs.contains(&identity.header),
        "the identity header reached the logs:\n{logs}"
    );
    for token in identity.issued() {
        let claims = token.split('.').nth(1).unwrap();
        assert!(!logs.contains(claims), "a token reached the logs:\n{logs}");
    }
}
