//! The settings readers against whole environments: defaults, every variable, and the error each
//! bad value gets (naming the variable, never the value).

use super::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Standalone settings read the schedule from the repository's function.json unless a test says.
    map.entry("FUNCTIONS_APP_ROOT_PATH".into())
        .or_insert_with(|| env!("CARGO_MANIFEST_DIR").into());
    Settings::from_lookup(|k| map.get(k).cloned())
}

fn invalid_variable(e: ConfigError) -> String {
    match e {
        ConfigError::Invalid { variable, .. } => variable,
        other => panic!("expected an invalid variable, got {other:?}"),
    }
}

#[test]
fn defaults_are_standalone_on_7071() {
    let s = settings(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")]).unwrap();
    assert_eq!(s.server.mode.bind_address().to_string(), "127.0.0.1:7071");
    assert_eq!(
        (
            s.storage.registry_table.as_str(),
            s.storage.health_table.as_str(),
            s.storage.state_table.as_str()
        ),
        ("ServiceRegistry", "HealthStatus", "RegistryState")
    );
    assert_eq!(s.health.probe.timeout, Duration::from_secs(5));
    assert_eq!(s.health.plan, HostingPlan::Consumption);
    assert_eq!(s.health.probe.concurrency, 500);
    assert_eq!(s.storage.connections.max, 100);
    assert_eq!(s.storage.cache.ttl, Duration::from_secs(2));
    assert_eq!(s.server.process_name, "handler");
    assert_eq!(s.health.schedule.as_deref(), Some("0 */5 * * * *"));
    assert!(matches!(
        s.storage.source,
        StorageSource::ConnectionString {
            variable: "AzureWebJobsStorage",
            ..
        }
    ));
}

#[test]
fn the_plan_sets_the_probe_concurrency_unless_it_is_given() {
    let on = |vars: &[(&str, &str)]| {
        let mut vars = vars.to_vec();
        vars.push(("AzureWebJobsStorage", "x"));
        settings(&vars).unwrap().health.probe.concurrency
    };
    assert_eq!(on(&[("HEALTH_HOSTING_PLAN", "premium")]), 1_000);
    assert_eq!(on(&[("HEALTH_HOSTING_PLAN", "flex-consumption")]), 500);
    assert_eq!(
        on(&[
            ("HEALTH_HOSTING_PLAN", "premium"),
            ("HEALTH_PROBE_CONCURRENCY", "64")
        ]),
        64
    );
}

#[test]
fn storage_connections_default_by_plan_and_can_be_set() {
    let on = |vars: &[(&str, &str)]| {
        let mut vars = vars.to_vec();
        vars.push(("AzureWebJobsStorage", "x"));
        settings(&vars).map(|s| s.storage.connections.max)
    };
    assert_eq!(on(&[]), Ok(100));
    for plan in ["consumption", "flex-consumption", "premium", "dedicated"] {
        assert_eq!(on(&[("HEALTH_HOSTING_PLAN", plan)]), Ok(100), "{plan}");
    }
    assert_eq!(on(&[("STORAGE_MAX_CONNECTIONS", " 2 ")]), Ok(2));
    // 500 probes + 100 = the 600 Consumption allows: the defaults fit, one more does not.
    assert!(on(&[("STORAGE_MAX_CONNECTIONS", "101")]).is_err());
    assert!(on(&[("HEALTH_PROBE_CONCURRENCY", "501")]).is_err());
    assert_eq!(
        on(&[
            ("HEALTH_PROBE_CONCURRENCY", "400"),
            ("STORAGE_MAX_CONNECTIONS", "200")
        ]),
        Ok(200)
    );
    // Where no cap is documented, what is set wins.
    assert_eq!(
        on(&[
            ("HEALTH_HOSTING_PLAN", "premium"),
            ("HEALTH_PROBE_CONCURRENCY", "2000"),
            ("STORAGE_MAX_CONNECTIONS", "1000")
        ]),
        Ok(1000)
    );
}

#[test]
fn a_bad_storage_connection_count_is_named() {
    for value in ["0", "-1", "many", "1.5"] {
        let e = settings(&[
            ("AzureWebJobsStorage", "x"),
            ("STORAGE_MAX_CONNECTIONS", value),
        ])
        .unwrap_err();
        assert_eq!(invalid_variable(e), "STORAGE_MAX_CONNECTIONS", "{value}");
    }
}

#[test]
fn probes_and_storage_over_consumption_s_cap_stop_start_up_naming_both() {
    let e = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("HEALTH_HOSTING_PLAN", "consumption"),
        ("HEALTH_PROBE_CONCURRENCY", "550"),
    ])
    .unwrap_err();
    match &e {
        ConfigError::InvalidTogether { variables, .. } => assert_eq!(
            variables,
            &["HEALTH_PROBE_CONCURRENCY", "STORAGE_MAX_CONNECTIONS"]
        ),
        other => panic!("expected both variables named, got {other:?}"),
    }
    assert!(
        e.to_string()
            .contains("550 probes (set) + 100 storage connections (the default) = 650"),
        "{e}"
    );
}

