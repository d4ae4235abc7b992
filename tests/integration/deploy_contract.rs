//! The deployment contract, checked offline: what infra/ deploys must fit what the handler reads.
//!
//! - every app setting the Bicep writes (the `var *AppSettings = {…}` objects in infra/) is read by
//!   the handler (a name in src/configuration/*.rs) or by the Functions
//!   host (the commented allow-list below);
//! - each plan's settings give the handler a valid configuration: `Settings::from_lookup` over them
//!   succeeds and picks managed identity for the tables, with JSON logs on;
//! - Flex Consumption gets none of the settings that plan deprecates, Linux Consumption the two
//!   its host needs;
//! - every `--setting` name infra/deploy.sh accepts is a handler setting, and every handler
//!   setting is either set by the template, accepted by deploy.sh, or listed below as left unset
//!   on purpose;
//! - with the recipe's topology, the handler is told to sync both apps' Service Connector linkers,
//!   and its identity gets Reader on exactly those two sites and nowhere else;
//! - every function folder (a folder holding function.json) is packed by infra/package.sh and
//!   named in README.md, docs/api.md or docs/deploy.md;
//! - host.json's empty `routePrefix` and the explicit routes keep every public URL the recipe and
//!   the docs use reaching the same function, with the same methods and key check, as the host's
//!   default `api` prefix did, and `/v1/...` reaches `ConsulApi` (routed as the host routes,
//!   `harness::HostRoutes`).
//!
//! No process is started and nothing is sent anywhere: the Bicep is read as text.

