//! The HealthMonitor: probes (`probe`, with `http_probe` judging an HTTP answer, `grpc_probe` the
//! gRPC health check, `tls` its TLS, `certificate` the peer certificate's expiry), what they may reach (`guard`, with `identity_endpoint`
//! for the managed-identity endpoint and `lookup` for the lookups it judges), the sweep that runs
//! them over the whole registry (`sweep`), what a sweep reports (`report`), and the one type that
//! owns sweeping (`monitor`: the lock, the standalone lease and `sweep_once`). With `SWEEP_QUEUE`
//! the sweep is fanned out: `shard` runs one shard through the sweep's own phases, and `fanout`
//! sums the shards into the sweep's summary. `slots` is the process-wide probe limit both share.

mod certificate;
mod effective;
mod enqueue;
mod events;
mod fanout;
mod grpc_probe;
mod guard;
mod http_probe;
mod identity_endpoint;
mod lookup;
mod monitor;
mod poller;
mod probe;
mod report;
mod shard;
mod slots;
mod sweep;
mod tls;

pub use enqueue::{Enqueued, FanoutError};
pub use events::{EventCounts, EventPipeline, EventSink, PublishError};
pub use guard::{ProbeGuard, Refused};
pub use monitor::{HealthMonitor, SweepOutcome, SweepTrigger};
pub use probe::Prober;
pub use report::SweepReport;
pub use shard::ShardOutcome;

/// A random delay below `ceiling` (zero for a zero ceiling): what spreads retries and polls of
/// several processes or shards apart. Not for anything that must be unpredictable.
pub(crate) fn random_below(ceiling: std::time::Duration) -> std::time::Duration {
    use std::hash::BuildHasher;
    let hash = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    std::time::Duration::from_nanos(hash % (ceiling.as_nanos() as u64).max(1))
}
