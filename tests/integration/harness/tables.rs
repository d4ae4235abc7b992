//! Direct table access (the Tables crate, as the handler uses it), for what a test must see or
//! write behind the handler's back: rows as stored, foreign writes, seeded data.

use super::{ACCOUNT, ACCOUNT_KEY};
use azure_data_tables::prelude::*;
use azure_storage::{CloudLocation, StorageCredentials};
use futures::StreamExt;
use serde_json::Value;

#[derive(Clone)]
pub struct Tables {
    service: TableServiceClient,
}

fn is_not_found(e: &azure_core::Error) -> bool {
    matches!(
        e.kind(),
        azure_core::error::ErrorKind::HttpResponse { status, .. }
            if *status == azure_core::StatusCode::NotFound
    )
}

impl Tables {
    pub fn new(port: u16) -> Tables {
        let service = azure_data_tables::clients::TableServiceClientBuilder::with_location(
            CloudLocation::Custom {
                account: ACCOUNT.into(),
                uri: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            },
            StorageCredentials::access_key(ACCOUNT, ACCOUNT_KEY),
        )
        .build();
        Tables { service }
    }

    pub async fn create_table(&self, table: &str) {
        match self.service.table_client(table).create().await {
            Ok(_) => {}
            Err(e) => match e.kind() {
                azure_core::error::ErrorKind::HttpResponse { status, .. }
                    if *status == azure_core::StatusCode::Conflict => {}
                _ => panic!("create table {table}: {e}"),
            },
        }
    }

    pub async fn table_exists(&self, table: &str) -> bool {
        let mut stream = self
            .service
            .table_client(table)
            .query()
            .top(Top::new(1))
            .into_stream::<Value>();
        match stream.next().await {
            None => true,
            Some(Ok(_)) => true,
            Some(Err(e)) if is_not_found(&e) => false,
            Some(Err(e)) => panic!("query {table}: {e}"),
        }
    }

    /// Every service's row (every page) as JSON, with odata annotations. Missing table → empty.
    /// Rows under partitions no service type can have (`~lease`, `~sweep`: the handler's own,
    /// which older versions kept in the health table) are left out: `all_rows` has them.
    pub async fn rows(&self, table: &str) -> Vec<Value> {
        let mut rows = self.all_rows(table).await;
        rows.retain(|row| !row["PartitionKey"].as_str().unwrap_or("").starts_with('~'));
        rows
    }

    pub async fn all_rows(&self, table: &str) -> Vec<Value> {
        self.query(table, None).await
    }

    pub async fn delete_table(&self, table: &str) {
        if let Err(e) = self.service.table_client(table).delete().await {
            panic!("delete table {table}: {e}");
        }
    }

    pub async fn query(&self, table: &str, filter: Option<&str>) -> Vec<Value> {
        let mut q = self.service.table_client(table).query();
        if let Some(f) = filter {
            q = q.filter(Filter::new(f.to_string()));
        }
        let mut stream = q.into_stream::<Value>();
        let mut out = vec![];
        while let Some(page) = stream.next().await {
            match page {
                Ok(p) => out.extend(p.entities),
                Err(e) if is_not_found(&e) => return vec![],
                Err(e) => panic!("query {table}: {e}"),
            }
        }
        out
    }

    pub async fn row(&self, table: &str, pk: &str, rk: &str) -> Option<Value> {
        let f = format!(
            "PartitionKey eq '{}' and RowKey eq '{}'",
            pk.replace('\'', "''"),
            rk.replace('\'', "''")
        );
        let mut rows = self.query(table, Some(&f)).await;
        assert!(rows.len() <= 1, "more than one row for ({pk},{rk})");
        rows.pop()
    }

    /// Deletes one row (unconditionally); a missing row is a test error.
    pub async fn delete(&self, table: &str, pk: &str, rk: &str) {
        self.service
            .table_client(table)
            .partition_key_client(pk)
            .entity_client(rk)
            .delete()
            .await
            .unwrap_or_else(|e| panic!("delete from {table}: {e}"));
    }