use crate::harness::{manifest_dir, HostRoutes, Trigger};
use service_registry::configuration::{
    Settings, StorageSource, CONNECTION_STRING_VARS, RESOURCE_ENDPOINT_VAR,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Settings the Functions host (or the platform under it) reads, never the handler.
const HOST_SETTINGS: &[&str] = &[
    // Identity-based host storage (Flex): the account, "managedidentity", and which
    // user-assigned identity to use.
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    // Linux Consumption: runtime version and language worker (Flex sets both in functionAppConfig).
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    // Linux Consumption: the Azure Files content share.
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    // Telemetry, sent by the host: where, and Entra ID authentication for it.
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
];

/// Handler settings the deployment leaves unset on purpose: the platform sets them, they only
/// mean something outside Azure Functions, or the handler reads them only to refuse or warn.
const NOT_DEPLOYED_SETTINGS: &[&str] = &[
    // Set by the Functions host when it starts the handler.
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "FUNCTIONS_HTTPWORKER_PORT",
    "FUNCTIONS_APP_ROOT_PATH",
    // Set by the platform: the instance name and the managed-identity endpoint and its header.
    "WEBSITE_INSTANCE_ID",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    // Read only to warn that it is not used (AZURE_STORAGETABLE_CLIENTID is), and only to refuse
    // a service principal, which the handler does not support.
    "AZURE_CLIENT_ID",
    "AZURE_STORAGETABLE_CLIENTSECRET",
    // Other hosts (Container Apps, plain containers) and the dev loop.
    "CONTAINER_APP_REPLICA_NAME",
    "HOSTNAME",
    "DISCOVERY_BIND",
    "HEALTH_MONITOR_SCHEDULE",
    // Standalone only, refused under the Functions host: the Prometheus listener, and reaching it
    // from another machine.
    "METRICS_BIND",
    "METRICS_ALLOW_REMOTE",
    // Anonymous access, chosen by hand and never by the template: standalone on a reachable bind,
    // or under the host for the Consul API (which has no function key in front of it). Then,
    // standalone only: the host names it answers, and a key file inside the container.
    "REGISTRY_ALLOW_ANONYMOUS",
    "REGISTRY_ALLOWED_HOSTS",
    "REGISTRY_API_KEYS_FILE",
    // A file of private root certificates for the probes: a path inside the deployment, chosen by
    // hand with the file it names; the template's deployment trusts the public roots only.
    "HEALTH_PROBE_CA_FILE",
    // Storage alternatives the template deliberately does not use (it uses managed identity).
    // Its queue endpoint is the table endpoint's host read as the queue host, so none is set.
    "AZURE_STORAGEQUEUE_RESOURCEENDPOINT",
    "STORAGE_CONNECTION_STRING",
    "AZURE_STORAGETABLE_CONNECTIONSTRING",
    // The Consul-compatible API: defaults that suit a deployment (docs/consul.md); an operator sets
    // them as app settings when needed.
    "CONSUL_DATACENTER",
    "CONSUL_UNCHECKED_STATUS",
    "CONSUL_MAX_HOLD_SECONDS",
    "CONSUL_SERVICE_TYPE",
    // The template's Event Grid topic has local auth off (the app publishes with its identity's
    // token); a key is only for a topic of one's own, set by hand as an app setting.
    "HEALTH_EVENTS_TOPIC_KEY",
    // The fanned-out sweep's standalone poller only (under the host the host's queue trigger
    // delivers shards, with host.json's settings).
    "SWEEP_QUEUE_MAX_DEQUEUE_COUNT",
    "SWEEP_QUEUE_VISIBILITY_SECONDS",
    "SWEEP_QUEUE_MAX_POLL_MS",
    // The queue endpoint under the host's own name; the template sets the handler's
    // (AZURE_STORAGEQUEUE_RESOURCEENDPOINT) instead.
    "AzureWebJobsStorage__queueServiceUri",
];

/// Flex Consumption deprecates these (learn.microsoft.com, "Flex Consumption plan deprecations").
const FLEX_DEPRECATED: &[&str] = &[
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_TIME_ZONE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
];

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn bicep_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![manifest_dir().join("infra")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("infra/ is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "bicep") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no .bicep files under infra/");
    files
}

/// Each `var <name>AppSettings = { key: value … }` block: block name → (setting → value text).
fn settings_blocks() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut blocks = BTreeMap::new();
    for file in bicep_files() {
        let text = read(&file);
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(rest) = line.strip_prefix("var ") else {
                continue;
            };
            let Some((name, tail)) = rest.split_once(" = ") else {
                continue;
            };
            if !name.ends_with("AppSettings") || tail.trim() != "{" {
                continue;
            }
            let mut settings = BTreeMap::new();
            for entry in lines.by_ref() {
                if entry.trim() == "}" {
                    break;
                }
                let entry = entry.trim();
                if entry.is_empty() || entry.starts_with("//") {
                    continue;
                }
                let (key, value) = entry.split_once(':').unwrap_or_else(|| {
                    panic!(
                        "{}: cannot read the setting line {entry:?} in {name}",
                        file.display()
                    )
                });
                settings.insert(
                    key.trim().trim_matches('\'').to_owned(),
                    value.trim().to_owned(),
                );
            }
            blocks.insert(name.to_owned(), settings);
        }
    }
    blocks
}

/// `var name = 'literal'` across infra/: what a bare name in a setting stands for (module
/// parameters carry the same names as the variables main.bicep passes to them).
fn literal_vars() -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for file in bicep_files() {
        for line in read(&file).lines() {
            let Some((name, value)) = line.strip_prefix("var ").and_then(|r| r.split_once(" = "))
            else {
                continue;
            };
            let value = value.trim();
            if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
                vars.insert(name.trim().to_owned(), value[1..value.len() - 1].to_owned());
            }
        }
    }
    vars
}

/// What the template's runtime values look like in Azure, for the ones the handler parses.
const SAMPLE_VALUES: &[(&str, &str)] = &[
    // A user-assigned identity's client id is a GUID.
    (
        "userAssignedClientId",
        "4f8d2c1a-9b3e-4c7d-8a6f-0e1d2c3b4a59",
    ),
    // The storage account's primaryEndpoints.table.
    (
        "tableEndpoint",
        "https://svcregaccount.table.core.windows.net/",
    ),
    // main.bicep's two resourceId('Microsoft.Web/sites', …), joined by a comma.
    (
        "connectorSyncSources",
        "/subscriptions/4f8d2c1a-9b3e-4c7d-8a6f-0e1d2c3b4a59/resourceGroups/rg-registry/providers/Microsoft.Web/sites/svcreg-func-abc,/subscriptions/4f8d2c1a-9b3e-4c7d-8a6f-0e1d2c3b4a59/resourceGroups/rg-registry/providers/Microsoft.Web/sites/svcreg-web-abc",
    ),
];

