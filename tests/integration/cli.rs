//! The `registry` client binary against the real handler (standalone, with API
//! keys as docs/security.md's overview configures them): each command's output and exit code in
//! both formats, both ways of sending a key, `watch` seeing a registration appear, and the agent's
//! whole lifecycle across a registry restart.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(30);

fn json_line(text: &str) -> Value {
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {text:?}"))
}

#[tokio::test]
async fn commands_print_answers_and_exit_codes_with_a_key_or_a_token() {
    let h = Handler::spawn(HandlerConfig::with_keys()).await;
    let url = h.base.as_str();
    let key = [("REGISTRY_URL", url), ("REGISTRY_KEY", WRITER)];
    let token = [("REGISTRY_URL", url), ("REGISTRY_TOKEN", WRITER)];

    // No credentials: the registry's 401, exit 1, nothing on stdout.
    let (code, out, err) = run_cli(&["discover"], &[("REGISTRY_URL", url)]).await;
    assert_eq!((code, out.as_str()), (1, ""), "stderr: {err}");
    assert!(err.contains("registry answered 401"), "{err}");

    // --key flag as x-functions-key, JSON output: the registry's answer as it came.
    let (code, out, err) = run_cli(
        &[
            "--url",
            url,
            "--key",
            WRITER,
            "--output",
            "json",
            "register",
            "--name",
            "orders",
            "--type",
            "api",
            "--instance",
            "pod-1",
            "--endpoint",
            "http://127.0.0.1:9/",
            "--service-version",
            "2.1.0",
            "--tag",
            "eu",
            "--tag",
            "blue",
            "--meta",
            "zone=1",
            "--ttl",
            "600",
            "--weight",
            "300",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        json_line(&out),
        json!({"message": "Service registered successfully", "serviceId": "api:orders", "instanceId": "pod-1"})
    );
    let row = h
        .tables()
        .row(&h.registry_table, "api", "orders:pod-1")
        .await
        .expect("row written");
    assert_eq!(row["endpoint"], "http://127.0.0.1:9/");
    assert_eq!(row["version"], "2.1.0");
    assert_eq!(row["ttlSeconds"], 600);
    assert_eq!(row["weight"], 300);
    assert_eq!(
        json_line(row["tags"].as_str().unwrap()),
        json!(["eu", "blue"])
    );
    assert_eq!(
        json_line(row["metadata"].as_str().unwrap()),
        json!({"zone": "1"})
    );

    // REGISTRY_TOKEN as a bearer token, table output.
    let (code, out, err) = run_cli(
        &[
            "register",
            "--name",
            "orders",
            "--type",
            "api",
            "--instance",
            "pod-2",
            "--endpoint",
            "http://127.0.0.1:9/",
        ],
        &token,
    )
    .await;
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out,
        "Service registered successfully: api:orders instance pod-2\n"
    );

    let (code, out, _) = run_cli(
        &[
            "--output",
            "json",
            "heartbeat",
            "--name",
            "orders",
            "--type",
            "api",
            "--instance",
            "pod-1",
        ],
        &key,
    )
    .await;
    assert_eq!(code, 0);
    let beat = json_line(&out);
    assert_eq!(beat["message"], "Heartbeat recorded");
    assert_iso_utc(beat["lastHeartbeat"].as_str().unwrap());

    // A reader may discover; both formats.
    let read = [("REGISTRY_URL", url), ("REGISTRY_KEY", READER)];
    let (code, out, _) = run_cli(
        &[
            "--output", "json", "discover", "--type", "api", "--name", "orders",
        ],
        &read,
    )
    .await;
    assert_eq!(code, 0);
    let found = json_line(&out);
    assert_eq!(found["count"], 2);
    let (code, out, _) = run_cli(&["discover", "--type", "api", "--tag", "blue"], &read).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["TYPE", "NAME", "INSTANCE", "ENDPOINT", "HEALTH", "WEIGHT", "EXPIRES"]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [
            "api",
            "orders",
            "pod-1",
            "http://127.0.0.1:9/",
            "unchecked",
            "300"
        ]
    );
    assert_eq!(
        cells[6],
        found["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["instanceId"] == "pod-1")
            .unwrap()["expiresAt"]
            .as_str()
            .unwrap()
    );

    let (code, out, _) = run_cli(
        &[
            "--output", "json", "resolve", "--name", "orders", "--type", "api",
        ],
        &read,
    )
    .await;
    assert_eq!(code, 0);
    let resolved = json_line(&out);
    assert_eq!(resolved["candidates"], 2);
    assert_eq!(resolved["instance"]["serviceName"], "orders");
    let (code, out, _) = run_cli(
        &["resolve", "--name", "orders", "--instance", "pod-2"],
        &read,
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().starts_with("api  "), "{out}");
    assert!(out.contains("pod-2") && !out.contains("pod-1"), "{out}");

    // A reader may not write: 403, exit 1, nothing changed.
    let (code, _, err) = run_cli(
        &[
            "deregister",
            "--name",
            "orders",
            "--type",
            "api",
            "--instance",
            "pod-2",
        ],
        &read,
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.starts_with("registry: registry answered 403"), "{err}");

    let (code, out, _) = run_cli(
        &[
            "deregister",
            "--name",
            "orders",
            "--type",
            "api",
            "--instance",
            "pod-2",
        ],
        &key,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Service deregistered successfully: api:orders instance pod-2\n"
    );
    assert!(h
        .tables()
        .row(&h.registry_table, "api", "orders:pod-2")
        .await
        .is_none());

    // The registry's own error body, on stderr, with --output json.
    let (code, out, err) = run_cli(
        &[
            "--output",
            "json",
            "deregister",
            "--name",
            "orders",
            "--type",
            "api",
            "--instance",
            "pod-2",
        ],
        &key,
    )
    .await;
    assert_eq!((code, out.as_str()), (1, ""));
    let error = json_line(&err);
    assert_eq!(error["status"], 404);
    assert_eq!(error["body"]["field"], "serviceName");
    let (code, _, err) = run_cli(&["resolve", "--name", "nothing"], &read).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("registry answered 404") && err.contains("(field serviceName)"),
        "{err}"
    );

    // Unreachable, and a bad command line.
    let closed = closed_port();
    let (code, _, err) = run_cli(
        &[
            "--url",
            &format!("http://127.0.0.1:{}", closed.port),
            "discover",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("registry unreachable"), "{err}");
    let (code, _, err) = run_cli(&["register", "--name", "x"], &key).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--endpoint"), "{err}");

    // The key never shows, not even in --help (clap's env values are hidden).
    let (_, help, _) = run_cli(&["--help"], &key).await;
    assert!(
        help.contains("REGISTRY_KEY") && !help.contains(WRITER),
        "{help}"
    );
}

