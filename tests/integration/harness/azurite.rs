//! Azurite, the storage emulator: one shared instance per test binary, or a private one for a
//! test that stops and restarts storage. Installed from the repository's lockfile (`npm ci`).
//!
//! Each instance is two processes on one data location: Azurite's table service and its queue
//! service (`azurite-queue`), so the connection string names both endpoints as a real account's
//! does, and a test can stop the queue service alone (`stop_queue`).

use super::{
    clean_command, free_port, manifest_dir, scratch_dir, send_signal, short_id, spawn_in_group,
    wait_for_port, Tables, ACCOUNT, ACCOUNT_KEY,
};
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub struct Azurite {
    /// The table service's port.
    pub port: u16,
    /// The queue service's port.
    pub queue_port: u16,
    pub location: PathBuf,
    /// Beyond the usual ones (`private_with_args`), kept for `restart`.
    args: Vec<String>,
    child: Mutex<Option<Child>>,
    queue_child: Mutex<Option<Child>>,
}

#[derive(Clone, Copy)]
enum Service {
    Table,
    Queue,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Table => "table",
            Service::Queue => "queue",
        }
    }
}

fn azurite_bin(service: Service) -> PathBuf {
    let bin = manifest_dir().join(format!("node_modules/.bin/azurite-{}", service.name()));
    assert!(
        bin.exists(),
        "{} missing: run `npm ci` in {}",
        bin.display(),
        manifest_dir().display()
    );
    bin
}

fn spawn_azurite(port: u16, location: &Path, extra_args: &[String]) -> Child {
    spawn_service(Service::Table, port, location, extra_args)
}

fn spawn_service(service: Service, port: u16, location: &Path, extra_args: &[String]) -> Child {
    let name = service.name();
    let log = fs::File::create(location.join(format!("azurite-{name}-{port}-{}.log", short_id())))
        .expect("azurite log file");
    let mut cmd = clean_command(azurite_bin(service));
    cmd.args([
        format!("--{name}Host"),
        "127.0.0.1".to_owned(),
        format!("--{name}Port"),
        port.to_string(),
        "--location".to_owned(),
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
    let mut child =
        spawn_in_group(&mut cmd).unwrap_or_else(|e| panic!("spawn azurite-{name}: {e}"));
    if !wait_for_port(port, Duration::from_secs(30)) {
        let _ = child.kill();
        panic!("azurite-{name} did not listen on 127.0.0.1:{port} within 30 s");
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
        let mut queue_port = free_port();
        while queue_port == port {
            queue_port = free_port();
        }
        // The queue service has no OAuth or TLS arguments of the tests' choosing: plain HTTP.
        let queue_child = spawn_service(Service::Queue, queue_port, &location, &[]);
        Azurite {
            port,
            queue_port,
            location,
            args,
            child: Mutex::new(Some(child)),
            queue_child: Mutex::new(Some(queue_child)),
        }
    }

    /// Both endpoints, as a real account's connection string names them.
    pub fn connection_string(&self) -> String {
        format!(
            "{}QueueEndpoint={};",
            connection_string_for_port(self.port),
            self.queue_endpoint()
        )
    }

    pub fn queue_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.queue_port)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    pub fn tables(&self) -> Tables {
        Tables::new(self.port)
    }

    /// Stop the table service (`stop_child`); the queue service keeps running.
    pub fn stop(&self) {
        stop_child(&self.child, self.port);
    }

    /// Stop the queue service alone (the tables keep answering).
    pub fn stop_queue(&self) {
        stop_child(&self.queue_child, self.queue_port);
    }

    /// Start the queue service again on the same port and location (messages survive).
    pub fn restart_queue(&self) {
        let mut guard = self.queue_child.lock().unwrap();
        assert!(guard.is_none(), "restart_queue() while still running");
        *guard = Some(spawn_service(
            Service::Queue,
            self.queue_port,
            &self.location,
            &[],
        ));
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
        for child in [&self.child, &self.queue_child] {
            if let Some(mut child) = child.lock().unwrap().take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// SIGINT (Azurite's graceful close, which saves its database; SIGTERM would lose the last 5 s of
/// writes), SIGKILL after 5 s; then wait until the port is really closed.
fn stop_child(child: &Mutex<Option<Child>>, port: u16) {
    let mut guard = child.lock().unwrap();
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
            &format!("127.0.0.1:{}", port).parse().unwrap(),
            Duration::from_millis(100),
        )
        .is_ok()
    {
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn connection_string_for_port(port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )
}