/// What a Bicep value becomes, for the handler's parser: a sample of a runtime value, a name bound
/// to a literal its literal, a literal with `${…}` replaced, else a placeholder (an expression
/// only Azure can evaluate, which the handler does not parse).
fn placeholder_value(bicep: &str, vars: &BTreeMap<String, String>) -> String {
    if let Some((_, sample)) = SAMPLE_VALUES.iter().find(|(name, _)| *name == bicep) {
        return (*sample).to_owned();
    }
    if let Some(literal) = vars.get(bicep) {
        return literal.clone();
    }
    match bicep.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(literal) => {
            let mut out = String::new();
            let mut rest = literal;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..]
                    .find('}')
                    .map_or(rest.len(), |e| start + e + 1);
                out.push_str("placeholder");
                rest = &rest[end..];
            }
            out.push_str(rest);
            out
        }
        None => "placeholder".to_owned(),
    }
}

/// Every variable name the handler reads: the names in the configuration module (its tests left
/// out) and the storage variables it exports.
fn handler_settings() -> BTreeSet<String> {
    let dir = manifest_dir().join("src");
    let mut files = Vec::new();
    for entry in fs::read_dir(dir.join("configuration")).expect("src/configuration/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            files.push(path);
        }
    }
    let mut names: BTreeSet<String> = CONNECTION_STRING_VARS
        .iter()
        .chain([&RESOURCE_ENDPOINT_VAR])
        .map(|s| s.to_string())
        .collect();
    for file in files {
        let text = read(&file);
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for literal in code.split('"').skip(1).step_by(2) {
            let is_variable = literal.len() >= 3
                && literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_variable {
                names.insert(literal.to_owned());
            }
        }
    }
    assert!(
        names.contains("REGISTRY_TABLE") && names.contains("RUST_LOG_FORMAT"),
        "the scan of src/configuration found too little: {names:?}"
    );
    names
}

fn deploy_sh_settings() -> Vec<String> {
    let text = read(&manifest_dir().join("infra/deploy.sh"));
    let block = text
        .split("# handler-settings:begin")
        .nth(1)
        .and_then(|rest| rest.split("# handler-settings:end").next())
        .expect("infra/deploy.sh has no '# handler-settings:begin' … ':end' block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('(') && *l != ")")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_app_setting_the_bicep_writes_is_read_by_the_handler_or_the_host() {
    let handler = handler_settings();
    let blocks = settings_blocks();
    for expected in [
        "handlerAppSettings",
        "telemetryAppSettings",
        "flexAppSettings",
        "userAssignedAppSettings",
        "consumptionAppSettings",
        "connectorSyncAppSettings",
    ] {
        assert!(
            blocks.contains_key(expected),
            "infra/modules/functionapp.bicep: no `var {expected} = {{` block (found {:?})",
            blocks.keys()
        );
    }
    for (block, settings) in &blocks {
        for name in settings.keys() {
            assert!(
                handler.contains(name) || HOST_SETTINGS.contains(&name.as_str()),
                "app setting {name} (Bicep `{block}`) is read neither by the handler \
                 (src/configuration) nor by the host (HOST_SETTINGS in this test)"
            );
        }
    }
    // App settings written anywhere else would escape this check.
    for file in bicep_files() {
        let text = read(&file);
        for (at, _) in text.match_indices("appSettings:") {
            let after = &text[at..(at + 80).min(text.len())];
            assert!(
                after.contains("items(appSettings)"),
                "{}: an appSettings list not built from the checked `*AppSettings` objects: {after:?}",
                file.display()
            );
        }
    }
}

