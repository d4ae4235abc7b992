//! Real Consul client libraries, driven from a test: py-consul (pinned in
//! scripts/consul-clients-requirements.txt) and node-consul (`consul` in package-lock.json), each
//! running `tests/consul/client.{py,js}` through `scripts/consul-client.sh` as a long-lived child
//! that takes one JSON command a line and answers with what the library returned. Both are
//! installed by scripts/prepare.sh before the suite enters its namespace; nothing here installs.

use super::{clean_command, manifest_dir, spawn_in_group};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// py-consul 1.8.0.
    PyConsul,
    /// node-consul (`consul` on npm) 2.0.1.
    NodeConsul,
}

impl Library {
    pub const ALL: [Library; 2] = [Library::PyConsul, Library::NodeConsul];

    fn runner(self) -> &'static str {
        match self {
            Library::PyConsul => "python",
            Library::NodeConsul => "node",
        }
    }
}

struct Pipes {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// One client process, pointed at one address (a handler's, or the host front door's).
pub struct ConsulClient {
    pub library: Library,
    pipes: Arc<Mutex<Pipes>>,
    child: Child,
}

/// Longest any one command may take: the longest blocking read the tests make, plus room.
const COMMAND_BUDGET: Duration = Duration::from_secs(60);

impl ConsulClient {
    /// `base`: `http://127.0.0.1:<port>` (the libraries add `/v1`); `token` the library's own
    /// token option (py-consul's `token=`, node-consul's `defaults.token`).
    pub fn start(library: Library, base: &str, token: Option<&str>) -> ConsulClient {
        let mut cmd = clean_command(manifest_dir().join("scripts/consul-client.sh"));
        cmd.arg(library.runner()).arg(base).arg(token.unwrap_or(""));
        // Where scripts/prepare.sh put the venv, when the runner moved it.
        for name in ["PYTHON_TOOLS_DIR", "XDG_CACHE_HOME"] {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd.current_dir(manifest_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_in_group(&mut cmd).expect("start scripts/consul-client.sh");
        let pipes = Pipes {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
        };
        ConsulClient {
            library,
            pipes: Arc::new(Mutex::new(pipes)),
            child,
        }
    }

    /// Runs one library call (`op`: self, register, pass, deregister, health, services, leader)
    /// and returns its answer: `{"result": …}` (with `"index"` for reads) or `{"error": …}`, and
    /// `"elapsed_ms"`. Commands run one at a time, in order.
    pub async fn call(&self, op: &str, args: Value) -> Value {
        let pipes = self.pipes.clone();
        let line = json!({"op": op, "args": args}).to_string();
        let library = self.library;
        let answer = tokio::task::spawn_blocking(move || {
            let mut pipes = pipes.lock().unwrap();
            writeln!(pipes.stdin, "{line}").expect("write to the client");
            pipes.stdin.flush().unwrap();
            let mut answer = String::new();
            pipes
                .stdout
                .read_line(&mut answer)
                .expect("read the client");
            answer
        });
        let answer = tokio::time::timeout(COMMAND_BUDGET, answer)
            .await
            .unwrap_or_else(|_| {
                panic!("{library:?}: {op} did not answer within {COMMAND_BUDGET:?}")
            })
            .unwrap();
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{library:?}: {op} answered {answer:?}: {e}"))
    }

    /// `call`, asserting the library raised nothing; returns the answer.
    pub async fn ok(&self, op: &str, args: Value) -> Value {
        let answer = self.call(op, args.clone()).await;
        assert!(
            answer.get("error").is_none(),
            "{:?}: {op} {args} failed: {answer}",
            self.library
        );
        answer
    }
}

impl Drop for ConsulClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `X-Consul-Index` a library handed back, as a number (py-consul returns the header text,
/// node-consul too).
pub fn index_of(answer: &Value) -> u64 {
    let index = &answer["index"];
    index
        .as_u64()
        .or_else(|| index.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("no index in {answer}"))
}
