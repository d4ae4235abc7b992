//! The HealthMonitor: probes (`probe`, with `http_probe` judging an HTTP answer, `grpc_probe` the
//! gRPC health check, `tls` its TLS, `certificate` the peer certificate's expiry), what they may reach (`guard`, with `identity_endpoint`
//! for the managed-identity endpoint and `lookup` for the lookups it judges), the sweep that runs
//! them over the whole registry (`sweep`), what a sweep reports (`report`), and the one type that
//! owns sweeping (`monitor`: the lock, the standalone lease and `sweep_once`).

mod certificate;
mod grpc_probe;
mod guard;
mod http_probe;
mod identity_endpoint;
mod lookup;
mod monitor;
mod probe;
mod report;
mod sweep;
mod tls;

pub use guard::{ProbeGuard, Refused};
pub use monitor::{HealthMonitor, SweepOutcome, SweepTrigger};
pub use probe::Prober;
pub use report::SweepReport;