#[test]
fn each_plans_settings_configure_the_handler_for_managed_identity() {
    let blocks = settings_blocks();
    let vars = literal_vars();
    let combine = |names: &[&str]| -> BTreeMap<String, String> {
        names
            .iter()
            .flat_map(|block| blocks[*block].iter())
            .map(|(k, v)| (k.clone(), placeholder_value(v, &vars)))
            .collect()
    };
    let plans = [
        (
            "Flex Consumption, system-assigned",
            combine(&[
                "handlerAppSettings",
                "telemetryAppSettings",
                "flexAppSettings",
            ]),
        ),
        (
            "Flex Consumption, user-assigned",
            combine(&[
                "handlerAppSettings",
                "telemetryAppSettings",
                "flexAppSettings",
                "userAssignedAppSettings",
            ]),
        ),
        (
            "Flex Consumption, recipe topology",
            combine(&[
                "handlerAppSettings",
                "telemetryAppSettings",
                "flexAppSettings",
                "connectorSyncAppSettings",
            ]),
        ),
        (
            "Linux Consumption",
            combine(&[
                "handlerAppSettings",
                "telemetryAppSettings",
                "consumptionAppSettings",
            ]),
        ),
    ];
    for (plan, settings) in plans {
        // The host adds the port when it starts the handler.
        let lookup = |name: &str| match name {
            "FUNCTIONS_CUSTOMHANDLER_PORT" => Some("7071".to_owned()),
            _ => settings.get(name).cloned(),
        };
        let parsed = Settings::from_lookup(lookup)
            .unwrap_or_else(|e| panic!("{plan}: the handler refuses the Bicep's settings: {e}"));
        match &parsed.storage.source {
            StorageSource::ManagedIdentity { endpoint, .. } => assert_eq!(
                endpoint, "https://svcregaccount.table.core.windows.net/",
                "{plan}: the handler's table endpoint"
            ),
            other => panic!("{plan}: the handler would reach the tables with {other:?}, not the managed identity"),
        }
        assert!(
            parsed.telemetry.json,
            "{plan}: RUST_LOG_FORMAT=json is not set"
        );
        assert_eq!(parsed.storage.registry_table, "ServiceRegistry", "{plan}");
        assert_eq!(parsed.storage.health_table, "HealthStatus", "{plan}");
        assert_eq!(parsed.storage.state_table, "RegistryState", "{plan}");
        let synced = parsed.arm_sync.as_ref().map(|s| s.sources.len());
        if plan.ends_with("recipe topology") {
            let sync = parsed
                .arm_sync
                .as_ref()
                .expect("the recipe's topology turns the sync on");
            assert_eq!(synced, Some(2), "{plan}: the function app and the web app");
            assert_eq!(sync.endpoint, "https://management.azure.com", "{plan}");
        } else {
            assert_eq!(
                synced, None,
                "{plan}: the sync is on only with the topology"
            );
        }
        if plan.starts_with("Flex") {
            for name in FLEX_DEPRECATED {
                assert!(
                    !settings.contains_key(*name),
                    "{plan}: {name} is deprecated on Flex Consumption but the Bicep sets it"
                );
            }
            assert!(
                settings.contains_key("AzureWebJobsStorage__accountName"),
                "{plan}: no identity-based host storage (AzureWebJobsStorage__accountName)"
            );
        } else {
            assert_eq!(
                settings.get("FUNCTIONS_WORKER_RUNTIME").map(String::as_str),
                Some("custom"),
                "{plan}: FUNCTIONS_WORKER_RUNTIME must be custom"
            );
            assert!(
                settings.contains_key("AzureWebJobsStorage"),
                "{plan}: no host storage"
            );
        }
    }
    let flex_config = read(&manifest_dir().join("infra/modules/functionapp.bicep"));
    assert!(
        flex_config.contains("name: 'custom'"),
        "functionAppConfig.runtime must name the custom handler runtime"
    );
}

