//! Node.js for the tests that run the recipe's own functions: the `node` binary, the packages the
//! repository installs (`npm ci` from package-lock.json, as for Azurite), and one-shot scripts run
//! with a deadline.

use super::{clean_command, manifest_dir, spawn_in_group};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// `node` from the test runner's PATH (the same one `npm ci` and Azurite's launcher use).
pub fn node_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("no `node` on PATH: install Node.js (see the README)"))
}

/// The repository's installed copy of an npm package, which must be there (`npm ci`).
pub fn node_package(name: &str) -> PathBuf {
    let dir = manifest_dir().join("node_modules").join(name);
    assert!(
        dir.join("package.json").is_file(),
        "{} missing: run `npm ci` in {}",
        dir.display(),
        manifest_dir().display()
    );
    dir
}

/// Runs `node <script> <args>` from the repository root with only `env` (and `child_env`'s
/// basics) set, `stdin` as its input; kills it if it has not finished within `budget`.
pub async fn run_node(
    script: PathBuf,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: String,
    budget: Duration,
) -> Output {
    let mut cmd = clean_command(node_bin());
    cmd.arg(&script)
        .args(args)
        .current_dir(manifest_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = spawn_in_group(&mut cmd).expect("spawn node");
    // Plain threads feed stdin and drain stdout and stderr, so no pipe fills up and blocks node.
    let mut input = child.stdin.take().expect("node's stdin");
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = vec![];
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("node's stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("node's stderr")));
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + budget;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().expect("reap node")
    })
    .await
    .expect("join node");
    writer
        .join()
        .expect("stdin writer")
        .expect("write node's stdin");
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(
        output.status.success(),
        "node {} {args:?} failed ({:?}) or ran over {budget:?}:\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