#[test]
fn the_lease_lasts_as_long_as_a_sweep_can() {
    let s = settings(&[("AzureWebJobsStorage", "x")]).unwrap();
    // 240 s deadline less a 5 s probe timeout, 30 s longest check, twice the 10 s storage timeout.
    assert_eq!(s.health.sweep.start_deadline, Duration::from_secs(235));
    assert_eq!(s.health.sweep.lease_ttl, Duration::from_secs(285));
    assert_eq!(s.health.sweep.expired_grace, Duration::from_secs(600));
}

#[test]
fn the_recipe_variable_wins_then_service_connector() {
    let s = settings(&[
        ("AzureWebJobsStorage", "c"),
        ("AZURE_STORAGETABLE_CONNECTIONSTRING", "b"),
        ("STORAGE_CONNECTION_STRING", "a"),
    ])
    .unwrap();
    assert_eq!(
        s.storage.source,
        StorageSource::ConnectionString {
            variable: "STORAGE_CONNECTION_STRING",
            value: Secret::new("a")
        }
    );
    let s = settings(&[
        ("AZURE_STORAGETABLE_CONNECTIONSTRING", "b"),
        ("AzureWebJobsStorage", "c"),
    ])
    .unwrap();
    assert!(matches!(
        s.storage.source,
        StorageSource::ConnectionString {
            variable: "AZURE_STORAGETABLE_CONNECTIONSTRING",
            ..
        }
    ));
}

#[test]
fn managed_identity_endpoint_beats_the_functions_own_storage() {
    let endpoint = "https://acct.table.core.windows.net/";
    let s = settings(&[
        ("AzureWebJobsStorage", "c"),
        ("AZURE_STORAGETABLE_RESOURCEENDPOINT", endpoint),
    ])
    .unwrap();
    assert_eq!(
        s.storage.source,
        StorageSource::ManagedIdentity {
            endpoint: endpoint.into(),
            queue_endpoint: None,
            identity: IdentitySettings {
                source: IdentitySource::InstanceMetadata,
                client_id: None,
                timeout: Duration::from_secs(5),
            }
        }
    );
    let s = settings(&[
        ("AZURE_STORAGETABLE_CONNECTIONSTRING", "b"),
        ("AZURE_STORAGETABLE_RESOURCEENDPOINT", endpoint),
    ])
    .unwrap();
    assert!(matches!(
        s.storage.source,
        StorageSource::ConnectionString { .. }
    ));
}

fn identity(vars: &[(&str, &str)]) -> Result<IdentitySettings, ConfigError> {
    let mut all = vec![(
        "AZURE_STORAGETABLE_RESOURCEENDPOINT",
        "https://acct.table.core.windows.net/",
    )];
    all.extend_from_slice(vars);
    match settings(&all)?.storage.source {
        StorageSource::ManagedIdentity { identity, .. } => Ok(identity),
        other => panic!("expected a managed identity, got {other:?}"),
    }
}