#[tokio::test]
async fn watch_prints_a_registration_that_appears_and_stops_after_count() {
    let h = Handler::spawn(HandlerConfig::new(Mode::Standalone)).await;
    h.register_ok(
        &json!({"serviceName": "before", "serviceType": "api", "endpoint": "http://127.0.0.1:9/"}),
    )
    .await;
    let mut watch = CliProcess::spawn(
        &[
            "--output",
            "json",
            "watch",
            "--type",
            "api",
            "--interval-ms",
            "100",
            "--count",
            "1",
        ],
        &[("REGISTRY_URL", &h.base)],
    );
    // Changes count from the baseline on; register only once it is taken.
    watch
        .wait_for_stderr("watching: 1 instances", 1, BUDGET)
        .await;
    h.register_ok(
        &json!({"serviceName": "web", "serviceType": "api", "instanceId": "w1",
                          "endpoint": "http://127.0.0.1:9/"}),
    )
    .await;
    let status = watch
        .wait_exit(BUDGET)
        .await
        .expect("watch stops after one change");
    assert_eq!(status.code(), Some(0), "stderr: {}", watch.stderr());
    let change = json_line(&watch.stdout());
    assert_eq!(change["change"], "added");
    assert_eq!(change["instance"]["serviceName"], "web");
    assert_eq!(change["instance"]["instanceId"], "w1");
}