#[test]
fn deploy_sh_passes_on_handler_settings_only_and_every_one_is_accounted_for() {
    let handler = handler_settings();
    let accepted = deploy_sh_settings();
    assert!(
        !accepted.is_empty(),
        "infra/deploy.sh accepts no handler settings"
    );
    let template: BTreeSet<String> = settings_blocks()
        .values()
        .flat_map(|s| s.keys().cloned())
        .collect();
    for name in &accepted {
        assert!(
            handler.contains(name),
            "infra/deploy.sh accepts --setting {name}, which the handler does not read"
        );
        assert!(
            !template.contains(name),
            "infra/deploy.sh accepts --setting {name}, but the template sets it and would override it"
        );
    }
    for name in &handler {
        assert!(
            template.contains(name)
                || accepted.contains(name)
                || NOT_DEPLOYED_SETTINGS.contains(&name.as_str()),
            "the handler reads {name}, but neither the Bicep sets it, nor infra/deploy.sh accepts it \
             as --setting, nor is it listed as left unset on purpose (NOT_DEPLOYED_SETTINGS)"
        );
    }
}

#[test]
fn every_function_folder_is_packaged_and_documented() {
    let root = manifest_dir();
    let mut folders: Vec<String> = fs::read_dir(root)
        .expect("repository root")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("function.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert!(
        folders.len() >= 5,
        "expected the five function folders, found {folders:?}"
    );
    let package_sh = read(&root.join("infra/package.sh"));
    let packs_all = package_sh.contains("*/function.json");
    // The README is a quickstart now; the function reference and the app's layout moved to docs/.
    let readme = ["README.md", "docs/api.md", "docs/deploy.md"]
        .map(|file| read(&root.join(file)))
        .join("\n");
    for folder in &folders {
        assert!(
            packs_all || package_sh.contains(&format!("{folder}/function.json")),
            "function folder {folder}/ is not packed by infra/package.sh"
        );
        assert!(
            readme.contains(&format!("`{folder}`")) || readme.contains(&format!("{folder}/")),
            "function folder {folder}/ is not named in README.md, docs/api.md or docs/deploy.md"
        );
    }
}

#[test]
fn placeholder_values_keep_literals_and_hide_expressions() {
    let vars = BTreeMap::from([("tableName".to_owned(), "Registry".to_owned())]);
    assert_eq!(placeholder_value("'json'", &vars), "json");
    assert_eq!(
        placeholder_value("'ClientId=${id};Authorization=AAD'", &vars),
        "ClientId=placeholder;Authorization=AAD"
    );
    assert_eq!(placeholder_value("tableName", &vars), "Registry");
    assert_eq!(
        placeholder_value("storageAccountName", &vars),
        "placeholder"
    );
}

/// The Reader assignments of the Service Connector sync: scoped to the function app and the web
/// app, and main.bicep hands the module both sites' IDs as the sync's sources.
#[test]
fn the_sync_reads_both_apps_linkers_with_reader_on_those_apps_only() {
    const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    let topology = read(&manifest_dir().join("infra/modules/topology.bicep"));
    let reader_var = format!("var reader = '{READER}'");
    assert!(
        topology.contains(&reader_var),
        "topology.bicep: no `{reader_var}`"
    );
    // Each role assignment resource, as its block of text.
    let assignments: Vec<&str> = topology
        .split("\nresource ")
        .filter(|block| block.contains("'Microsoft.Authorization/roleAssignments@"))
        .collect();
    let readers: Vec<&str> = assignments
        .iter()
        .filter(|block| block.contains("roleDefinitions', reader)"))
        .copied()
        .collect();
    let scopes: Vec<&str> = readers
        .iter()
        .map(|block| {
            let line = block
                .lines()
                .find(|l| l.trim_start().starts_with("scope:"))
                .unwrap_or_else(|| panic!("a Reader assignment without a scope:\n{block}"));
            line.trim().trim_start_matches("scope:").trim()
        })
        .collect();
    assert_eq!(
        scopes,
        ["functionApp", "webApp"],
        "Reader is granted on the two sites only"
    );
    for block in &readers {
        assert!(
            block.contains("principalId: registryPrincipalId"),
            "{block}"
        );
    }
    // Reader is granted nowhere else in the templates (no resource group or subscription scope).
    for file in bicep_files() {
        let text = read(&file);
        let mentions =
            text.matches(READER).count() + text.matches("roleDefinitions', reader)").count();
        let expected = if file.ends_with("topology.bicep") {
            1 + readers.len()
        } else {
            0
        };
        assert_eq!(
            mentions,
            expected,
            "{}: Reader outside the two site assignments",
            file.display()
        );
    }
    // The scopes are the module's two sites: the existing function app and the web app.
    assert!(topology.contains("resource functionApp 'Microsoft.Web/sites@"));
    assert!(topology.contains("resource webApp 'Microsoft.Web/sites@"));

    let main = read(&manifest_dir().join("infra/main.bicep"));
    let sources = main
        .lines()
        .find(|l| l.starts_with("var connectorSyncSources = "))
        .expect("main.bicep: no `var connectorSyncSources = …`");
    assert_eq!(
        sources,
        "var connectorSyncSources = deployRecipeTopology ? '${resourceId('Microsoft.Web/sites', functionAppName)},${resourceId('Microsoft.Web/sites', webAppName)}' : ''"
    );
    assert!(main.contains("connectorSyncSources: connectorSyncSources"));
    assert!(main.contains("webAppName: webAppName"));
    let function_app = read(&manifest_dir().join("infra/modules/functionapp.bicep"));
    assert!(function_app.contains("empty(connectorSyncSources) ? {} : connectorSyncAppSettings"));
    assert_eq!(
        settings_blocks()["connectorSyncAppSettings"]
            .get("SERVICE_CONNECTOR_SYNC_SOURCES")
            .map(String::as_str),
        Some("connectorSyncSources")
    );
}

