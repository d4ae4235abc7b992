//! A stand-in for a Microsoft Entra tenant on 127.0.0.1: its own RSA keys (made here, for tests
//! only), the OpenID metadata document and the key set (JWKS) served from a small local server
//! that counts its hits, and access tokens signed as the tenant would sign them.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::Generate;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

pub const TENANT: &str = "00000000-0000-4000-8000-00000000c0de";
pub const AUDIENCE: &str = "api://service-registry-tests";

/// One RSA key pair, made once per test binary: test-only, never used anywhere else.
pub struct TestKey {
    pub kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn make_key(kid: &str) -> TestKey {
    let private = rsa::PrivateKey::generate();
    let der = private.to_pkcs1_der().expect("PKCS#1 DER of a fresh key");
    let encoding = EncodingKey::from_rsa_der(der.as_bytes());
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("JWK of the key");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    TestKey {
        kid: kid.to_owned(),
        encoding,
        jwk: serde_json::to_value(&jwk).unwrap(),
    }
}

/// The tenant's current key, and a second one (for rotation and for keys the tenant does not
/// publish). Made on first use, in parallel.
pub fn signing_keys() -> &'static (TestKey, TestKey) {
    static KEYS: OnceLock<(TestKey, TestKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let second = thread::spawn(|| make_key("test-key-2"));
        let first = make_key("test-key-1");
        (first, second.join().unwrap())
    })
}

/// The tenant's documents on 127.0.0.1, with hit counters and a switch to make them fail.
pub struct TestTenant {
    pub port: u16,
    pub issuer: String,
    published: Arc<Mutex<Vec<Value>>>,
    metadata_hits: Arc<AtomicU64>,
    jwks_hits: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
}

impl TestTenant {
    /// Publishes the first key.
    pub fn start() -> TestTenant {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tenant = TestTenant {
            port,
            issuer: format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            published: Arc::new(Mutex::new(vec![signing_keys().0.jwk.clone()])),
            metadata_hits: Arc::new(AtomicU64::new(0)),
            jwks_hits: Arc::new(AtomicU64::new(0)),
            down: Arc::new(AtomicBool::new(false)),
        };
        let (published, metadata_hits, jwks_hits, down, issuer) = (
            tenant.published.clone(),
            tenant.metadata_hits.clone(),
            tenant.jwks_hits.clone(),
            tenant.down.clone(),
            tenant.issuer.clone(),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let path = request_path(&mut stream);
                let (status, body) = if down.load(Ordering::SeqCst) {
                    (503, "{}".to_owned())
                } else if path.ends_with("/.well-known/openid-configuration") {
                    metadata_hits.fetch_add(1, Ordering::SeqCst);
                    let body = json!({
                        "issuer": issuer,
                        "jwks_uri": format!("http://127.0.0.1:{port}/{TENANT}/discovery/v2.0/keys"),
                        "token_endpoint": format!("http://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token"),
                    });
                    (200, body.to_string())
                } else if path.ends_with("/discovery/v2.0/keys") {
                    jwks_hits.fetch_add(1, Ordering::SeqCst);
                    let keys = published.lock().unwrap().clone();
                    (200, json!({ "keys": keys }).to_string())
                } else {
                    (404, "{}".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        tenant
    }

    pub fn metadata_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/{TENANT}/v2.0/.well-known/openid-configuration",
            self.port
        )
    }

    /// The handler settings that trust this tenant.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REGISTRY_ENTRA_METADATA_URL", self.metadata_url()),
            ("REGISTRY_ENTRA_AUDIENCE", AUDIENCE.to_owned()),
        ]
    }

    /// Publish both keys (a rotation in progress).
    pub fn publish_both(&self) {
        *self.published.lock().unwrap() =
            vec![signing_keys().0.jwk.clone(), signing_keys().1.jwk.clone()];
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn metadata_hits(&self) -> u64 {
        self.metadata_hits.load(Ordering::SeqCst)
    }

    pub fn jwks_hits(&self) -> u64 {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Claims of a valid token for the tests' audience: an hour left, these app roles.
    pub fn claims(&self, roles: &[&str]) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": now - 10,
            "nbf": now - 10,
            "exp": now + 3600,
            "oid": "11111111-0000-4000-8000-000000000001",
            "sub": "subject-1",
            "tid": TENANT,
            "roles": roles,
        })
    }

    /// A valid token with these app roles, signed with the published key.
    pub fn token(&self, roles: &[&str]) -> String {
        sign(&signing_keys().0, &self.claims(roles))
    }
}

/// Signs `claims` with `key` (RS256), naming the key's id in the header.
pub fn sign(key: &TestKey, claims: &Value) -> String {
    sign_with_kid(key, &key.kid, claims)
}

pub fn sign_with_kid(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign a test token")
}

fn request_path(stream: &mut TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("")
        .to_owned()
}
