//! Service Connector discovery, the run-time half: registering the services this app is connected
//! to. `self_register` reads them from this app's own variables (the pure parsing is
//! `domain::connector`); it runs under `health::HealthMonitor`, before each sweep's probes, and
//! once at start-up. docs/service-connector.md says what is registered and what never is.

pub mod self_register;
