//! Test harness: Azurite (shared and private), the `handler` process, host envelopes,
//! a direct table client and local probe targets.
//!
//! Process hygiene: every child process (Azurite, handler) joins the process group of a
//! small `sh` "reaper" started once per test binary. The reaper polls the test process's
//! pid and, when it disappears (normal exit, panic, SIGKILL), terminates the whole group
//! and removes the scratch directory. Drop guards kill individual children earlier.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use azure_data_tables::prelude::*;
use azure_storage::{CloudLocation, StorageCredentials};
use futures::StreamExt;
use serde_json::{json, Value};
use service_registry::health::SweepReport;

pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const HOST_VERSION: &str = "4.1037.0.0";

/// Environment variables a handler must never inherit from the test runner.
const SCRUBBED_ENV: &[&str] = &[
    "STORAGE_CONNECTION_STRING",
    "AZURE_STORAGETABLE_CONNECTIONSTRING",
    "AzureWebJobsStorage",
    "AZURE_STORAGETABLE_RESOURCEENDPOINT",
    "AZURE_STORAGETABLE_CLIENTID",
    "AZURE_STORAGETABLE_CLIENTSECRET",
    "AZURE_CLIENT_ID",
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "FUNCTIONS_HTTPWORKER_PORT",
    "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
    "FUNCTIONS_HTTPWORKER_ID",
    "FUNCTIONS_APP_ROOT_PATH",
    "FUNCTIONS_WORKER_RUNTIME",
    "DISCOVERY_BIND",
    "REGISTRY_TABLE",
    "HEALTH_TABLE",
    "HEALTH_PROBE_TIMEOUT_MS",
    "HEALTH_PROBE_CONCURRENCY",
    "HEALTH_MONITOR_SCHEDULE",
    "RUST_LOG_FORMAT",
    "RUST_LOG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
];

// ---------------------------------------------------------------------------
// Scratch directory and reaper
// ---------------------------------------------------------------------------

struct Reaper {
    pgid: u32,
    scratch: PathBuf,
}

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let scratch = std::env::temp_dir().join(format!("svcreg-itest-{}", std::process::id()));
        fs::create_dir_all(&scratch).expect("create scratch dir");
        // $0 = pid of the test process, $1 = scratch dir.
        let script = r#"
trap '' TERM INT HUP
exec </dev/null >/dev/null 2>&1
while kill -0 "$0" 2>/dev/null; do sleep 0.2; done
kill -TERM 0
sleep 1
rm -rf "$1"
kill -KILL 0
"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(std::process::id().to_string())
            .arg(&scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn reaper");
        let pgid = child.id();
        // The reaper runs for the whole life of the test binary; never waited on.
        std::mem::forget(child);
        Reaper { pgid, scratch }
    })
}

/// A fresh directory under the per-binary scratch directory (removed by the reaper).
pub fn scratch_dir(prefix: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = reaper()
        .scratch
        .join(format!("{prefix}-{n}-{}", short_id()));
    fs::create_dir_all(&dir).expect("create scratch subdir");
    dir
}

fn spawn_in_group(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.process_group(reaper().pgid as i32).spawn()
}

