//! The ARM sync's settings read from whole environments: sources, endpoint and audience, identity,
//! bounds, and errors that name the variable and an entry's position, never its text.

use super::*;
use std::collections::HashMap;

const SUB: &str = "00000000-0000-0000-0000-000000000001";

fn read(vars: &[(&str, &str)]) -> Result<Option<ArmSyncSettings>, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings(&Environment::new(|k: &str| map.get(k).cloned()))
}

fn error(vars: &[(&str, &str)]) -> (String, String) {
    match read(vars).unwrap_err() {
        ConfigError::Invalid { variable, reason } => (variable, reason),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn off_unless_sources_are_named() {
    assert_eq!(read(&[]).unwrap(), None);
    assert_eq!(read(&[(SOURCES_VAR, " , ")]).unwrap(), None);
    assert_eq!(read(&[(ENDPOINT_VAR, "nonsense")]).unwrap(), None);
}

#[test]
fn apps_and_groups_parse_case_insensitively_into_canonical_ids() {
    let list = format!(
        "/subscriptions/{SUB}/resourcegroups/rg-1/providers/microsoft.web/SITES/func-a/, \
         /SUBSCRIPTIONS/{SUB}/resourceGroups/rg-1/providers/Microsoft.App/containerapps/ca.b,\
         /subscriptions/{SUB}/resourceGroups/Rg(2),\
         /subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.Web/sites/func-a"
    );
    let s = read(&[(SOURCES_VAR, &list)]).unwrap().unwrap();
    assert_eq!(
        s.sources,
        vec![
            SyncSource::App(AppId(format!(
                "/subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.Web/sites/func-a"
            ))),
            SyncSource::App(AppId(format!(
                "/subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.App/containerApps/ca.b"
            ))),
            SyncSource::ResourceGroup {
                subscription: SUB.into(),
                group: "Rg(2)".into()
            },
        ],
        "a repeated source is listed once"
    );
    assert_eq!(s.endpoint, "https://management.azure.com");
    assert_eq!(s.audience, "https://management.azure.com/");
    assert_eq!(s.deadline, Duration::from_secs(30));
    assert_eq!(s.max_pages, 20);
    assert_eq!(s.max_items, 1000);
    assert_eq!(
        s.identity.source,
        crate::configuration::IdentitySource::InstanceMetadata
    );
    assert_eq!(s.identity.client_id, None);
}

#[test]
fn a_bad_entry_is_named_by_its_position_not_its_text() {
    for (bad, position) in [
        ("DefaultEndpointsProtocol=https;AccountKey=SECRETKEY", 2),
        (
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Sql/servers/s",
            2,
        ),
        ("/subscriptions/x/resourceGroups/r g", 2),
        (
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/a?b",
            2,
        ),
        (
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites",
            2,
        ),
        ("/subscriptions//resourceGroups/rg", 2),
    ] {
        let list = format!("/subscriptions/{SUB}/resourceGroups/ok,{bad}");
        let (variable, reason) = error(&[(SOURCES_VAR, &list)]);
        assert_eq!(variable, SOURCES_VAR);
        assert!(
            reason.starts_with(&format!("entry {position} is not the resource ID")),
            "{reason}"
        );
        assert!(!reason.contains("SECRETKEY"), "{reason}");
    }
    let many = vec![format!("/subscriptions/{SUB}/resourceGroups/g"); MAX_SOURCES + 1].join(",");
    assert_eq!(
        error(&[(SOURCES_VAR, &many)]).1,
        "names 51 sources, at most 50"
    );
}

#[test]
fn the_endpoint_is_https_or_loopback_http_and_sets_the_default_audience() {
    let group = format!("/subscriptions/{SUB}/resourceGroups/g");
    let with = |endpoint: &str| read(&[(SOURCES_VAR, group.as_str()), (ENDPOINT_VAR, endpoint)]);
    let s = with("https://management.usgovcloudapi.net/")
        .unwrap()
        .unwrap();
    assert_eq!(s.endpoint, "https://management.usgovcloudapi.net");
    assert_eq!(s.audience, "https://management.usgovcloudapi.net/");
    let s = with("http://127.0.0.1:41999").unwrap().unwrap();
    assert_eq!(s.endpoint, "http://127.0.0.1:41999");
    for bad in [
        "http://management.azure.com",
        "https://management.azure.com/path",
        "https://user:pw@management.azure.com",
        "ftp://127.0.0.1",
        "management.azure.com",
    ] {
        let e = with(bad).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { variable, .. } if variable == ENDPOINT_VAR),
            "{bad}: {e:?}"
        );
    }
    let s = read(&[
        (SOURCES_VAR, group.as_str()),
        (AUDIENCE_VAR, "https://management.core.windows.net/"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(s.audience, "https://management.core.windows.net/");
    assert_eq!(
        error(&[(SOURCES_VAR, group.as_str()), (AUDIENCE_VAR, "http://x")]).0,
        AUDIENCE_VAR
    );
}

#[test]
fn the_sweep_lease_outlasts_the_sync_too() {
    let base = [
        ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
        ("HEALTH_MONITOR_SCHEDULE", "0 */5 * * * *"),
    ];
    let lease = |extra: &[(&str, &str)]| {
        let map: HashMap<String, String> = base
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::configuration::Settings::from_lookup(|k| map.get(k).cloned())
            .unwrap()
            .health
            .sweep
            .lease_ttl
    };
    let group = format!("/subscriptions/{SUB}/resourceGroups/g");
    assert_eq!(
        lease(&[
            (SOURCES_VAR, group.as_str()),
            ("SERVICE_CONNECTOR_SYNC_DEADLINE_MS", "7000")
        ]) - lease(&[]),
        Duration::from_secs(7)
    );
}

#[test]
fn the_identity_is_the_tables_one() {
    let group = format!("/subscriptions/{SUB}/resourceGroups/g");
    let client = "0d3a4c2e-1b5f-4a6e-9c7d-8e9f0a1b2c3d";
    let s = read(&[
        (SOURCES_VAR, group.as_str()),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
        ("IDENTITY_HEADER", "h"),
        ("AZURE_STORAGETABLE_CLIENTID", client),
        ("SERVICE_CONNECTOR_SYNC_REQUEST_TIMEOUT_MS", "2500"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(s.identity.client_id.as_deref(), Some(client));
    assert_eq!(s.identity.timeout, Duration::from_millis(2500));
    assert_eq!(s.request_timeout, Duration::from_millis(2500));
    assert_eq!(
        error(&[
            (SOURCES_VAR, group.as_str()),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
        ])
        .0,
        "IDENTITY_HEADER"
    );
}

#[test]
fn the_item_cap_is_a_count_above_zero_named_in_its_errors() {
    let group = format!("/subscriptions/{SUB}/resourceGroups/g");
    let with = |value: &str| read(&[(SOURCES_VAR, group.as_str()), (MAX_ITEMS_VAR, value)]);
    assert_eq!(with("250").unwrap().unwrap().max_items, 250);
    assert_eq!(with("2000000").unwrap().unwrap().max_items, 2_000_000);
    for bad in ["0", "-1", "many", "1.5"] {
        let e = with(bad).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { variable, .. } if variable == MAX_ITEMS_VAR),
            "{bad}: {e:?}"
        );
    }
}
