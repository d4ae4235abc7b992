//! Service Connector discovery: the registry learns the services its apps are connected to.
pub mod arm;
