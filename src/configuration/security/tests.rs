//! The security settings against whole environments: key lines and files, Entra ID, principals,
//! origins, and the start-up errors each bad value gets.

use super::*;
use crate::configuration::{ConfigError, Settings};
use std::collections::HashMap;

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.entry("AzureWebJobsStorage".into())
        .or_insert_with(|| "UseDevelopmentStorage=true".into());
    map.entry("FUNCTIONS_APP_ROOT_PATH".into())
        .or_insert_with(|| env!("CARGO_MANIFEST_DIR").into());
    Settings::from_lookup(|k| map.get(k).cloned())
}

fn reason_for(e: ConfigError) -> (String, String) {
    match e {
        ConfigError::Invalid { variable, reason } => (variable, reason),
        other => panic!("expected an invalid variable, got {other:?}"),
    }
}

#[test]
fn key_lines_parse_into_roles_scopes_and_digests() {
    let text = format!(
        "# comment\n\ndeployer write api,web:front-* {DIGEST}  # trailing\nops admin * sha256:{OTHER}\n"
    );
    let keys: Vec<ApiKeyEntry> = parse_key_lines("X", &text)
        .unwrap()
        .into_iter()
        .map(|line| line.entry)
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].id, "deployer");
    assert_eq!(keys[0].role, Role::Write);
    assert_eq!(keys[0].scope.to_string(), "api:*,web:front-*");
    assert_eq!(keys[0].sha256[..2], [0x9f, 0x86]);
    assert_eq!(keys[1].role, Role::Admin);
    assert!(keys[1].scope.is_everything());
    // Debug never prints the digest.
    assert!(!format!("{keys:?}").contains("9f86"));
}

#[test]
fn bad_key_lines_name_the_line_and_the_field_and_echo_no_field() {
    // Whichever field the key was pasted into, the error names the line and the field only.
    let raw = "s3cr3t-key-pasted-by-mistake";
    let prefix = "web-front-s3cr3t";
    for (line, says) in [
        (format!("a write api {raw}"), "SHA-256"),
        ("a write api".to_owned(), "four fields"),
        (format!("a write api {DIGEST} {raw}"), "four fields"),
        (format!("a/{raw} write api {DIGEST}"), "the id"),
        (format!("a {raw} api {DIGEST}"), "the role (second field)"),
        (
            format!("a {raw}Admin * {DIGEST}"),
            "the role (second field)",
        ),
        (format!("a write {raw}/x {DIGEST}"), "pattern 1 is not"),
        (
            format!("a write api,web:{raw}/x {DIGEST}"),
            "pattern 2 is not",
        ),
        (
            format!("a write api:{raw}:x {DIGEST}"),
            "the scope (third field)",
        ),
        (format!("a admin api:{prefix}* {DIGEST}"), "admin key"),
    ] {
        let text = format!("ok read * {OTHER}\n{line}");
        let (variable, reason) =
            reason_for(parse_key_lines("REGISTRY_API_KEYS", &text).err().unwrap());
        assert_eq!(variable, "REGISTRY_API_KEYS");
        assert!(reason.starts_with("line 2: "), "{reason}");
        assert!(reason.contains(says), "{line}: {reason}");
        assert!(!reason.contains("s3cr3t"), "{line}: {reason}");
        assert!(!reason.contains(&DIGEST[..16]), "{line}: {reason}");
    }
}

#[test]
fn the_whole_start_up_error_echoes_no_field_of_a_key_line() {
    // Through the variable, as start-up prints it: `;` separates lines there.
    let raw = "s3cr3t-key-pasted-by-mistake";
    for keys in [
        format!("ok read * {OTHER}; a {raw} api {DIGEST}"),
        format!("a write {raw}/x {DIGEST}"),
        format!("{raw} read * {DIGEST}; {raw} read * {OTHER}"),
        format!("{raw} read * {DIGEST}; b read * {DIGEST}"),
    ] {
        let e = settings(&[("REGISTRY_API_KEYS", &keys)]).err().unwrap();
        let message = e.to_string();
        assert!(
            message.starts_with("REGISTRY_API_KEYS is invalid: "),
            "{message}"
        );
        assert!(!message.contains("s3cr3t"), "{message}");
        assert!(!message.contains(&DIGEST[..16]), "{message}");
    }
}

