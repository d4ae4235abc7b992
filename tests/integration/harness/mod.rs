//! The one test harness every integration test uses: Azurite (shared and private), the `handler`
//! process and what a test sends it, direct table access, local probe targets, and imitations of
//! the Azure services the handler talks to. Test files import from here and nowhere else.
//!
//! Here: the scratch directory and reaper, ports and signals. Beside it, one file per concern:
//! - `handler`: the process (configuration, start-up, readiness, logs, restart);
//! - `requests`: what a test sends it, as `Handler` methods (`h.register(..)`, `h.heartbeat(..)`,
//!   `h.deregister(..)`, `h.sweep()`, `h.sweep_report()`, `h.call(..)` with a key, ...);
//! - `envelopes`: the host's invocation envelopes (HTTP trigger, timer);
//! - `host_routes` (the host's routing by host.json and function.json) and `host_front` (the host's
//!   front door on a port of its own: routing, function keys, forwarding or envelopes), for clients
//!   that call the function app's public URLs; `queue_listener` (the host's queue trigger: polls a
//!   queue of the tests' Azurite and posts each message's envelope, with host.json's settings);
//! - `responses`: answers as tests read them, the shared error body and the sweep's report
//!   (`sweep_report`, the one way to read a sweep);
//! - `wire`: the API's bodies as tests write them and check their shape (discovery's items);
//! - `api_keys`: the API keys the keyed tests run with and a handler configured with them;
//! - `azurite` (the emulator), `tables` (direct table access), `counting_proxy` (a proxy in front
//!   of Azurite that counts storage round trips);
//! - `targets` (local probe targets and a closed port), `check_targets` (targets whose answer a
//!   test changes: status, headers, body), `wait` (polling and waiting for stored
//!   times), `child_env` (the environment of every child);
//! - `cli` (the `registry` client binary), `node` (Node.js for the recipe's own functions);
//! - `consul_client`: real Consul client libraries (py-consul, node-consul) as child processes;
//! - `grpc_server`: a real gRPC health server (grpcio's) as a child process, and the self-signed
//!   certificates the TLS checks are tested with;
//! - `connector_env`: Service Connector's variables and the rows self-registration writes;
//! - imitations, each its own module, imported by name: `arm` (Azure Resource Manager, and
//!   `arm_setup`, a handler syncing from it), `entra`
//!   (a Microsoft Entra tenant), `identity` (a managed identity's token service and Azurite in
//!   OAuth mode).
//!
//! Process hygiene: every child process (Azurite, handler) joins the process group of a
//! small `sh` "reaper" started once per test binary. The reaper polls the test process's
//! pid and, when it disappears (normal exit, panic, SIGKILL), terminates the whole group
//! and removes the scratch directory. Drop guards kill individual children earlier.
//! Every child starts from an empty environment plus what its test sets (`child_env`), so the
//! shell the suite runs in cannot change its results.

#![allow(dead_code)]

mod api_keys;
mod azurite;
mod check_targets;
mod child_env;
mod cli;
mod connector_env;
mod consul_client;
mod counting_proxy;
mod envelopes;
mod grpc_server;
mod handler;
mod host_front;
mod host_routes;
mod library_store;
mod node;
mod queue_listener;
mod requests;
mod responses;
mod tables;
mod targets;
mod wait;
mod wire;

pub mod arm;
pub mod arm_setup;
pub mod entra;
pub mod event_grid;
pub mod identity;

pub use api_keys::{bearer, key_lines, sha256_hex, ADMIN, PREFIXED, READER, WRITER};
pub use azurite::{connection_string_for_port, Azurite};
pub use check_targets::TlsTarget;
pub use child_env::clean_command;
pub use cli::{run_cli, CliProcess};
pub use connector_env::{assert_no_secret, expected_row, rows_by_key, SELF_REGISTERED};
pub use consul_client::{index_of, ConsulClient, Library};
pub use counting_proxy::CountingProxy;
pub use envelopes::{
    queue_envelope, sys_metadata, timer_envelope, timer_info_object, QueueDelivery, ReqEnvelope,
};
pub use grpc_server::{roots_file, GrpcHealthServer, TestCertificate};
pub use handler::{
    http_client, private_hosts_file_works, run_handler_to_exit, Handler, HandlerConfig, Mode,
};
pub use host_front::{rebuilt_query, Delivery, HostFront, FRONT_END_LIMIT};
pub use host_routes::{queue_triggers, HostRoutes, Trigger};
pub use library_store::{library_store, storage_queue};
pub use node::{node_package, run_node};
pub use queue_listener::{QueueHost, QueueOptions};
pub use responses::{assert_error_body, check_envelope_shape, logs_of, sweep_report, Resp};
pub use tables::{assert_all_plain_strings, assert_iso_utc, parse_iso, user_properties, Tables};
pub use targets::{closed_port, query_of, HoldingTarget, HttpTarget, SilentTarget, TcpTarget};
pub use wait::{poll_until, to_millis, wait_until_past, wait_until_past_stored};
pub use wire::{
    assert_discovery_shape, assert_item_shape, int32_prop, iso, items, key_of, keys,
    local_endpoint, recipe_body, service,
};

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

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
