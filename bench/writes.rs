//! `bench-tool direct-merge` and `direct-upsert`: the store's own single-write rates, the baselines
//! heartbeats and registrations are judged against. Each issues one request per operation with the
//! same Tables crate and pooled transport the handler uses, at a given concurrency, straight to
//! Azurite, bounded in count and time.
//!
//! - `direct-merge --table T --instanced type-0/fleet-0=1000,...`: merge a new `lastHeartbeat`
//!   into existing instance rows (as `preload --instanced` wrote them), round robin; what a
//!   heartbeat must cost at least.
//! - `direct-upsert --table T --prefix P`: upsert (insert-or-merge, the JS SDK's `upsertEntity`
//!   default) a new recipe-shaped row per operation, RowKey `P-<i>`; what the recipe's registrar
//!   sends, and what a first registration must cost at least.

use azure_data_tables::prelude::*;
use serde_json::json;
use std::collections::HashMap;

pub async fn merge(flags: &HashMap<String, String>) {
    let service = super::service(flags);
    let table = service.table_client(super::flag::<String>(flags, "table", None));
    let keys: Vec<(String, String)> = super::instanced(flags)
        .into_iter()
        .flat_map(|(pk, name, count)| {
            (0..count).map(move |j| (pk.clone(), format!("{name}:i-{j:04}")))
        })
        .collect();
    assert!(!keys.is_empty(), "--instanced names no rows to merge into");
    let keys = std::sync::Arc::new(keys);
    let result = super::drive(
        super::flag(flags, "concurrency", Some(16)),
        super::flag(flags, "requests", Some(100_000)),
        super::flag(flags, "seconds", Some(3.0)),
        move |i| {
            let (pk, rk) = keys[i % keys.len()].clone();
            let entity = table.partition_key_client(pk).entity_client(rk);
            async move {
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                match entity.merge(json!({ "lastHeartbeat": now }), IfMatchCondition::Any) {
                    Ok(request) => request.await.is_ok(),
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    println!("{result}");
}

pub async fn upsert(flags: &HashMap<String, String>) {
    let service = super::service(flags);
    let table = service.table_client(super::flag::<String>(flags, "table", None));
    let _ = table.create().await;
    let prefix: String = super::flag(flags, "prefix", None);
    let result = super::drive(
        super::flag(flags, "concurrency", Some(16)),
        super::flag(flags, "requests", Some(100_000)),
        super::flag(flags, "seconds", Some(3.0)),
        move |i| {
            let pk = format!("type-{}", i % 8);
            let name = format!("{prefix}-{i:06}");
            let entity = table
                .partition_key_client(pk.clone())
                .entity_client(name.clone());
            async move {
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let row = json!({
                    "serviceName": name, "endpoint": format!("http://127.0.0.1:9/{i}"),
                    "healthEndpoint": format!("http://127.0.0.1:9/{i}"), "serviceType": pk,
                    "version": "1.0.0", "tags": "[\"bench\"]", "metadata": format!("{{\"i\":{i}}}"),
                    "registeredAt": now, "lastHeartbeat": now,
                });
                match entity.insert_or_merge(row) {
                    Ok(request) => request.await.is_ok(),
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    println!("{result}");
}