#[test]
fn keys_come_from_the_variable_and_the_file_and_must_be_distinct() {
    let dir = std::env::temp_dir().join(format!("svcreg-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys");
    std::fs::write(&file, format!("ops admin * {OTHER}\n")).unwrap();
    let path = file.to_str().unwrap();
    let s = settings(&[
        ("REGISTRY_API_KEYS", &format!("ci write api {DIGEST}")),
        ("REGISTRY_API_KEYS_FILE", path),
    ])
    .unwrap();
    let ids: Vec<&str> = s.security.api_keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["ci", "ops"]);
    assert!(s.security.authentication_configured());

    let e = settings(&[
        ("REGISTRY_API_KEYS", &format!("ops write api {DIGEST}")),
        ("REGISTRY_API_KEYS_FILE", path),
    ])
    .unwrap_err();
    let message = e.to_string();
    assert!(message.contains("the same id"), "{message}");
    assert!(
        message.contains("REGISTRY_API_KEYS line 1 and REGISTRY_API_KEYS_FILE"),
        "{message}"
    );
    assert!(!message.contains("\"ops\""), "{message}");
    let e = settings(&[(
        "REGISTRY_API_KEYS",
        &format!("a read * {DIGEST}; b write api {DIGEST}"),
    )])
    .unwrap_err();
    assert!(e.to_string().contains("same digest"), "{e}");

    let missing = dir.join("absent");
    let e = settings(&[("REGISTRY_API_KEYS_FILE", missing.to_str().unwrap())]).unwrap_err();
    assert_eq!(reason_for(e).0, "REGISTRY_API_KEYS_FILE");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn entra_needs_an_audience_and_a_safe_metadata_url() {
    let s = settings(&[
        (
            "REGISTRY_ENTRA_TENANT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("REGISTRY_ENTRA_AUDIENCE", "api://registry, 0000-client"),
    ])
    .unwrap();
    let entra = s.security.entra.unwrap();
    assert_eq!(
        entra.metadata_url.as_str(),
        "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0/.well-known/openid-configuration"
    );
    assert_eq!(entra.audiences, ["api://registry", "0000-client"]);
    assert_eq!(entra.key_refresh_interval, Duration::from_secs(300));

    let local = settings(&[
        (
            "REGISTRY_ENTRA_METADATA_URL",
            "http://127.0.0.1:9999/t/v2.0/.well-known/openid-configuration",
        ),
        ("REGISTRY_ENTRA_AUDIENCE", "a"),
        ("REGISTRY_ENTRA_KEY_REFRESH_MS", "250"),
    ])
    .unwrap();
    assert_eq!(
        local.security.entra.unwrap().key_refresh_interval,
        Duration::from_millis(250)
    );

    for (vars, variable) in [
        (
            vec![("REGISTRY_ENTRA_TENANT_ID", "t")],
            "REGISTRY_ENTRA_AUDIENCE",
        ),
        (
            vec![("REGISTRY_ENTRA_AUDIENCE", "a")],
            "REGISTRY_ENTRA_AUDIENCE",
        ),
        (
            vec![
                ("REGISTRY_ENTRA_TENANT_ID", "t/../x"),
                ("REGISTRY_ENTRA_AUDIENCE", "a"),
            ],
            "REGISTRY_ENTRA_TENANT_ID",
        ),
        (
            vec![
                (
                    "REGISTRY_ENTRA_METADATA_URL",
                    "http://idp.example.com/.well-known/openid-configuration",
                ),
                ("REGISTRY_ENTRA_AUDIENCE", "a"),
            ],
            "REGISTRY_ENTRA_METADATA_URL",
        ),
    ] {
        let e = settings(&vars).unwrap_err();
        assert_eq!(reason_for(e).0, variable, "{vars:?}");
    }
}

#[test]
fn origins_are_exact_and_never_a_wildcard() {
    let s = settings(&[(
        "REGISTRY_ALLOWED_ORIGINS",
        "https://App.Example.com, http://127.0.0.1:3000/",
    )])
    .unwrap();
    assert_eq!(
        s.security.allowed_origins,
        ["https://app.example.com", "http://127.0.0.1:3000"]
    );
    for bad in [
        "*",
        "https://*.example.com",
        "https://app.example.com, http://*:3000",
        "null",
        "https://a.example.com/path",
        "file:///x",
        "app.example.com",
    ] {
        let e = settings(&[("REGISTRY_ALLOWED_ORIGINS", bad)]).unwrap_err();
        assert_eq!(reason_for(e).0, "REGISTRY_ALLOWED_ORIGINS", "{bad}");
    }
    // A wildcard is refused by name rather than kept as a literal that matches nothing.
    let e = settings(&[("REGISTRY_ALLOWED_ORIGINS", "https://*.example.com")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "REGISTRY_ALLOWED_ORIGINS is invalid: \"https://*.example.com\" holds a wildcard: list each origin exactly, such as https://app.example.com"
    );
}

#[test]
fn a_reachable_standalone_bind_needs_authentication_or_an_explicit_opt_in() {
    for bind in ["0.0.0.0:7071", "[::]:7071", "10.1.2.3:80"] {
        let e = settings(&[("DISCOVERY_BIND", bind)]).unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, ConfigError::Unprotected { .. }), "{bind}");
        for variable in [
            "DISCOVERY_BIND",
            "REGISTRY_API_KEYS",
            "REGISTRY_API_KEYS_FILE",
            "REGISTRY_ENTRA_TENANT_ID",
            "REGISTRY_ALLOW_ANONYMOUS",
        ] {
            assert!(message.contains(variable), "{message}");
        }
        assert!(settings(&[
            ("DISCOVERY_BIND", bind),
            ("REGISTRY_ALLOW_ANONYMOUS", "true")
        ])
        .is_ok());
        assert!(settings(&[
            ("DISCOVERY_BIND", bind),
            ("REGISTRY_API_KEYS", &format!("a read * {DIGEST}"))
        ])
        .is_ok());
    }
    for loopback in ["127.0.0.1:7071", "127.0.0.2:80", "[::1]:7071"] {
        let s = settings(&[("DISCOVERY_BIND", loopback)]).unwrap();
        assert!(!s.security.authentication_configured());
    }
    // Under the host the handler binds loopback only and authentication is opt-in.
    assert!(settings(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "5000")]).is_ok());
}

