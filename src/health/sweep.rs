//! One HealthMonitor run: probe every registered service, then record the verdicts.
//!
//! Probes run with bounded concurrency (the recipe ran them one by one, so about 60 silent services
//! used up the 5-minute Consumption timeout); results are written in entity-group transactions.
//! A storage failure fails the sweep: a sweep that could not record what it measured must not look
//! like a success.

use super::Prober;
use crate::domain::{DiscoveryQuery, HealthState};
use crate::store::{HealthRecord, Store, StoreError};
use futures::StreamExt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub probed: usize,
    pub healthy: usize,
    pub unhealthy: usize,
    /// Unhealthy because the SSRF guard refused the address (never contacted).
    pub refused: usize,
    pub write_requests: usize,
    pub duration: Duration,
}

impl SweepReport {
    /// The one-line summary for the invocation's Logs and our own log.
    pub fn summary(&self) -> String {
        format!(
            "HealthMonitor sweep: probed {}, healthy {}, unhealthy {}, duration_ms {}, write_requests {}, refused {}",
            self.probed,
            self.healthy,
            self.unhealthy,
            self.duration.as_millis(),
            self.write_requests,
            self.refused
        )
    }
}

pub async fn run_sweep(
    store: &Store,
    prober: &Prober,
    concurrency: usize,
) -> Result<SweepReport, StoreError> {
    let started = Instant::now();
    let services = store.find_services(&DiscoveryQuery::default()).await?;

    let results: Vec<(HealthRecord, bool)> = futures::stream::iter(services)
        .map(|service| {
            let prober = prober.clone();
            async move {
                let verdict = prober.probe(&service.health_endpoint).await;
                let record = HealthRecord {
                    partition_key: service.partition_key,
                    row_key: service.row_key,
                    service_name: service.service_name,
                    status: verdict.state.as_str().to_owned(),
                    last_checked: Some(crate::now_iso()),
                    response_time: Some(i64::from(verdict.response_time_ms)),
                    error_message: verdict.error_message,
                };
                (record, verdict.refused)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    let refused = results.iter().filter(|(_, refused)| *refused).count();
    let records: Vec<HealthRecord> = results.into_iter().map(|(record, _)| record).collect();
    let write_requests = store.write_health(&records).await?;
    let healthy = records
        .iter()
        .filter(|r| r.status == HealthState::Healthy.as_str())
        .count();
    Ok(SweepReport {
        probed: records.len(),
        healthy,
        unhealthy: records.len() - healthy,
        refused,
        write_requests,
        duration: started.elapsed(),
    })
}
