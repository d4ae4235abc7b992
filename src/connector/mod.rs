//! Service Connector discovery, the run-time half: registering the services this app and its
//! neighbours are connected to.
//!
//! - `self_register` reads them from this app's own variables (the pure parsing is
//!   `domain::connector`; docs/service-connector.md); it runs once at start-up and before each
//!   sweep's probes.
//! - `arm` lists the Service Connector linkers of configured apps in Azure Resource Manager (the
//!   resource-ID mapping is `domain::connector`'s; docs/arm-sync.md); it runs before each sweep's
//!   probes.
//!
//! Both run from `sweep_job`, inside the sweep's lock and lease, so one replica does it.

pub mod arm;
pub mod self_register;
