//! What one HealthMonitor trigger runs: Service Connector discovery, then the health sweep.
//!
//! Two owners, composed here rather than one calling the other: `connector` learns the services
//! this app is connected to (the ARM sync, self-registration), and `health::HealthMonitor` owns
//! sweeping (its lock, the standalone lease, the sweep and its record). Every trigger (the host's
//! timer envelope, our own schedule, a manual run) goes through `SweepJob::run`, so all do the same.
//!
//! Discovery runs in the sweep's turn, under its lock and lease (so on one replica per tick), and
//! only when the sweep runs, so what it registers is probed in that same sweep; it never fails the
//! sweep (its faults are logged and the next sweep tries again).

use crate::configuration::ConnectorSettings;
use crate::connector::arm::ArmSync;
use crate::health::{HealthMonitor, SweepOutcome, SweepTrigger};
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// Cheap to clone: every clone shares the one monitor.
#[derive(Clone)]
pub struct SweepJob {
    monitor: HealthMonitor,
    discovery: Arc<ConnectorDiscovery>,
}

/// Service Connector discovery: what is run before each sweep's probes.
struct ConnectorDiscovery {
    store: Store,
    /// Self-registration from this app's variables (`SERVICE_CONNECTOR_SELF_REGISTER`).
    connector: ConnectorSettings,
    /// The Service Connector sync from Azure Resource Manager, when configured.
    arm_sync: Option<ArmSync>,
}

impl SweepJob {
    pub fn new(
        monitor: HealthMonitor,
        store: Store,
        connector: &ConnectorSettings,
        arm_sync: Option<ArmSync>,
    ) -> Self {
        SweepJob {
            monitor,
            discovery: Arc::new(ConnectorDiscovery {
                store,
                connector: connector.clone(),
                arm_sync,
            }),
        }
    }

    /// The monitor the job sweeps with (a deregistration hands it its event).
    pub fn monitor(&self) -> &HealthMonitor {
        &self.monitor
    }

    /// Discovery, then one sweep, unless the monitor declines to sweep (one running here, or the
    /// lease held elsewhere); the monitor logs what happened.
    pub async fn run(&self, trigger: SweepTrigger) -> Result<SweepOutcome, StoreError> {
        self.monitor
            .sweep_once(trigger, self.discover_connections())
            .await
    }

    /// One shard of a fanned-out sweep (the host's `ProbeShard` trigger): no discovery, which
    /// ran at the tick that cut it.
    pub async fn probe_shard(
        &self,
        message: &crate::domain::ShardMessage,
    ) -> Result<crate::health::ShardOutcome, StoreError> {
        self.monitor.probe_shard(message).await
    }

    /// Standalone with `SWEEP_QUEUE`: this process takes shards from the queue until shutdown.
    pub async fn poll_shards(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        self.monitor.poll_shards(shutdown).await;
    }

    /// The ARM sync first: where both see a service, its row (with the linker) is the one kept, and
    /// self-registration leaves a row the sync owns alone.
    async fn discover_connections(&self) {
        if let Some(sync) = &self.discovery.arm_sync {
            sync.run().await;
        }
        self.register_connections().await;
    }

    /// Registers the services Service Connector connected this app to, when switched on
    /// (`SERVICE_CONNECTOR_SELF_REGISTER`): before each sweep's probes, under its lease, and once
    /// at start-up. Never fails: faults are logged and the next sweep tries again.
    pub async fn register_connections(&self) {
        let discovery = &self.discovery;
        if discovery.connector.self_register {
            crate::connector::self_register::run(&discovery.store, &discovery.connector.variables)
                .await;
        }
    }
}