    /// Insert-or-replace one entity (a JSON object with PartitionKey and RowKey).
    pub async fn upsert(&self, table: &str, entity: &Value) {
        let pk = entity["PartitionKey"].as_str().expect("PartitionKey");
        let rk = entity["RowKey"].as_str().expect("RowKey");
        self.service
            .table_client(table)
            .partition_key_client(pk)
            .entity_client(rk)
            .insert_or_replace(entity)
            .expect("build upsert")
            .await
            .unwrap_or_else(|e| panic!("upsert into {table}: {e}"));
    }

    /// Insert-or-replace many entities with entity-group transactions of up to 100
    /// (grouped by PartitionKey). Panics if any operation inside a batch failed.
    pub async fn upsert_batch(&self, table: &str, entities: &[Value]) {
        use std::collections::BTreeMap;
        let mut by_pk: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for e in entities {
            by_pk
                .entry(
                    e["PartitionKey"]
                        .as_str()
                        .expect("PartitionKey")
                        .to_string(),
                )
                .or_default()
                .push(e);
        }
        let table_client = self.service.table_client(table);
        let mut futs = vec![];
        for (pk, rows) in &by_pk {
            for chunk in rows.chunks(100) {
                let pkc = table_client.partition_key_client(pk.clone());
                let mut tx = pkc.transaction();
                for e in chunk {
                    let rk = e["RowKey"].as_str().expect("RowKey").to_string();
                    tx = tx.insert_or_replace(rk, *e).expect("build batch op");
                }
                futs.push(async move {
                    let resp = tx
                        .await
                        .unwrap_or_else(|e| panic!("batch upsert into {table}: {e}"));
                    assert_eq!(
                        resp.operation_responses.len(),
                        chunk.len(),
                        "batch returned a different number of operation responses"
                    );
                    for op in &resp.operation_responses {
                        let code = u16::from(op.status_code);
                        assert!(
                            (200..300).contains(&code),
                            "an operation of a batch into {table} failed with {code}"
                        );
                    }
                });
            }
        }
        let mut stream = futures::stream::iter(futs).buffer_unordered(8);
        while stream.next().await.is_some() {}
    }
}

/// Remove system and OData properties from a raw row.
pub fn user_properties(row: &Value) -> serde_json::Map<String, Value> {
    row.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("odata.")
                && !matches!(
                    k.as_str(),
                    "PartitionKey" | "RowKey" | "Timestamp" | "Timestamp@odata.type"
                )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The properties this handler adds to every registration row, typed Int64: the Consul index's
/// revisions (docs/architecture.md, "ServiceRegistry"). The recipe's functions ignore them.
pub const REVISION_PROPERTIES: [&str; 2] = ["revision", "createRevision"];

/// Assert that every property of a row is a plain string (no `@odata.type` annotation), but for the
/// revisions every registration row carries, which must be Int64 when present.
pub fn assert_all_plain_strings(row: &Value) {
    for name in REVISION_PROPERTIES {
        if row.get(name).is_some() {
            assert_eq!(
                row[format!("{name}@odata.type")],
                "Edm.Int64",
                "{name} must be an Int64; row {row}"
            );
        }
    }
    for (k, v) in user_properties(row) {
        if REVISION_PROPERTIES
            .iter()
            .any(|r| k == *r || k == format!("{r}@odata.type"))
        {
            continue;
        }
        assert!(
            !k.contains("@odata.type"),
            "property annotation {k}={v} present: every property must be Edm.String; row {row}"
        );
        assert!(
            v.is_string(),
            "property {k} must be a string, got {v}; row {row}"
        );
    }
}

pub fn parse_iso(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not an ISO-8601/RFC 3339 timestamp: {e}"))
        .with_timezone(&chrono::Utc)
}

/// ISO-8601 UTC like `2026-11-25T06:00:00.123Z`: RFC 3339 with a `Z` suffix.
pub fn assert_iso_utc(s: &str) {
    parse_iso(s);
    assert!(
        s.ends_with('Z'),
        "{s:?} should be a UTC timestamp ending in Z"
    );
}
