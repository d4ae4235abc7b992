//! The OpenAPI document: served at `GET /api/openapi.json` and through its envelope, listing every
//! function the app folder declares (its `function.json`), with the methods the router really
//! serves; valid by the pinned openapi-spec-validator, and the curl examples of README.md and docs/api.md agree with it
//! (`scripts/check-openapi.sh`).

use crate::harness::*;
use serde_json::Value;

/// (folder, public route for HTTP functions, methods) from every `*/function.json`. host.json's
/// `routePrefix` is empty, so the route is the whole public path (`api/ServiceRegistrar`).
fn functions() -> Vec<(String, Option<String>, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(manifest_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("function.json")) else {
            continue;
        };
        let folder = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let config: Value = serde_json::from_str(&text).unwrap();
        let trigger = &config["bindings"][0];
        match trigger["type"].as_str() {
            Some("httpTrigger") => {
                let route = trigger["route"].as_str().unwrap_or(&folder).to_owned();
                let methods = trigger["methods"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_lowercase())
                    .collect();
                found.push((folder, Some(route), methods));
            }
            // No route: the host invokes these itself (the timer; a queue message).
            Some("timerTrigger") | Some("queueTrigger") => found.push((folder, None, vec![])),
            other => panic!("{folder}: unexpected trigger {other:?}"),
        }
    }
    found.sort();
    found
}

async fn served(h: &Handler) -> (String, Value) {
    let r = h
        .request(reqwest::Method::GET, "/api/openapi.json", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.assert_json_content_type();
    let doc = r.json();
    (r.text, doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_function_and_exactly_the_methods_each_route_serves() {
    let h = Handler::start().await;
    let (text, doc) = served(&h).await;
    assert_eq!(doc["openapi"], "3.1.0");

    // Through the envelope: the same bytes.
    let res = h
        .invoke("OpenApi", &ReqEnvelope::new("OpenApi", "GET").build())
        .await
        .envelope_res();
    assert_eq!((res.status, res.body.as_str()), (200, text.as_str()));

    let paths = doc["paths"].as_object().unwrap();
    let functions = functions();
    assert_eq!(functions.len(), 10, "{functions:?}");
    for (folder, route, methods) in &functions {
        assert!(
            paths[&format!("/{folder}")]["post"].is_object(),
            "no envelope route for {folder}"
        );
        let Some(route) = route else { continue };
        if let Some(prefix) = route.strip_suffix("{*path}") {
            // A catch-all (`ConsulApi`'s `v1/{*path}`): the operations documented under it use
            // only the methods the host forwards.
            for (path, item) in paths
                .iter()
                .filter(|(p, _)| p.starts_with(&format!("/{prefix}")))
            {
                for method in item.as_object().unwrap().keys() {
                    assert!(
                        methods.contains(method),
                        "{method} {path}: the host forwards only {methods:?}"
                    );
                }
            }
            continue;
        }
        let documented: Vec<&String> = paths[&format!("/{route}")]
            .as_object()
            .unwrap_or_else(|| panic!("/{route} undocumented"))
            .keys()
            .collect();
        assert_eq!(documented, methods.iter().collect::<Vec<_>>(), "/{route}");
    }

    // Every documented operation is served (none falls through to the router's 404 or 405), and
    // every other method on an /api route is a 405 naming exactly the documented ones.
    for (path, item) in paths {
        let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
        for method in &methods {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == reqwest::Method::POST).then(|| "{}".to_owned());
            let r = h.request(method.clone(), path, body).await;
            assert!(
                r.status != 405 && !r.text.contains("no route for"),
                "{method} {path}: {} {}",
                r.status,
                r.text
            );
        }
        if path.starts_with("/api/") {
            let r = h.request(reqwest::Method::PUT, path, None).await;
            r.assert_error(405, None);
            // HEAD comes with every GET route (axum answers it with the GET handler, minus the
            // body); the host forwards only the methods function.json lists.
            let allow = r.header("allow").unwrap_or_default();
            let mut allowed: Vec<String> = allow
                .split(',')
                .map(|m| m.trim().to_lowercase())
                .filter(|m| m != "head")
                .collect();
            allowed.sort();
            let mut documented: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
            documented.sort();
            assert_eq!(allowed, documented, "PUT {path}: Allow {allow}");
        }
    }
    let r = h
        .request(reqwest::Method::GET, "/api/NotAFunction", None)
        .await;
    assert!(r.assert_error(404, None)["error"]
        .as_str()
        .unwrap()
        .contains("no route for"));
    assert!(!paths.contains_key("/api/NotAFunction"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_and_the_readme_examples_agree_with_it() {
    let h = Handler::start().await;
    let (text, _) = served(&h).await;
    let file = scratch_dir("openapi").join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let script = manifest_dir().join("scripts/check-openapi.sh");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(script)
            .arg(&file)
            .arg(manifest_dir().join("README.md"))
            .arg(manifest_dir().join("docs/api.md"))
            .output()
            .expect("run scripts/check-openapi.sh")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    println!("{stdout}");
    assert!(
        output.status.success(),
        "scripts/check-openapi.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("is a valid OpenAPI 3.1.0 document"),
        "{stdout}"
    );
}
