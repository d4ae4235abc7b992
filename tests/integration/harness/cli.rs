//! The `registry` client binary as a user runs it: once to completion (`run_cli`), or as a
//! long-running process (`watch`, `agent`) whose output a test polls and which it signals by pid.
//! Like every child, it starts from an empty environment plus what the test gives it.

use super::{clean_command, manifest_dir, poll_until, scratch_dir, spawn_in_group};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_registry"));
    cmd.current_dir(manifest_dir()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `registry <args>` to its end (60 s at most); returns (exit code, stdout, stderr).
pub async fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut process = CliProcess::spawn(args, env);
    let status = process
        .wait_exit(Duration::from_secs(60))
        .await
        .unwrap_or_else(|| {
            panic!(
                "registry {args:?} did not finish; stderr:\n{}",
                process.stderr()
            )
        });
    (
        status.code().unwrap_or(-1),
        process.stdout(),
        process.stderr(),
    )
}

pub struct CliProcess {
    child: Option<Child>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl CliProcess {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> CliProcess {
        let dir = scratch_dir("cli");
        let stdout_path = dir.join("stdout.log");
        let stderr_path = dir.join("stderr.log");
        let mut cmd = command(args, env);
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&stdout_path).unwrap())
            .stderr(fs::File::create(&stderr_path).unwrap());
        let child = spawn_in_group(&mut cmd).expect("spawn registry binary");
        CliProcess {
            child: Some(child),
            stdout_path,
            stderr_path,
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `INT`) to this process alone, by its pid.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = clean_command("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits until stderr holds `needle` `times` times; returns stderr then.
    pub async fn wait_for_stderr(&self, needle: &str, times: usize, budget: Duration) -> String {
        let found = poll_until(budget, Duration::from_millis(20), || async {
            let text = self.stderr();
            (text.matches(needle).count() >= times).then_some(text)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "{needle:?} not {times} times in the client's stderr within {budget:?}:\n{}",
                self.stderr()
            )
        })
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