#[test]
fn the_app_service_endpoint_and_its_header_are_read_together() {
    let id = identity(&[
        ("IDENTITY_ENDPOINT", " http://127.0.0.1:41234/msi/token "),
        ("IDENTITY_HEADER", "h3ader"),
        ("STORAGE_TIMEOUT_MS", "3000"),
    ])
    .unwrap();
    assert_eq!(
        id.source,
        IdentitySource::AppService {
            endpoint: url::Url::parse("http://127.0.0.1:41234/msi/token").unwrap(),
            header: Secret::new("h3ader"),
        }
    );
    assert_eq!(
        id.client_id, None,
        "no client id: the system-assigned identity"
    );
    assert_eq!(id.timeout, Duration::from_millis(1500));
    assert!(!format!("{id:?}").contains("h3ader"));

    let e = identity(&[("IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IDENTITY_HEADER is invalid: is not set, but IDENTITY_ENDPOINT is (the platform sets both)"
    );
    for bad in [
        "localhost:8081/msi/token",
        "ftp://127.0.0.1/token",
        "not a url",
    ] {
        let e = identity(&[("IDENTITY_ENDPOINT", bad), ("IDENTITY_HEADER", "h")]).unwrap_err();
        assert_eq!(invalid_variable(e), "IDENTITY_ENDPOINT", "{bad}");
    }
}

#[test]
fn a_user_assigned_identity_is_named_by_the_service_connector_client_id() {
    let guid = "0D3A4C2E-1b5f-4a6e-9c7d-8e9f0a1b2c3d";
    let id = identity(&[("AZURE_STORAGETABLE_CLIENTID", guid)]).unwrap();
    assert_eq!(id.client_id.as_deref(), Some(guid));
    assert_eq!(id.source, IdentitySource::InstanceMetadata);
    for bad in [
        "abc",
        "0d3a4c2e-1b5f-4a6e-9c7d-8e9f0a1b2c3",
        "0d3a4c2e-1b5f-4a6e-9c7d-8e9f0a1b2c3x&x=1",
    ] {
        let e = identity(&[("AZURE_STORAGETABLE_CLIENTID", bad)]).unwrap_err();
        assert_eq!(invalid_variable(e), "AZURE_STORAGETABLE_CLIENTID", "{bad}");
    }
    // The generic variable is not a choice of identity for the tables: a notice says so.
    let s = settings(&[
        (
            "AZURE_STORAGETABLE_RESOURCEENDPOINT",
            "https://acct.table.core.windows.net/",
        ),
        ("AZURE_CLIENT_ID", guid),
    ])
    .unwrap();
    assert!(matches!(
        s.storage.source,
        StorageSource::ManagedIdentity {
            identity: IdentitySettings {
                client_id: None,
                ..
            },
            ..
        }
    ));
    assert_eq!(s.notices.len(), 1);
    assert!(
        s.notices[0].starts_with("AZURE_CLIENT_ID is set but not used"),
        "{:?}",
        s.notices
    );
}

#[test]
fn a_service_principal_connection_is_refused_by_name() {
    let e = identity(&[
        (
            "AZURE_STORAGETABLE_CLIENTID",
            "0d3a4c2e-1b5f-4a6e-9c7d-8e9f0a1b2c3d",
        ),
        ("AZURE_STORAGETABLE_CLIENTSECRET", "s3cret"),
        ("AZURE_STORAGETABLE_TENANTID", "t"),
    ])
    .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert_eq!(invalid_variable(e), "AZURE_STORAGETABLE_CLIENTSECRET");
}

#[test]
fn custom_handler_port_selects_the_mode() {
    let s = settings(&[
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "5123"),
        ("AzureWebJobsStorage", "x"),
    ])
    .unwrap();
    assert_eq!(s.server.mode, HostMode::CustomHandler { port: 5123 });
    assert_eq!(s.server.mode.bind_address().to_string(), "127.0.0.1:5123");
    assert_eq!(s.health.schedule, None, "the host owns the timer");
    let s = settings(&[
        ("FUNCTIONS_HTTPWORKER_PORT", "5124"),
        ("AzureWebJobsStorage", "x"),
    ])
    .unwrap();
    assert_eq!(s.server.mode, HostMode::CustomHandler { port: 5124 });
}

#[test]
fn a_bad_port_is_reported_under_the_variable_that_holds_it() {
    let e = settings(&[
        ("FUNCTIONS_HTTPWORKER_PORT", "http"),
        ("AzureWebJobsStorage", "x"),
    ])
    .unwrap_err();
    assert_eq!(invalid_variable(e), "FUNCTIONS_HTTPWORKER_PORT");
    let e = settings(&[
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "99999"),
        ("AzureWebJobsStorage", "x"),
    ])
    .unwrap_err();
    assert_eq!(invalid_variable(e), "FUNCTIONS_CUSTOMHANDLER_PORT");
}

#[test]
fn missing_storage_names_every_variable_and_secrets_stay_hidden() {
    let message = settings(&[]).unwrap_err().to_string();
    for var in CONNECTION_STRING_VARS {
        assert!(message.contains(var), "{message}");
    }
    let s = settings(&[("STORAGE_CONNECTION_STRING", "AccountKey=topsecret")]).unwrap();
    assert!(!format!("{s:?}").contains("topsecret"));
}