#[test]
fn contradictions_stop_start_up() {
    let e = settings(&[
        ("REGISTRY_ALLOW_ANONYMOUS", "true"),
        ("REGISTRY_API_KEYS", &format!("a read * {DIGEST}")),
    ])
    .unwrap_err();
    assert_eq!(reason_for(e).0, "REGISTRY_ALLOW_ANONYMOUS");
    let e = settings(&[("REGISTRY_TRUST_CLIENT_PRINCIPAL", "true")]).unwrap_err();
    assert_eq!(reason_for(e).0, "REGISTRY_TRUST_CLIENT_PRINCIPAL");
    let s = settings(&[
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "5000"),
        ("REGISTRY_TRUST_CLIENT_PRINCIPAL", "true"),
    ])
    .unwrap();
    assert!(s.security.trust_client_principal);
    assert!(s.security.authentication_configured());
}

#[test]
fn allowed_hosts_are_plain_names() {
    let s = settings(&[("REGISTRY_ALLOWED_HOSTS", "Registry, registry.internal")]).unwrap();
    assert_eq!(s.security.allowed_hosts, ["registry", "registry.internal"]);
    assert!(settings(&[]).unwrap().security.allowed_hosts.is_empty());
    for bad in [
        "*.example.com",
        "registry:7071",
        "http://registry",
        "a..b",
        ".",
    ] {
        let e = settings(&[("REGISTRY_ALLOWED_HOSTS", bad)]).unwrap_err();
        assert_eq!(reason_for(e).0, "REGISTRY_ALLOWED_HOSTS", "{bad}");
    }
}
