//! The HealthMonitor: probes (`probe`) and the sweep that runs them over the whole registry (`sweep`).

mod probe;
mod sweep;

pub use probe::Prober;
pub use sweep::{run_sweep, SweepReport};