#[test]
fn probe_targets_from_variables() {
    let s = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("HEALTH_ALLOW_LOOPBACK", "TRUE"),
        ("HEALTH_DENY_CIDRS", "10.9.0.0/16, 192.168.1.7"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:41234/msi/token"),
    ])
    .unwrap();
    assert!(s.health.probe_guard.allow_loopback);
    assert_eq!(s.health.probe_guard.deny.len(), 2);
    assert_eq!(
        s.health.probe_guard.identity_endpoint,
        Some(("127.0.0.1".into(), 41234))
    );
    let defaults = settings(&[("AzureWebJobsStorage", "x")]).unwrap();
    assert_eq!(defaults.health.probe_guard, ProbeGuardSettings::default());
    let e = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("HEALTH_ALLOW_CIDRS", "10.0.0.0/33"),
    ])
    .unwrap_err();
    assert_eq!(invalid_variable(e), "HEALTH_ALLOW_CIDRS");
}

#[test]
fn bad_values_are_named() {
    for (variable, value) in [
        ("REGISTRY_TABLE", "bad-name"),
        ("STATE_TABLE", "~lease"),
        ("STATE_TABLE", "ab"),
        ("HEALTH_PROBE_TIMEOUT_MS", "0"),
        ("HEALTH_PROBE_CONCURRENCY", "-1"),
        ("HEALTH_FAILURES_TO_UNHEALTHY", "0"),
        ("HEALTH_PROBE_JITTER_MS", "soon"),
        ("DEREGISTER_EXPIRED_AFTER_SECONDS", "1.5"),
        ("DISCOVERY_BIND", "localhost"),
        ("HEALTH_ALLOW_LOOPBACK", "yes"),
        ("HEALTH_HOSTING_PLAN", "elastic-premium"),
    ] {
        let e = settings(&[("AzureWebJobsStorage", "x"), (variable, value)]).unwrap_err();
        assert_eq!(invalid_variable(e), variable, "{variable}={value}");
    }
}

#[test]
fn the_state_table_is_a_table_of_its_own() {
    for clash in [
        vec![("STATE_TABLE", "healthstatus")],
        vec![("STATE_TABLE", "Reg"), ("REGISTRY_TABLE", "REG")],
    ] {
        let mut vars = vec![("AzureWebJobsStorage", "x")];
        vars.extend(clash.iter().copied());
        let e = settings(&vars).unwrap_err();
        assert_eq!(invalid_variable(e), "STATE_TABLE", "{clash:?}");
    }
    let s = settings(&[("AzureWebJobsStorage", "x"), ("STATE_TABLE", "Sweeps")]).unwrap();
    assert_eq!(s.storage.state_table, "Sweeps");
}

#[test]
fn the_schedule_comes_from_the_override_or_function_json() {
    let s = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("HEALTH_MONITOR_SCHEDULE", " */10 * * * * * "),
    ])
    .unwrap();
    assert_eq!(s.health.schedule.as_deref(), Some("*/10 * * * * *"));
    let s = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("HEALTH_MONITOR_SCHEDULE", "%SWEEP_SCHEDULE%"),
        ("SWEEP_SCHEDULE", "0 0 * * * *"),
    ])
    .unwrap();
    assert_eq!(s.health.schedule.as_deref(), Some("0 0 * * * *"));
    let e = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("HEALTH_MONITOR_SCHEDULE", "%SWEEP_SCHEDULE%"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "schedule \"%SWEEP_SCHEDULE%\" is not a six-field NCRONTAB expression: app setting SWEEP_SCHEDULE is not set"
    );
    let e = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("FUNCTIONS_APP_ROOT_PATH", "/nonexistent"),
    ])
    .unwrap_err();
    assert!(
        matches!(e, ConfigError::FunctionJsonUnreadable { ref path, .. } if path == "/nonexistent/HealthMonitor/function.json"),
        "{e:?}"
    );
}

#[test]
fn telemetry_and_notices() {
    let s = settings(&[
        ("AzureWebJobsStorage", "x"),
        ("RUST_LOG", "debug"),
        ("RUST_LOG_FORMAT", "JSON"),
        (
            "AZURE_STORAGETABLE_CLIENTID",
            "00000000-0000-0000-0000-000000000000",
        ),
    ])
    .unwrap();
    assert_eq!(
        s.telemetry,
        TelemetrySettings {
            filter: Some("debug".into()),
            json: true
        }
    );
    assert_eq!(s.notices.len(), 1);
    assert!(
        s.notices[0].starts_with("AZURE_STORAGETABLE_CLIENTID is set but unused"),
        "{:?}",
        s.notices
    );
}