pub fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// Table name: alphanumeric, starts with a letter.
pub fn unique_table(prefix: &str) -> String {
    format!("{prefix}{}", short_id())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------
// Azurite
// ---------------------------------------------------------------------------

pub struct Azurite {
    pub port: u16,
    pub location: PathBuf,
    /// Beyond the usual ones (`private_with_args`), kept for `restart`.
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn azurite_bin() -> PathBuf {
    let bin = manifest_dir().join("node_modules/.bin/azurite-table");
    assert!(
        bin.exists(),
        "{} missing: run `npm ci` in {}",
        bin.display(),
        manifest_dir().display()
    );
    bin
}

fn spawn_azurite(port: u16, location: &Path, extra_args: &[String]) -> Child {
    let log = fs::File::create(location.join(format!("azurite-{port}-{}.log", short_id())))
        .expect("azurite log file");
    let mut cmd = Command::new(azurite_bin());
    cmd.args([
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        &port.to_string(),
        "--location",
    ])
    .arg(location)
    .args([
        "--silent",
        "--skipApiVersionCheck",
        "--disableProductStyleUrl",
        "--disableTelemetry",
    ])
    .args(extra_args)
    .current_dir(manifest_dir())
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log);
    let mut child = spawn_in_group(&mut cmd).expect("spawn azurite-table");
    if !wait_for_port(port, Duration::from_secs(30)) {
        let _ = child.kill();
        panic!("azurite-table did not listen on 127.0.0.1:{port} within 30 s");
    }
    child
}

impl Azurite {
    /// The instance shared by every test of this binary (started lazily, once).
    pub fn shared() -> &'static Azurite {
        static SHARED: OnceLock<Azurite> = OnceLock::new();
        SHARED.get_or_init(|| {
            // Started from a plain thread so no async runtime is blocked or owns it.
            thread::spawn(|| Azurite::start("azurite-shared", Vec::new()))
                .join()
                .expect("start shared azurite")
        })
    }

    /// A private instance (killed on Drop), for tests that stop and restart storage.
    pub fn private() -> Azurite {
        Azurite::start("azurite-private", Vec::new())
    }

    /// A private instance started with more arguments (`--oauth basic`, `--cert`, …); the
    /// connection string and `tables()` assume plain HTTP, so such a caller brings its own client.
    pub fn private_with_args(args: Vec<String>) -> Azurite {
        Azurite::start("azurite-private", args)
    }

    fn start(scratch_name: &str, args: Vec<String>) -> Azurite {
        let location = scratch_dir(scratch_name);
        let port = free_port();
        let child = spawn_azurite(port, &location, &args);
        Azurite {
            port,
            location,
            args,
            child: Mutex::new(Some(child)),
        }
    }

    pub fn connection_string(&self) -> String {
        connection_string_for_port(self.port)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    pub fn tables(&self) -> Tables {
        Tables::new(self.port)
    }

    /// Stop the server: SIGINT (Azurite's graceful close, which saves its database;
    /// SIGTERM would lose the last 5 s of writes), SIGKILL after 5 s.
    pub fn stop(&self) {
        let mut guard = self.child.lock().unwrap();
        if let Some(mut child) = guard.take() {
            send_signal(child.id(), "INT");
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        // Wait until the port is really closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && TcpStream::connect_timeout(
                &format!("127.0.0.1:{}", self.port).parse().unwrap(),
                Duration::from_millis(100),
            )
            .is_ok()
        {
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start again on the same port and location (data survives).
    pub fn restart(&self) {
        let mut guard = self.child.lock().unwrap();
        assert!(guard.is_none(), "restart() while still running");
        *guard = Some(spawn_azurite(self.port, &self.location, &self.args));
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn connection_string_for_port(port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )
}

// ---------------------------------------------------------------------------
// Handler process
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// FUNCTIONS_CUSTOMHANDLER_PORT set, as the Functions host starts it.
    CustomHandler,
    /// No FUNCTIONS_CUSTOMHANDLER_PORT; DISCOVERY_BIND=127.0.0.1:<port>.
    Standalone,
}

pub struct HandlerConfig {
    pub mode: Mode,
    /// Storage variables etc.; applied after scrubbing inherited ones.
    pub env: Vec<(String, String)>,
    pub registry_table: String,
    pub health_table: String,
    /// If false, no table-name variables are set.
    pub set_tables: bool,
}

impl HandlerConfig {
    /// Custom-handler mode against the shared Azurite with fresh table names.
    pub fn new(mode: Mode) -> Self {
        let az = Azurite::shared();
        Self::with_storage(mode, &az.connection_string())
    }

    pub fn with_storage(mode: Mode, connection_string: &str) -> Self {
        HandlerConfig {
            mode,
            env: vec![(
                "STORAGE_CONNECTION_STRING".to_string(),
                connection_string.to_string(),
            )],
            registry_table: unique_table("reg"),
            health_table: unique_table("hlt"),
            set_tables: true,
        }
    }

    /// No storage variables at all.
    pub fn bare(mode: Mode) -> Self {
        HandlerConfig {
            mode,
            env: vec![],
            registry_table: unique_table("reg"),
            health_table: unique_table("hlt"),
            set_tables: true,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn without_env(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self
    }
}

pub struct Handler {
    pub port: u16,
    pub base: String,
    pub registry_table: String,
    pub health_table: String,
    pub mode: Mode,
    child: Option<Child>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    pub client: reqwest::Client,
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Spawn the binary with the given configuration; returns the child and the log paths.
/// Does not wait for readiness.
pub fn spawn_handler_process(cfg: &HandlerConfig, port: u16) -> (Child, PathBuf, PathBuf) {
    let dir = scratch_dir("handler");
    let stdout_path = dir.join("stdout.log");
    let stderr_path = dir.join("stderr.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
    cmd.current_dir(manifest_dir());
    for k in SCRUBBED_ENV {
        cmd.env_remove(k);
    }
    match cfg.mode {
        Mode::CustomHandler => {
            let worker_id = uuid::Uuid::new_v4().to_string();
            cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
                .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
                .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &worker_id)
                .env("FUNCTIONS_HTTPWORKER_ID", &worker_id)
                .env("FUNCTIONS_APP_ROOT_PATH", manifest_dir())
                .env("FUNCTIONS_WORKER_RUNTIME", "custom");
        }
        Mode::Standalone => {
            cmd.env("DISCOVERY_BIND", format!("127.0.0.1:{port}"));
        }
    }
    if cfg.set_tables {
        cmd.env("REGISTRY_TABLE", &cfg.registry_table)
            .env("HEALTH_TABLE", &cfg.health_table);
    }
    // The probe targets tests start live on 127.0.0.1, which the SSRF guard refuses by default.
    cmd.env("HEALTH_ALLOW_LOOPBACK", "true");
    for (k, v) in &cfg.env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).unwrap())
        .stderr(fs::File::create(&stderr_path).unwrap());
    let child = spawn_in_group(&mut cmd).expect("spawn handler binary");
    (child, stdout_path, stderr_path)
}

/// Run the binary to completion (or until `timeout`); returns (status, elapsed, stdout+stderr).
pub fn run_handler_to_exit(
    cfg: &HandlerConfig,
    timeout: Duration,
) -> (Option<ExitStatus>, Duration, String, String) {
    let port = free_port();
    let started = Instant::now();
    let (mut child, out, err) = spawn_handler_process(cfg, port);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    (
        status,
        elapsed,
        fs::read_to_string(out).unwrap_or_default(),
        fs::read_to_string(err).unwrap_or_default(),
    )
}

impl Handler {
    /// Custom-handler mode, shared Azurite, fresh tables, plus extra env.
    pub async fn start_with(extra: &[(&str, &str)]) -> Handler {
        let mut cfg = HandlerConfig::new(Mode::CustomHandler);
        for (k, v) in extra {
            cfg = cfg.env(k, v);
        }
        Handler::spawn(cfg).await
    }

    pub async fn start() -> Handler {
        Handler::start_with(&[]).await
    }

    /// Spawn and wait until `GET /` gets any HTTP response (25 ms polling, 30 s budget),
    /// as the Functions host does. Retries with another port if the port was taken.
    pub async fn spawn(cfg: HandlerConfig) -> Handler {
        let mut last_logs = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let (child, stdout_path, stderr_path) = spawn_handler_process(&cfg, port);
            let mut handler = Handler {
                port,
                base: format!("http://127.0.0.1:{port}"),
                registry_table: cfg.registry_table.clone(),
                health_table: cfg.health_table.clone(),
                mode: cfg.mode,
                child: Some(child),
                stdout_path,
                stderr_path,
                client: http_client(),
            };
            match handler.wait_ready(Duration::from_secs(30)).await {
                Ok(()) => return handler,
                Err(exited) => {
                    last_logs = handler.logs();
                    if exited && last_logs.to_lowercase().contains("in use") {
                        continue; // port race with another test; try again
                    }
                    panic!("handler did not become ready (exited: {exited}); logs:\n{last_logs}");
                }
            }
        }
        panic!("handler could not bind a port after 3 attempts; logs:\n{last_logs}");
    }

    /// Err(true) if the process exited, Err(false) on timeout.
    async fn wait_ready(&mut self, budget: Duration) -> Result<(), bool> {
        let deadline = Instant::now() + budget;
        let ping = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        loop {
            if ping.get(format!("{}/", self.base)).send().await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return Err(true);
                }
            }
            if Instant::now() > deadline {
                return Err(false);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// None while running.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// stdout followed by stderr.
    pub fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    pub fn tables(&self) -> Tables {
        Azurite::shared().tables()
    }

    // --- forwarded HTTP, as the host forwards it ---

    fn forwarded(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path_and_query))
            .header("x-ms-invocation-id", uuid::Uuid::new_v4().to_string())
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
    }

    /// POST /api/ServiceRegistrar with a raw body and Content-Type application/json.
    pub async fn register_raw(&self, body: impl Into<reqwest::Body>) -> Resp {
        let resp = self
            .forwarded(reqwest::Method::POST, "/api/ServiceRegistrar")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /api/ServiceRegistrar");
        Resp::read(resp).await
    }

    pub async fn register(&self, body: &Value) -> Resp {
        self.register_raw(body.to_string()).await
    }

    /// Register and assert success.
    pub async fn register_ok(&self, body: &Value) {
        let r = self.register(body).await;
        assert_eq!(
            r.status, 200,
            "registration of {body} failed: {} {}",
            r.status, r.text
        );
    }

    /// GET /api/ServiceDiscovery with a raw query string ("" or "serviceType=api&...").
    pub async fn discover(&self, query: &str) -> Resp {
        let pq = if query.is_empty() {
            "/api/ServiceDiscovery".to_string()
        } else {
            format!("/api/ServiceDiscovery?{query}")
        };
        let resp = self
            .forwarded(reqwest::Method::GET, &pq)
            .send()
            .await
            .expect("GET /api/ServiceDiscovery");
        Resp::read(resp).await
    }

    /// Discovery that must succeed; returns the parsed body.
    pub async fn discover_ok(&self, query: &str) -> Value {
        let r = self.discover(query).await;
        assert_eq!(
            r.status, 200,
            "discovery ?{query} failed: {} {}",
            r.status, r.text
        );
        r.json()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<String>,
    ) -> Resp {
        let mut rb = self.forwarded(method, path_and_query);
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/json").body(b);
        }
        Resp::read(rb.send().await.expect("request")).await
    }

    // --- envelopes, as the host sends them with forwarding off ---

    pub async fn invoke(&self, function: &str, envelope: &Value) -> Resp {
        self.invoke_raw(function, envelope.to_string()).await
    }

    pub async fn invoke_raw(&self, function: &str, body: String) -> Resp {
        let resp = self
            .client
            .post(self.url(&format!("/{function}")))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /{function}: {e}"));
        Resp::read(resp).await
    }

    /// Run one HealthMonitor sweep via the timer envelope (object form).
    pub async fn sweep(&self) -> Resp {
        self.invoke("HealthMonitor", &timer_envelope(timer_info_object()))
            .await
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A response read fully.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("read body");
        Resp {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {}; body: {:?}",
                self.status, self.text
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_string())
    }

    pub fn assert_json_content_type(&self) {
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "Content-Type should be application/json, got {ct:?} (status {}, body {})",
            self.status,
            self.text
        );
    }

    /// Assert an error response: status, JSON content type, non-empty `error`, and `field`.
    pub fn assert_error(&self, status: u16, field: Option<&str>) -> Value {
        assert_eq!(
            self.status, status,
            "expected status {status}, got {} with body {}",
            self.status, self.text
        );
        self.assert_json_content_type();
        let v = self.json();
        assert_error_body(&v, field);
        v
    }

    /// Parse an envelope reply: HTTP 200, JSON, Outputs.res present. Returns (statusCode, body text, headers).
    pub fn envelope_res(&self) -> EnvRes {
        assert_eq!(
            self.status, 200,
            "envelope reply must be HTTP 200, got {} body {}",
            self.status, self.text
        );
        self.assert_json_content_type();
        let v = self.json();
        check_envelope_shape(&v);
        let res = v["Outputs"]["res"].clone();
        assert!(res.is_object(), "Outputs.res must be an object: {v}");
        let status = res["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("Outputs.res.statusCode must be a number: {v}"))
            as u16;
        let body = res["body"]
            .as_str()
            .unwrap_or_else(|| panic!("Outputs.res.body must be a string: {v}"))
            .to_string();
        let headers = res["headers"].clone();
        let hmap = headers
            .as_object()
            .unwrap_or_else(|| panic!("Outputs.res.headers must be an object: {v}"));
        for (k, val) in hmap {
            assert!(
                val.is_string(),
                "Outputs.res.headers.{k} must be a string, got {val}"
            );
        }
        EnvRes {
            status,
            body,
            headers,
            logs: logs_of(&v),
            raw: v,
        }
    }
}

pub struct EnvRes {
    pub status: u16,
    pub body: String,
    pub headers: Value,
    pub logs: Vec<String>,
    pub raw: Value,
}

impl EnvRes {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("Outputs.res.body is not JSON ({e}): {:?}", self.body))
    }

    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.as_object().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        })
    }
}

