//! How answers are printed: `--output json` passes the registry's JSON through (one document per
//! line, for scripts and `jq`); the default is a plain table with one line per instance.

use crate::Output;
use serde_json::Value;

/// The write commands' answers: `message` and the key it was about.
pub fn message(format: Output, body: &Value) {
    if format == Output::Json {
        println!("{body}");
        return;
    }
    let mut line = format!("{}: {}", text(body, "message"), text(body, "serviceId"));
    if let Some(instance) = body.get("instanceId").and_then(Value::as_str) {
        line.push_str(&format!(" instance {instance}"));
    }
    if let Some(at) = body.get("lastHeartbeat").and_then(Value::as_str) {
        line.push_str(&format!(" at {at}"));
    }
    println!("{line}");
}

pub fn discovery(format: Output, body: &Value) {
    if format == Output::Json {
        println!("{body}");
        return;
    }
    let services = body["services"].as_array().cloned().unwrap_or_default();
    print_table(&services);
}

pub fn resolved(format: Output, body: &Value) {
    if format == Output::Json {
        println!("{body}");
        return;
    }
    print_table(std::slice::from_ref(&body["instance"]));
}

const COLUMNS: [&str; 7] = [
    "TYPE", "NAME", "INSTANCE", "ENDPOINT", "HEALTH", "WEIGHT", "EXPIRES",
];

/// One row per instance, the columns an operator scans first.
pub fn row(item: &Value) -> [String; 7] {
    let health = item
        .get("healthStatus")
        .and_then(|h| h.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("unchecked");
    [
        text(item, "serviceType"),
        text(item, "serviceName"),
        text(item, "instanceId"),
        text(item, "endpoint"),
        health.to_string(),
        text(item, "weight"),
        text(item, "expiresAt"),
    ]
}

fn print_table(items: &[Value]) {
    let rows: Vec<[String; 7]> = items.iter().map(row).collect();
    let mut widths = COLUMNS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&COLUMNS.map(str::to_string));
    for row in &rows {
        line(row);
    }
}

/// A field as table text: strings bare, numbers as written, absent or null as `-`.
pub fn text(item: &Value, field: &str) -> String {
    match item.get(field) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