/// The function.json routes before host.json set `routePrefix` to `""` (the host's default prefix
/// `api` applied): (function, route, methods).
const ROUTES_UNDER_THE_API_PREFIX: &[(&str, Option<&str>, &[&str])] = &[
    ("ServiceRegistrar", None, &["post", "delete"]),
    ("ServiceDiscovery", None, &["get"]),
    ("ServiceHeartbeat", Some("ServiceHeartbeat"), &["post"]),
    ("ServiceResolver", Some("ServiceResolver"), &["get"]),
    ("Sweep", Some("Sweep"), &["get"]),
    ("OpenApi", Some("openapi.json"), &["get"]),
    ("Dashboard", Some("Dashboard"), &["get"]),
];

#[test]
fn the_public_urls_reach_the_same_functions_as_under_the_api_prefix_and_v1_reaches_consul() {
    let host: serde_json::Value =
        serde_json::from_str(&read(&manifest_dir().join("host.json"))).unwrap();
    assert_eq!(
        host["extensions"]["http"]["routePrefix"], "",
        "host.json: Consul clients call /v1/... at the root"
    );
    let now = HostRoutes::load(manifest_dir());
    let before = HostRoutes::new(
        None,
        &ROUTES_UNDER_THE_API_PREFIX
            .iter()
            .map(|(function, route, methods)| {
                let level = now
                    .routes
                    .iter()
                    .find(|r| r.function == *function)
                    .unwrap_or_else(|| panic!("{function} is no longer an HTTP function"))
                    .auth_level
                    .as_str();
                Trigger {
                    function,
                    route: *route,
                    methods: Some(methods.iter().map(|m| m.to_string()).collect()),
                    auth_level: level,
                }
            })
            .collect::<Vec<_>>(),
    );
    assert_eq!(before.prefix, "api");
    // Every URL the recipe, README.md, docs/ and the dashboard call, in the cases and shapes a
    // client may send, with every method: the same function (or the same 404) as before.
    let mut urls = vec![];
    for path in [
        "/api/ServiceRegistrar",
        "/api/ServiceDiscovery",
        "/api/ServiceHeartbeat",
        "/api/ServiceResolver",
        "/api/Sweep",
        "/api/openapi.json",
        "/api/Dashboard",
    ] {
        urls.push(path.to_owned());
        urls.push(path.to_ascii_lowercase());
        urls.push(format!("{path}/"));
        urls.push(format!("{path}/extra"));
    }
    urls.extend(
        [
            "/api",
            "/api/",
            "/",
            "/ServiceRegistrar",
            "/api/OpenApi",
            "/api/v1/agent/self",
        ]
        .map(String::from),
    );
    for url in &urls {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            assert_eq!(
                now.resolve(method, url),
                before.resolve(method, url),
                "{method} {url}"
            );
        }
    }
    // The functions the recipe's URLs reach are still all there, each with its function key.
    for (function, _, methods) in ROUTES_UNDER_THE_API_PREFIX {
        let route = now.routes.iter().find(|r| r.function == *function).unwrap();
        assert!(
            route.template.starts_with("api/"),
            "{function}: {}",
            route.template
        );
        let level = if *function == "Dashboard" {
            "anonymous"
        } else {
            "function"
        };
        assert_eq!(route.auth_level, level, "{function}");
        assert!(now
            .resolve(methods[0], &format!("/{}", route.template))
            .is_some());
    }
    // The Consul API: everything under /v1/, GET and PUT, no function key at the host (the
    // handler's own authentication decides), and nothing there before.
    let consul = now
        .resolve("GET", "/v1/agent/self")
        .expect("GET /v1/agent/self");
    assert_eq!(consul.function, "ConsulApi");
    assert_eq!(consul.auth_level, "anonymous");
    assert_eq!(consul.params["path"], "agent/self");
    assert!(before.resolve("GET", "/v1/agent/self").is_none());
    let register = now.resolve("PUT", "/v1/agent/service/register").unwrap();
    assert_eq!(register.function, "ConsulApi");
    let encoded = now.resolve("GET", "/v1/health/service/my%20svc").unwrap();
    assert_eq!(encoded.params["path"], "health/service/my svc");
    assert!(
        now.resolve("POST", "/v1/agent/self").is_none(),
        "Consul's API is GET and PUT"
    );
    assert!(now.resolve("DELETE", "/v1/kv/x").is_none());
    // The host's own paths stay outside every function.
    for path in [
        "/admin/host/status",
        "/runtime/webhooks/x",
        "/v2/agent/self",
    ] {
        assert!(now.resolve("GET", path).is_none(), "{path}");
    }
}

