//! The Consul field names errors are reported under, for each place a field can sit: a service at
//! the top of an agent registration or under `Service` in a catalog one; a check under `Check`,
//! `Checks`, or their catalog `Definition`. Static, so a `ValidationError` can carry them. Also the
//! keys a check may have, by where it sits, and the kinds of check the registry cannot run.

/// The Consul field names of one place a check can sit, for errors.
#[derive(Debug)]
pub(super) struct CheckNames {
    pub parent: &'static str,
    pub ttl: &'static str,
    pub http: &'static str,
    pub tcp: &'static str,
    pub grpc: &'static str,
    pub timeout: &'static str,
    pub interval: &'static str,
    pub status: &'static str,
    pub deregister: &'static str,
    pub service_id: &'static str,
    pub definition: &'static str,
}

macro_rules! check_names {
    ($name:ident, $parent:literal, $def:literal) => {
        pub(super) static $name: CheckNames = CheckNames {
            parent: $parent,
            ttl: concat!($def, ".TTL"),
            http: concat!($def, ".HTTP"),
            tcp: concat!($def, ".TCP"),
            grpc: concat!($def, ".GRPC"),
            timeout: concat!($def, ".Timeout"),
            interval: concat!($def, ".Interval"),
            status: concat!($parent, ".Status"),
            deregister: concat!($def, ".DeregisterCriticalServiceAfter"),
            service_id: concat!($parent, ".ServiceID"),
            definition: $def,
        };
    };
}

check_names!(AGENT_CHECK, "Check", "Check");
check_names!(AGENT_CHECKS, "Checks", "Checks");
check_names!(CATALOG_CHECK, "Check", "Check.Definition");
check_names!(CATALOG_CHECKS, "Checks", "Checks.Definition");

/// The Consul field names of a service's parts: at the top of an agent registration, or under
/// `Service` in a catalog one.
pub(super) struct ServiceNames {
    pub name_key: &'static str,
    pub name: &'static str,
    pub id: &'static str,
    pub address: &'static str,
    pub port: &'static str,
    pub tags: &'static str,
    pub meta: &'static str,
    pub meta_scheme: &'static str,
    pub meta_service_type: &'static str,
    pub meta_version: &'static str,
    pub weights: &'static str,
    pub weights_passing: &'static str,
    pub kind: &'static str,
    pub socket_path: &'static str,
    pub check: &'static CheckNames,
    pub checks: &'static CheckNames,
}

macro_rules! service_names {
    ($name:ident, $prefix:literal, $name_key:literal, $check:expr, $checks:expr) => {
        pub(super) static $name: ServiceNames = ServiceNames {
            name_key: $name_key,
            name: concat!($prefix, $name_key),
            id: concat!($prefix, "ID"),
            address: concat!($prefix, "Address"),
            port: concat!($prefix, "Port"),
            tags: concat!($prefix, "Tags"),
            meta: concat!($prefix, "Meta"),
            meta_scheme: concat!($prefix, "Meta.scheme"),
            meta_service_type: concat!($prefix, "Meta.serviceType"),
            meta_version: concat!($prefix, "Meta.version"),
            weights: concat!($prefix, "Weights"),
            weights_passing: concat!($prefix, "Weights.Passing"),
            kind: concat!($prefix, "Kind"),
            socket_path: concat!($prefix, "SocketPath"),
            check: $check,
            checks: $checks,
        };
    };
}

service_names!(AGENT, "", "Name", &AGENT_CHECK, &AGENT_CHECKS);
service_names!(
    CATALOG,
    "Service.",
    "Service",
    &CATALOG_CHECK,
    &CATALOG_CHECKS
);

/// Keys of a check definition the registry reads.
pub(super) const DEFINITION_KEYS: &[&str] = &[
    "HTTP",
    "TCP",
    "TTL",
    "Interval",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "Method",
    "Header",
    "Body",
    "TLSSkipVerify",
    "TLSServerName",
    "TCPUseTLS",
    "DisableRedirects",
    "OutputMaxSize",
    "SuccessBeforePassing",
    "FailuresBeforeWarning",
    "FailuresBeforeCritical",
];
/// The Go client's spellings of a catalog definition's durations.
pub(super) const DURATION_ALIASES: &[&str] = &[
    "IntervalDuration",
    "TimeoutDuration",
    "DeregisterCriticalServiceAfterDuration",
];
/// Keys of an agent check besides the definition's.
pub(super) const AGENT_KEYS: &[&str] = &["CheckID", "Name", "Notes", "Status", "ServiceID"];
/// Keys of a catalog check (`structs.HealthCheck`) besides `Definition`.
pub(super) const CATALOG_KEYS: &[&str] = &[
    "Node",
    "CheckID",
    "Name",
    "Status",
    "Notes",
    "Output",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "Type",
    "Definition",
    "Interval",
    "Timeout",
    "ExposedPort",
    "Namespace",
    "Partition",
    "PeerName",
    "CreateIndex",
    "ModifyIndex",
];
/// Check kinds Consul knows and the registry cannot run.
pub(super) const UNSUPPORTED_KINDS: &[&str] = &[
    "ScriptArgs",
    "Args",
    "Script",
    "Shell",
    "DockerContainerID",
    "UDP",
    "H2PING",
    "H2PingUseTLS",
    "OSService",
    "AliasNode",
    "AliasService",
    "ProxyHTTP",
    "ProxyGRPC",
    "GRPCUseTLS",
];
