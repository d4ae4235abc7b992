//! The `handler` process: its configuration (the whole environment it gets), start-up and
//! readiness as the Functions host waits for it, restart, exit and logs. What a test sends it is in
//! `requests`.

use super::{
    clean_command, free_port, manifest_dir, poll_until, scratch_dir, spawn_in_group, unique_table,
    Azurite, Tables,
};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// FUNCTIONS_CUSTOMHANDLER_PORT set, as the Functions host starts it.
    CustomHandler,
    /// No FUNCTIONS_CUSTOMHANDLER_PORT; DISCOVERY_BIND=127.0.0.1:<port>.
    Standalone,
}

#[derive(Clone)]
pub struct HandlerConfig {
    pub mode: Mode,
    /// Storage variables etc.: with the mode's and the table names, the handler's whole
    /// environment (nothing is inherited from the test runner but `child_env`'s basics).
    pub env: Vec<(String, String)>,
    pub registry_table: String,
    pub health_table: String,
    /// The handler's own rows: the sweep lease and the last sweep's summary.
    pub state_table: String,
    /// If false, no table-name variables are set.
    pub set_tables: bool,
    /// Extra `/etc/hosts` lines (name, address) the handler alone sees: it then runs in a private
    /// mount namespace (`unshare --mount`) with its own hosts file bound over `/etc/hosts`, so a
    /// test can give names to loopback addresses without touching the machine's resolver.
    pub hosts: Vec<(String, String)>,
    /// A soft open-file limit to start the handler with (`ulimit -S -n`), below the hard one.
    pub open_files_soft: Option<u64>,
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
            state_table: unique_table("st"),
            set_tables: true,
            hosts: vec![],
            open_files_soft: None,
        }
    }

    /// Custom-handler mode, shared Azurite, fresh tables, anonymous access chosen (see
    /// `Handler::start_consul_anonymous`).
    pub fn consul_anonymous() -> Self {
        HandlerConfig::new(Mode::CustomHandler).env("REGISTRY_ALLOW_ANONYMOUS", "true")
    }

    /// No storage variables at all.
    pub fn bare(mode: Mode) -> Self {
        HandlerConfig {
            mode,
            env: vec![],
            registry_table: unique_table("reg"),
            health_table: unique_table("hlt"),
            state_table: unique_table("st"),
            set_tables: true,
            hosts: vec![],
            open_files_soft: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a hosts-file line for the handler (see `hosts`).
    pub fn host(mut self, name: &str, address: &str) -> Self {
        self.hosts.push((name.to_string(), address.to_string()));
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
    pub state_table: String,
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
    // Only what this test configures reaches the handler (see `child_env`). A wrapper that sets
    // up its hosts file or open-file limit ends in `exec`, so the child's pid is the handler's.
    let handler = env!("CARGO_BIN_EXE_handler");
    let mut cmd = if let Some(soft) = cfg.open_files_soft {
        assert!(cfg.hosts.is_empty(), "one wrapper at a time");
        let mut cmd = clean_command("sh");
        cmd.arg("-c")
            .arg(format!(r#"ulimit -S -n {soft} && exec "$0""#))
            .arg(handler);
        cmd
    } else if cfg.hosts.is_empty() {
        clean_command(handler)
    } else {
        let hosts_path = dir.join("hosts");
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, address) in &cfg.hosts {
            text.push_str(&format!("{address} {name}\n"));
        }
        fs::write(&hosts_path, text).unwrap();
        let mut cmd = clean_command("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
            .arg(&hosts_path)
            .arg(handler);
        cmd
    };
    cmd.current_dir(manifest_dir());
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
            .env("HEALTH_TABLE", &cfg.health_table)
            .env("STATE_TABLE", &cfg.state_table);
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

/// Whether this machine lets a test give the handler its own hosts file (root, and mount
/// namespaces allowed). CI runs as root; a developer without that skips the tests that need it.
pub fn private_hosts_file_works() -> bool {
    clean_command("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind /etc/hosts /etc/hosts")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
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

    /// Custom-handler mode with anonymous access chosen (`REGISTRY_ALLOW_ANONYMOUS=true`): the
    /// Consul API has no function key in front of it, so under the host without authentication
    /// the handler serves `/v1/...` only then (docs/security.md).
    pub async fn start_consul_anonymous() -> Handler {
        Handler::spawn(HandlerConfig::consul_anonymous()).await
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
                state_table: cfg.state_table.clone(),
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

    /// Starts the handler again on the port it had (after `kill`), with `cfg` (the configuration
    /// it was started with, so the same tables): a registry restart as its clients see it.
    pub async fn start_again(&mut self, cfg: &HandlerConfig) {
        assert!(self.child.is_none(), "start_again() while still running");
        let (child, stdout_path, stderr_path) = spawn_handler_process(cfg, self.port);
        self.child = Some(child);
        self.stdout_path = stdout_path;
        self.stderr_path = stderr_path;
        if let Err(exited) = self.wait_ready(Duration::from_secs(30)).await {
            panic!(
                "handler did not come back on port {} (exited: {exited}); logs:\n{}",
                self.port,
                self.logs()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// The process's peak resident set so far (`VmHWM` in /proc/<pid>/status), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// SIGKILL and reap it now, so nothing it does can change what the test reads next (its log
    /// and whatever it wrote stay readable).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the log (stdout and stderr) holds `needle`; returns the whole log then. Lines
    /// are written as they are logged, so this is the moment a line about a request or a sweep
    /// is there to read, however slow the machine.
    pub async fn wait_for_log(&self, needle: &str, budget: Duration) -> String {
        let found = poll_until(budget, Duration::from_millis(20), || async {
            let logs = self.logs();
            logs.contains(needle).then_some(logs)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no {needle:?} in the log within {budget:?}:\n{}",
                self.logs()
            )
        })
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

    /// The health row the sweep wrote for `name` in the `default` service type; panics if none.
    pub async fn health_row(&self, name: &str) -> serde_json::Value {
        self.tables()
            .row(&self.health_table, "default", name)
            .await
            .unwrap_or_else(|| panic!("no health row for {name}"))
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