/// The fixed envelope shape: Outputs object, Logs array of strings (or absent/null), ReturnValue null.
pub fn check_envelope_shape(v: &Value) {
    assert!(v.is_object(), "envelope reply must be a JSON object: {v}");
    assert!(
        v["Outputs"].is_object(),
        "envelope reply must carry an Outputs object: {v}"
    );
    match &v["Logs"] {
        Value::Null => {}
        Value::Array(a) => {
            for l in a {
                assert!(l.is_string(), "Logs entries must be strings: {v}");
            }
        }
        other => panic!("Logs must be an array of strings, got {other}"),
    }
    assert!(
        v.get("ReturnValue").is_some_and(Value::is_null),
        "ReturnValue must be present and null: {v}"
    );
}

pub fn logs_of(v: &Value) -> Vec<String> {
    v["Logs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn assert_error_body(v: &Value, field: Option<&str>) {
    let err = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error body must have a string `error`: {v}"));
    assert!(!err.trim().is_empty(), "`error` must not be empty: {v}");
    if let Some(f) = field {
        assert_eq!(
            v["field"].as_str(),
            Some(f),
            "error body should name field {f:?}: {v}"
        );
    }
}

// ---------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------

/// `2026-11-25T05:00:00.1234567Z`, the host's 7-digit fraction.
pub fn utc_now_7() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}.{:07}Z",
        now.format("%Y-%m-%dT%H:%M:%S"),
        now.timestamp_subsec_nanos() / 100
    )
}

