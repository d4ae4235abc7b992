//! Test harness: Azurite (shared and private), the `handler` process, host envelopes,
//! a direct table client and local probe targets.
//!
//! Here: the scratch directory and reaper, and the host's envelopes. Beside it, one file each:
//! `azurite` (the emulator), `handler` (the process and the requests the host sends it),
//! `responses` (answers as tests read them), `tables` (direct table access), `targets` (local
//! probe targets and a closed port), `wait` (polling and waiting for stored times), `child_env`
//! (the environment of every child), `cli` (the `registry` client binary) and `node` (Node.js for the recipe's own functions).
//!
//! Process hygiene: every child process (Azurite, handler) joins the process group of a
//! small `sh` "reaper" started once per test binary. The reaper polls the test process's
//! pid and, when it disappears (normal exit, panic, SIGKILL), terminates the whole group
//! and removes the scratch directory. Drop guards kill individual children earlier.
//! Every child starts from an empty environment plus what its test sets (`child_env`), so the
//! shell the suite runs in cannot change its results.

#![allow(dead_code)]

mod azurite;
mod child_env;
mod cli;
mod counting_proxy;
mod handler;
mod node;
mod responses;
mod tables;
mod targets;
mod wait;

pub use azurite::{connection_string_for_port, Azurite};
pub use child_env::clean_command;
pub use cli::{run_cli, CliProcess};
pub use counting_proxy::CountingProxy;
pub use handler::{
    http_client, private_hosts_file_works, run_handler_to_exit, Handler, HandlerConfig, Mode,
};
pub use node::{node_package, run_node};
pub use responses::{assert_error_body, check_envelope_shape, logs_of, Resp};
pub use tables::{assert_all_plain_strings, assert_iso_utc, parse_iso, user_properties, Tables};
pub use targets::{closed_port, query_of, HoldingTarget, HttpTarget, SilentTarget, TcpTarget};
pub use wait::{poll_until, to_millis, wait_until_past, wait_until_past_stored};

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
pub use service_registry::health::SweepReport;

pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const HOST_VERSION: &str = "4.1037.0.0";

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
        let child = clean_command("sh")
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

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
// The recipe's registration body
// ---------------------------------------------------------------------------

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
