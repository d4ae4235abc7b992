//! A real gRPC health server no one here wrote: grpcio's own health service (the pinned
//! grpcio-health-checking, scripts/grpc-health-requirements.txt) run by `tests/grpc/health_server.py`
//! through `scripts/grpc-health-server.sh` as a child on 127.0.0.1, plaintext or TLS, with a control
//! on stdin to set any service's status and count the Check calls that arrived. Installed by
//! scripts/prepare.sh (the `grpc` part) before the suite enters its namespace; nothing here installs.
//!
//! Also the certificates the TLS tests serve: self-signed for 127.0.0.1 with a chosen validity,
//! made with rcgen, written as PEM files the server and `HEALTH_PROBE_CA_FILE` read.

use super::{clean_command, manifest_dir, scratch_dir, spawn_in_group};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A self-signed certificate for 127.0.0.1 (and `localhost`), and where its PEM files are.
pub struct TestCertificate {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl TestCertificate {
    /// Valid from 400 days ago until `valid_for` from now (negative: already expired).
    pub fn for_loopback(valid_for: chrono::Duration) -> TestCertificate {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(400);
        params.not_after = now + time::Duration::seconds(valid_for.num_seconds());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = scratch_dir("probe-cert");
        let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_pem, cert.pem()).unwrap();
        std::fs::write(&key_pem, key.serialize_pem()).unwrap();
        TestCertificate {
            cert_pem,
            key_pem,
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

struct Pipes {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// One gRPC health server process.
pub struct GrpcHealthServer {
    pub port: u16,
    pipes: Arc<Mutex<Pipes>>,
    child: Child,
}

const COMMAND_BUDGET: Duration = Duration::from_secs(30);

impl GrpcHealthServer {
    /// Plaintext (`None`) or TLS with `certificate`. The server as a whole starts SERVING.
    pub async fn start(certificate: Option<&TestCertificate>) -> GrpcHealthServer {
        let mut cmd = clean_command(manifest_dir().join("scripts/grpc-health-server.sh"));
        if let Some(c) = certificate {
            cmd.arg(&c.cert_pem).arg(&c.key_pem);
        }
        for name in ["PYTHON_TOOLS_DIR", "XDG_CACHE_HOME"] {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd.current_dir(manifest_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_in_group(&mut cmd).expect("start scripts/grpc-health-server.sh");
        let pipes = Arc::new(Mutex::new(Pipes {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
        }));
        let mut server = GrpcHealthServer {
            port: 0,
            pipes,
            child,
        };
        let first = server.read_line().await;
        server.port = first
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the gRPC health server said {first:?}"));
        server
    }

    async fn read_line(&self) -> String {
        let pipes = self.pipes.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            pipes.lock().unwrap().stdout.read_line(&mut line).unwrap();
            line
        });
        tokio::time::timeout(COMMAND_BUDGET, read)
            .await
            .expect("the gRPC health server did not answer in time")
            .unwrap()
    }

    async fn command(&self, line: &str) -> String {
        {
            let mut pipes = self.pipes.lock().unwrap();
            writeln!(pipes.stdin, "{line}").unwrap();
            pipes.stdin.flush().unwrap();
        }
        let answer = self.read_line().await;
        assert!(answer.starts_with("ok"), "{line}: {answer}");
        answer
    }

    /// Sets `service`'s status (`""`: the server as a whole): SERVING, NOT_SERVING, ….
    pub async fn set(&self, service: &str, status: &str) {
        let service = if service.is_empty() { "-" } else { service };
        self.command(&format!("set {service} {status}")).await;
    }

    /// How many Check calls reached the server.
    pub async fn checks(&self) -> u64 {
        let answer = self.command("checks").await;
        answer.trim().trim_start_matches("ok ").parse().unwrap()
    }
}

impl Drop for GrpcHealthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One PEM file holding every certificate given: what `HEALTH_PROBE_CA_FILE` names.
pub fn roots_file(certificates: &[&TestCertificate]) -> String {
    let pem: String = certificates
        .iter()
        .map(|c| std::fs::read_to_string(&c.cert_pem).unwrap())
        .collect();
    let path = scratch_dir("probe-roots").join("roots.pem");
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}