pub fn sys_metadata(method_name: &str) -> Value {
    json!({
        "MethodName": method_name,
        "UtcNow": utc_now_7(),
        "RandGuid": uuid::Uuid::new_v4().to_string(),
    })
}

/// An HTTP trigger request object (`Data.req`).
pub struct ReqEnvelope {
    pub function: String,
    pub method: String,
    pub url: String,
    pub query: Value,
    pub headers: Value,
    pub params: Value,
    pub body: Option<String>,
    pub extra_metadata: Vec<(String, Value)>,
}

impl ReqEnvelope {
    pub fn new(function: &str, method: &str) -> Self {
        ReqEnvelope {
            function: function.to_string(),
            method: method.to_string(),
            url: format!("https://myapp.azurewebsites.net/api/{function}"),
            query: json!({}),
            headers: json!({
                "Accept": ["application/json"],
                "Host": ["myapp.azurewebsites.net"],
                "User-Agent": ["curl/8.5.0"],
            }),
            params: json!({}),
            body: None,
            extra_metadata: vec![],
        }
    }

    /// Query as an object; also updates Url with the raw query string.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let mut obj = serde_json::Map::new();
        let mut url = url::Url::parse(&self.url).unwrap();
        {
            let mut qp = url.query_pairs_mut();
            for (k, v) in pairs {
                qp.append_pair(k, v);
                obj.insert((*k).to_string(), Value::String((*v).to_string()));
            }
        }
        if !pairs.is_empty() {
            self.url = url.to_string();
        }
        self.query = Value::Object(obj);
        self
    }

    /// Turn `Query` into its JSON-encoded string form (`"Query": "{...}"`).
    pub fn query_as_string(mut self) -> Self {
        self.query = Value::String(self.query.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers[name] = json!([value]);
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self.headers["Content-Type"] = json!(["application/json"]);
        self.headers["Content-Length"] = json!([body.len().to_string()]);
        self
    }

    pub fn metadata(mut self, key: &str, value: Value) -> Self {
        self.extra_metadata.push((key.to_string(), value));
        self
    }

    pub fn build(&self) -> Value {
        let mut req = json!({
            "Url": self.url,
            "Method": self.method,
            "Query": self.query,
            "Headers": self.headers,
            "Params": self.params,
            "Identities": [{"AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true, "Claims": [], "Name": null}],
        });
        if let Some(b) = &self.body {
            req["Body"] = Value::String(b.clone());
        }
        let mut metadata = serde_json::Map::new();
        for (k, v) in &self.extra_metadata {
            metadata.insert(k.clone(), v.clone());
        }
        metadata.insert("sys".to_string(), sys_metadata(&self.function));
        json!({ "Data": { "req": req }, "Metadata": Value::Object(metadata) })
    }
}

pub fn timer_info_object() -> Value {
    json!({
        "Schedule": { "AdjustForDST": true },
        "ScheduleStatus": {
            "Last": "2026-11-25T04:55:00+00:00",
            "Next": "2026-11-25T05:00:00+00:00",
            "LastUpdated": "2026-11-25T04:55:00.0123456+00:00"
        },
        "IsPastDue": false
    })
}

pub fn timer_envelope(my_timer: Value) -> Value {
    json!({
        "Data": { "myTimer": my_timer },
        "Metadata": { "sys": sys_metadata("HealthMonitor") }
    })
}

/// The sweep's report, read back by name from the summary line in an invocation's Logs.
pub fn sweep_report(logs: &[String]) -> Option<SweepReport> {
    logs.iter().find_map(|line| SweepReport::from_summary(line))
}

/// (probed, healthy, unhealthy, duration_ms) of the sweep's report.
pub fn parse_sweep_summary(logs: &[String]) -> Option<(u64, u64, u64, u64)> {
    sweep_report(logs).map(|r| (r.probed, r.healthy, r.unhealthy, r.duration_ms))
}

// ---------------------------------------------------------------------------
// Direct table access
// ---------------------------------------------------------------------------

#[derive(Clone)]
pub struct Tables {
    service: TableServiceClient,
}

fn is_not_found(e: &azure_core::Error) -> bool {
    matches!(
        e.kind(),
        azure_core::error::ErrorKind::HttpResponse { status, .. }
            if *status == azure_core::StatusCode::NotFound
    )
}

impl Tables {
    pub fn new(port: u16) -> Tables {
        let service = azure_data_tables::clients::TableServiceClientBuilder::with_location(
            CloudLocation::Custom {
                account: ACCOUNT.into(),
                uri: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            },
            StorageCredentials::access_key(ACCOUNT, ACCOUNT_KEY),
        )
        .build();
        Tables { service }
    }

    pub async fn create_table(&self, table: &str) {
        match self.service.table_client(table).create().await {
            Ok(_) => {}
            Err(e) => match e.kind() {
                azure_core::error::ErrorKind::HttpResponse { status, .. }
                    if *status == azure_core::StatusCode::Conflict => {}
                _ => panic!("create table {table}: {e}"),
            },
        }
    }

    pub async fn table_exists(&self, table: &str) -> bool {
        let mut stream = self
            .service
            .table_client(table)
            .query()
            .top(Top::new(1))
            .into_stream::<Value>();
        match stream.next().await {
            None => true,
            Some(Ok(_)) => true,
            Some(Err(e)) if is_not_found(&e) => false,
            Some(Err(e)) => panic!("query {table}: {e}"),
        }
    }

    /// All rows (every page) as JSON, with odata annotations. Missing table → empty.
    pub async fn rows(&self, table: &str) -> Vec<Value> {
        self.query(table, None).await
    }

    pub async fn query(&self, table: &str, filter: Option<&str>) -> Vec<Value> {
        let mut q = self.service.table_client(table).query();
        if let Some(f) = filter {
            q = q.filter(Filter::new(f.to_string()));
        }
        let mut stream = q.into_stream::<Value>();
        let mut out = vec![];
        while let Some(page) = stream.next().await {
            match page {
                Ok(p) => out.extend(p.entities),
                Err(e) if is_not_found(&e) => return vec![],
                Err(e) => panic!("query {table}: {e}"),
            }
        }
        out
    }

    pub async fn row(&self, table: &str, pk: &str, rk: &str) -> Option<Value> {
        let f = format!(
            "PartitionKey eq '{}' and RowKey eq '{}'",
            pk.replace('\'', "''"),
            rk.replace('\'', "''")
        );
        let mut rows = self.query(table, Some(&f)).await;
        assert!(rows.len() <= 1, "more than one row for ({pk},{rk})");
        rows.pop()
    }

    /// Insert-or-replace one entity (a JSON object with PartitionKey and RowKey).
    pub async fn upsert(&self, table: &str, entity: &Value) {
        let pk = entity["PartitionKey"].as_str().expect("PartitionKey");
        let rk = entity["RowKey"].as_str().expect("RowKey");
        self.service
            .table_client(table)
            .partition_key_client(pk)
            .entity_client(rk)
            .insert_or_replace(entity)
            .expect("build upsert")
            .await
            .unwrap_or_else(|e| panic!("upsert into {table}: {e}"));
    }

    /// Insert-or-replace many entities with entity-group transactions of up to 100
    /// (grouped by PartitionKey). Panics if any operation inside a batch failed.
    pub async fn upsert_batch(&self, table: &str, entities: &[Value]) {
        use std::collections::BTreeMap;
        let mut by_pk: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for e in entities {
            by_pk
                .entry(
                    e["PartitionKey"]
                        .as_str()
                        .expect("PartitionKey")
                        .to_string(),
                )
                .or_default()
                .push(e);
        }
        let table_client = self.service.table_client(table);
        let mut futs = vec![];
        for (pk, rows) in &by_pk {
            for chunk in rows.chunks(100) {
                let pkc = table_client.partition_key_client(pk.clone());
                let mut tx = pkc.transaction();
                for e in chunk {
                    let rk = e["RowKey"].as_str().expect("RowKey").to_string();
                    tx = tx.insert_or_replace(rk, *e).expect("build batch op");
                }
                futs.push(async move {
                    let resp = tx
                        .await
                        .unwrap_or_else(|e| panic!("batch upsert into {table}: {e}"));
                    assert_eq!(
                        resp.operation_responses.len(),
                        chunk.len(),
                        "batch returned a different number of operation responses"
                    );
                    for op in &resp.operation_responses {
                        let code = u16::from(op.status_code);
                        assert!(
                            (200..300).contains(&code),
                            "an operation of a batch into {table} failed with {code}"
                        );
                    }
                });
            }
        }
        let mut stream = futures::stream::iter(futs).buffer_unordered(8);
        while stream.next().await.is_some() {}
    }
}

/// Remove system and OData properties from a raw row.
pub fn user_properties(row: &Value) -> serde_json::Map<String, Value> {
    row.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("odata.")
                && !matches!(
                    k.as_str(),
                    "PartitionKey" | "RowKey" | "Timestamp" | "Timestamp@odata.type"
                )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Assert that every property of a row is a plain string (no `@odata.type` annotation).
pub fn assert_all_plain_strings(row: &Value) {
    for (k, v) in user_properties(row) {
        assert!(
            !k.contains("@odata.type"),
            "property annotation {k}={v} present: every property must be Edm.String; row {row}"
        );
        assert!(
            v.is_string(),
            "property {k} must be a string, got {v}; row {row}"
        );
    }
}

pub fn parse_iso(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not an ISO-8601/RFC 3339 timestamp: {e}"))
        .with_timezone(&chrono::Utc)
}

/// ISO-8601 UTC like `2026-11-25T06:00:00.123Z`: RFC 3339 with a `Z` suffix.
pub fn assert_iso_utc(s: &str) {
    parse_iso(s);
    assert!(
        s.ends_with('Z'),
        "{s:?} should be a UTC timestamp ending in Z"
    );
}

// ---------------------------------------------------------------------------
// Probe targets
// ---------------------------------------------------------------------------

/// A local HTTP server answering every request with a fixed status (and optional headers).
pub struct HttpTarget {
    pub url: String,
    pub port: u16,
    pub hits: Arc<AtomicU64>,
}

fn read_request_head(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

impl HttpTarget {
    pub fn status(status: u16) -> HttpTarget {
        HttpTarget::with_headers(status, vec![])
    }

    pub fn with_headers(status: u16, headers: Vec<(String, String)>) -> HttpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicU64::new(0));
        let hits2 = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let hits = hits2.clone();
                let headers = headers.clone();
                thread::spawn(move || {
                    read_request_head(&mut stream);
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = format!("status {status}");
                    let mut resp = format!(
                        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reason(status),
                        body.len()
                    );
                    for (k, v) in &headers {
                        resp.push_str(&format!("{k}: {v}\r\n"));
                    }
                    resp.push_str("\r\n");
                    resp.push_str(&body);
                    let _ = stream.write_all(resp.as_bytes());
                    let _ = stream.flush();
                });
            }
        });
        HttpTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            port,
            hits,
        }
    }

    /// 302 to `location`.
    pub fn redirect(location: &str) -> HttpTarget {
        HttpTarget::with_headers(302, vec![("Location".into(), location.into())])
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Accepts connections (and reads the request) but never answers.
pub struct SilentTarget {
    pub url: String,
    pub port: u16,
}

impl SilentTarget {
    pub fn start() -> SilentTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let mut held = vec![];
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        SilentTarget {
            url: format!("http://127.0.0.1:{port}/health"),
            port,
        }
    }
}

/// A plain TCP listener that accepts connections and closes them (no protocol).
pub struct TcpTarget {
    pub url: String,
    pub port: u16,
    pub accepted: Arc<AtomicU64>,
}

impl TcpTarget {
    pub fn start() -> TcpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        TcpTarget {
            url: format!("tcp://127.0.0.1:{port}"),
            port,
            accepted,
        }
    }
}

/// A port on 127.0.0.1 with nothing listening.
pub fn closed_port() -> u16 {
    free_port()
}

/// Poll `f` every `every` until it returns Some or `timeout` passes.
pub async fn poll_until<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// The recipe's registration body.
pub fn recipe_body() -> Value {
    json!({
        "serviceName": "test-api",
        "endpoint": "https://test-api.example.com",
        "serviceType": "api",
        "version": "1.0.0",
        "tags": ["production", "rest-api"],
        "metadata": {"region": "eastus", "port": 443}
    })
}