fn heartbeat_of(row: &Option<Value>) -> Option<String> {
    row.as_ref()?
        .get("lastHeartbeat")?
        .as_str()
        .map(str::to_string)
}

/// The agent registers, beats, registers again after a 404, keeps retrying with growing delays
/// while the handler is down, resumes when it is back on the same port, and on SIGTERM
/// deregisters and exits 0.
#[tokio::test]
async fn agent_survives_a_registry_restart_and_deregisters_on_sigterm() {
    let cfg = HandlerConfig::with_keys();
    let mut h = Handler::spawn(cfg.clone()).await;
    let tables = h.tables();
    let agent = CliProcess::spawn(
        &[
            "agent",
            "--name",
            "web",
            "--type",
            "api",
            "--instance",
            "pod-1",
            "--endpoint",
            "http://127.0.0.1:9/",
            "--ttl",
            "30",
            "--heartbeat-ms",
            "200",
            "--retry-initial-ms",
            "100",
            "--retry-max-ms",
            "800",
        ],
        &[("REGISTRY_URL", &h.base), ("REGISTRY_KEY", WRITER)],
    );
    let mut agent = agent;
    agent
        .wait_for_stderr("registered api:web instance pod-1", 1, BUDGET)
        .await;
    agent.wait_for_stderr("heartbeat api:web", 1, BUDGET).await;

    // Deleted behind its back (as the sweep does after a TTL lapse): it registers again.
    let gone = h.url("/api/ServiceRegistrar?serviceName=web&serviceType=api&instanceId=pod-1");
    let deleted = h
        .client
        .delete(&gone)
        .header("x-functions-key", WRITER)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    agent
        .wait_for_stderr(
            "heartbeat got 404, registering api:web instance pod-1 again",
            1,
            BUDGET,
        )
        .await;
    agent
        .wait_for_stderr("registered api:web instance pod-1", 2, BUDGET)
        .await;
    let before = poll_until(BUDGET, Duration::from_millis(20), || async {
        heartbeat_of(&tables.row(&h.registry_table, "api", "web:pod-1").await)
    })
    .await
    .expect("registered again");

    // The registry goes away: the agent retries with growing delays.
    h.kill();
    let stderr = agent.wait_for_stderr("retrying in", 4, BUDGET).await;
    let delays: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.split("retrying in ").nth(1))
        .map(|rest| rest.trim_end_matches(" ms").parse().unwrap())
        .collect();
    assert!(stderr.contains("registry unreachable"), "{stderr}");
    for (delay, step) in delays.iter().zip([100u64, 200, 400, 800]) {
        assert!((step / 2..=step).contains(delay), "delays {delays:?}");
    }
    let beats_while_down = stderr.matches("heartbeat api:web").count();

    // Back on the same port and tables: heartbeats resume and move the stored lastHeartbeat.
    h.start_again(&cfg).await;
    agent
        .wait_for_stderr("heartbeat api:web", beats_while_down + 1, BUDGET)
        .await;
    let after = poll_until(BUDGET, Duration::from_millis(20), || async {
        heartbeat_of(&tables.row(&h.registry_table, "api", "web:pod-1").await)
            .filter(|t| *t > before)
    })
    .await;
    assert!(
        after.is_some(),
        "no heartbeat stored after the restart; agent:\n{}",
        agent.stderr()
    );

    agent.signal("TERM");
    let status = agent
        .wait_exit(BUDGET)
        .await
        .expect("agent exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "stderr: {}", agent.stderr());
    assert!(agent
        .stderr()
        .contains("SIGTERM, deregistering api:web instance pod-1"));
    assert!(agent
        .stderr()
        .contains("deregistered api:web instance pod-1"));
    assert!(
        tables
            .row(&h.registry_table, "api", "web:pod-1")
            .await
            .is_none(),
        "row deleted"
    );
    assert!(!agent.stderr().contains(WRITER), "the key is never printed");
}