#[test]
fn the_shard_queue_the_trigger_listens_on_is_the_one_the_template_creates_and_names() {
    let root = manifest_dir();
    let triggers = crate::harness::queue_triggers(root);
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    let probe = &triggers[0];
    assert_eq!(probe.function, "ProbeShard");
    // The host resolves `%SWEEP_QUEUE%` from the app settings, where the handler reads it too.
    assert_eq!(probe.queue_name, "%SWEEP_QUEUE%");
    let app = read(&root.join("infra/modules/functionapp.bicep"));
    assert!(
        app.contains("SWEEP_QUEUE: sweepQueueName"),
        "the app settings name the queue"
    );
    assert!(
        app.contains("'function:ProbeShard'"),
        "ProbeShard's own scaling group"
    );
    let storage = read(&root.join("infra/modules/storage.bicep"));
    assert!(
        storage.contains("name: sweepQueueName"),
        "the queue is created"
    );
    assert!(
        storage.contains("name: '${sweepQueueName}-poison'"),
        "and its poison queue"
    );
    let main = read(&root.join("infra/main.bicep"));
    let name = main
        .lines()
        .find_map(|l| l.trim().strip_prefix("var sweepQueueName = '"))
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("var sweepQueueName");
    service_registry::domain::QueueName::parse_with_poison("SWEEP_QUEUE", name)
        .expect("a valid queue name with room for -poison");
    // host.json's queue settings are inside the extension's bounds.
    let host: serde_json::Value = serde_json::from_str(&read(&root.join("host.json"))).unwrap();
    let queues = &host["extensions"]["queues"];
    let batch = queues["batchSize"].as_u64().unwrap();
    assert!((1..=32).contains(&batch), "batchSize {batch}");
    assert!(queues["maxDequeueCount"].as_u64().unwrap() >= 1);
    assert_eq!(
        queues["messageEncoding"], "base64",
        "the handler puts base64 text"
    );
}
