//! The HealthMonitor: probes (`probe`), what they may reach (`guard`), and the sweep that runs them
//! over the whole registry (`sweep`).

mod guard;
mod probe;
mod sweep;

pub use guard::{Refused, TargetPolicy};
pub use probe::Prober;
pub use sweep::{run_sweep, SweepReport, SweepSettings};