#[test]
fn connection_limits_have_defaults_and_named_errors() {
    let storage = ("AzureWebJobsStorage", "UseDevelopmentStorage=true");
    let s = settings(&[storage]).unwrap();
    assert_eq!(
        s.server.connections,
        ConnectionSettings {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(15),
            max_connections: 10_000,
        }
    );
    let s = settings(&[
        storage,
        ("SERVER_HEADER_TIMEOUT_MS", "2500"),
        ("SERVER_BODY_TIMEOUT_MS", "4000"),
        ("SERVER_MAX_CONNECTIONS", "64"),
    ])
    .unwrap();
    assert_eq!(
        s.server.connections.header_timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(s.server.connections.body_timeout, Duration::from_secs(4));
    assert_eq!(s.server.connections.max_connections, 64);
    for variable in [
        "SERVER_HEADER_TIMEOUT_MS",
        "SERVER_BODY_TIMEOUT_MS",
        "SERVER_MAX_CONNECTIONS",
    ] {
        for bad in ["0", "-1", "soon"] {
            let e = settings(&[storage, (variable, bad)]).unwrap_err();
            assert_eq!(invalid_variable(e), variable, "{variable}={bad}");
        }
    }
}

#[test]
fn metrics_are_off_by_default_and_bind_where_asked() {
    let storage = ("AzureWebJobsStorage", "UseDevelopmentStorage=true");
    assert_eq!(settings(&[storage]).unwrap().metrics.bind, None);
    let s = settings(&[storage, ("METRICS_BIND", "127.0.0.1:9464")]).unwrap();
    assert_eq!(
        s.metrics.bind,
        Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
}

#[test]
fn metrics_bind_is_refused_when_unparseable_under_the_host_or_on_the_api_port() {
    let storage = ("AzureWebJobsStorage", "UseDevelopmentStorage=true");
    let e = settings(&[storage, ("METRICS_BIND", "9464")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "METRICS_BIND is invalid: expected an address such as 127.0.0.1:9090, got \"9464\""
    );
    let e = settings(&[
        storage,
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "3000"),
        ("METRICS_BIND", "127.0.0.1:9464"),
    ])
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("METRICS_BIND is invalid: standalone mode only"),
        "{e}"
    );
    let e = settings(&[storage, ("METRICS_BIND", "127.0.0.1:7071")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "METRICS_BIND is invalid: must differ from DISCOVERY_BIND"
    );
}

#[test]
fn metrics_on_a_reachable_address_need_the_explicit_opt_in() {
    let storage = ("AzureWebJobsStorage", "UseDevelopmentStorage=true");
    for bind in ["0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464"] {
        let e = settings(&[storage, ("METRICS_BIND", bind)]).unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("METRICS_BIND is invalid: "),
            "{bind}: {message}"
        );
        assert!(message.contains("METRICS_ALLOW_REMOTE=true"), "{message}");
        let e = settings(&[
            storage,
            ("METRICS_BIND", bind),
            ("METRICS_ALLOW_REMOTE", "false"),
        ])
        .unwrap_err();
        assert_eq!(invalid_variable(e), "METRICS_BIND", "{bind}");
        // Opted in, the settings read (nothing is bound here).
        let s = settings(&[
            storage,
            ("METRICS_BIND", bind),
            ("METRICS_ALLOW_REMOTE", "true"),
        ])
        .unwrap();
        assert_eq!(s.metrics.bind, Some(bind.parse().unwrap()));
        assert!(s.metrics.allow_remote);
    }
    for loopback in ["127.0.0.1:9464", "127.0.0.2:9464", "[::1]:9464"] {
        let s = settings(&[storage, ("METRICS_BIND", loopback)]).unwrap();
        assert!(!s.metrics.allow_remote, "{loopback}");
    }
    let e = settings(&[
        storage,
        ("METRICS_BIND", "127.0.0.1:9464"),
        ("METRICS_ALLOW_REMOTE", "yes"),
    ])
    .unwrap_err();
    assert_eq!(invalid_variable(e), "METRICS_ALLOW_REMOTE");
}
