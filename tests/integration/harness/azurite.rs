//! Azurite, the storage emulator: one shared instance per test binary, or a private one for a
//! test that stops and restarts storage. Installed from the repository's lockfile (`npm ci`).

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
    pub port: u16,
    pub location: PathBuf,
    /// Beyond the usual ones (`private_with_args`), kept for `restart`.
    args: Vec<String>,
    child: Mutex<Option<Child>>,
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
    let mut cmd = clean_command(azurite_bin());
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
