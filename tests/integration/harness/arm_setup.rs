//! A handler wired to the ARM imitation (`arm`) and the managed-identity imitation (`identity`) with
//! the Service Connector sync switched on, and how the sync's tests read its outcome: the summary
//! line of each sync, the registry's rows, and that no token or identity header leaked. Shared by
//! every file that tests the sync, so each starts it the same way.

use super::arm::ArmServer;
use super::identity::{assert_no_secrets, IdentityEndpoint, Reply};
use super::{Handler, HandlerConfig, Mode};
use serde_json::Value;
use std::time::Duration;

pub struct ArmSetup {
    pub h: Handler,
    pub arm: ArmServer,
    pub identity: IdentityEndpoint,
}

/// The handler in custom-handler mode with `sources` as SERVICE_CONNECTOR_SYNC_SOURCES, the ARM and
/// identity imitations, every log level (`extra` may override any of it).
pub async fn start(sources: &[&str], extra: &[(&str, &str)]) -> ArmSetup {
    let arm = ArmServer::start().await;
    let identity = IdentityEndpoint::start_for(
        &arm.audience(),
        None,
        vec![Reply::Token(Duration::from_secs(3600))],
    )
    .await;
    let mut cfg = HandlerConfig::new(Mode::CustomHandler)
        .env("SERVICE_CONNECTOR_SYNC_SOURCES", &sources.join(","))
        .env("AZURE_RESOURCE_MANAGER_ENDPOINT", &arm.endpoint)
        .env("IDENTITY_ENDPOINT", &identity.url)
        .env("IDENTITY_HEADER", &identity.header)
        .env("HEALTH_PROBE_TIMEOUT_MS", "500")
        .env("HEALTH_PROBE_JITTER_MS", "0")
        .env("RUST_LOG", "trace");
    for (k, v) in extra {
        cfg = cfg.env(k, v);
    }
    ArmSetup {
        h: Handler::spawn(cfg).await,
        arm,
        identity,
    }
}

/// A row's `metadata` property, parsed.
pub fn metadata(row: &Value) -> Value {
    serde_json::from_str(row["metadata"].as_str().unwrap()).unwrap()
}

impl ArmSetup {
    /// One sweep (the sync runs at its start); the sync's summary line.
    pub async fn sync(&self) -> String {
        let before = self.summaries().len();
        let r = self.h.sweep().await;
        assert_eq!(r.status, 200, "{}", r.text);
        let summaries = self.summaries();
        assert_eq!(
            summaries.len(),
            before + 1,
            "one sync per sweep:\n{}",
            self.h.logs()
        );
        summaries.last().unwrap().clone()
    }

    /// Every sync's summary line so far, without the structured fields after the message.
    pub fn summaries(&self) -> Vec<String> {
        self.lines_after("Service Connector sync: added")
    }

    /// The log lines that hold `marker`, each from the marker on, without the structured fields.
    pub fn lines_after(&self, marker: &str) -> Vec<String> {
        self.h
            .logs()
            .lines()
            .filter_map(|l| {
                let line = &l[l.find(marker)?..];
                Some(line.split(" function=").next().unwrap().to_owned())
            })
            .collect()
    }

    pub async fn rows(&self) -> Vec<Value> {
        let mut rows = self.h.tables().rows(&self.h.registry_table).await;
        rows.sort_by_key(|r| format!("{}/{}", r["PartitionKey"], r["RowKey"]));
        rows
    }

    /// `type/name` of every registry row, sorted.
    pub async fn keys(&self) -> Vec<String> {
        self.rows()
            .await
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["PartitionKey"].as_str().unwrap(),
                    r["RowKey"].as_str().unwrap()
                )
            })
            .collect()
    }

    pub async fn row(&self, pk: &str, rk: &str) -> Option<Value> {
        self.h.tables().row(&self.h.registry_table, pk, rk).await
    }

    /// ARM saw only tokens the identity issued, for its audience, and nothing it would refuse; no
    /// token or identity header is in the handler's output.
    pub fn assert_clean(&self) {
        assert_eq!(self.arm.problems(), Vec::<String>::new());
        assert_eq!(self.identity.problems(), Vec::<String>::new());
        let issued = self.identity.issued();
        assert!(!self.arm.tokens().is_empty());
        for token in self.arm.tokens() {
            assert!(
                issued.contains(&token),
                "ARM got a token the identity never issued"
            );
        }
        assert_no_secrets(&self.h, &self.identity);
    }
}
