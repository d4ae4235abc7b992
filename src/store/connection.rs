//! Turning the configured storage source into a Tables client.
//!
//! Connection strings come in several shapes: a full one with `TableEndpoint` (Azurite on a custom
//! port, sovereign clouds), one with only `AccountName`/`AccountKey`/`EndpointSuffix` (what the portal
//! and Service Connector give), a SAS, and `UseDevelopmentStorage=true`, which the crate parses but
//! cannot turn into credentials, so we map it to Azurite's well-known account ourselves. Every error
//! names the variable, never its value. With a managed identity there is no secret to parse: the
//! table endpoint and our own credential (`crate::identity`).
//!
//! The same account's queue endpoint (the sweep's shards, health-change events) comes from the same
//! source: `QueueEndpoint=` or the account name's public endpoint in a connection string, Azurite's
//! queue port for development storage, and with an identity the configured queue endpoint or the
//! table endpoint's host with `.table.` read as `.queue.`.

use super::transport::CappedTransport;
use crate::configuration::{ConfigError, IdentitySettings, StorageSettings, StorageSource};
use crate::identity::ManagedIdentityCredential;
use azure_core::auth::TokenCredential;
use azure_data_tables::clients::TableServiceClientBuilder;
use azure_data_tables::prelude::TableServiceClient;
use azure_storage::{CloudLocation, ConnectionString, StorageCredentials};
use azure_storage_queues::{QueueServiceClient, QueueServiceClientBuilder};
use std::sync::Arc;
use std::time::Duration;

const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const EMULATOR_TABLE_ENDPOINT: &str = "http://127.0.0.1:10002/devstoreaccount1";
const EMULATOR_QUEUE_ENDPOINT: &str = "http://127.0.0.1:10001/devstoreaccount1";

/// The storage account as configured: its table endpoint and how to authenticate, everything the
/// client needs.
pub(super) struct StorageEndpoint {
    pub location: CloudLocation,
    pub credentials: StorageCredentials,
    /// For the start-up log line: the endpoint, which carries no secret.
    pub endpoint: String,
    /// The same account's queue service, when the source names or implies one.
    pub queue: Option<CloudLocation>,
}

pub(super) fn resolve(settings: &StorageSettings) -> Result<StorageEndpoint, ConfigError> {
    match &settings.source {
        StorageSource::ConnectionString { variable, value } => {
            from_connection_string(variable, value.expose())
        }
        StorageSource::ManagedIdentity {
            endpoint,
            queue_endpoint,
            identity,
        } => from_managed_identity(endpoint, queue_endpoint.as_deref(), identity),
    }
}

fn invalid(variable: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        reason: reason.into(),
    }
}

fn from_connection_string(variable: &str, text: &str) -> Result<StorageEndpoint, ConfigError> {
    // The crate's parse errors quote the offending pair, which may be the key: say only that it failed.
    let parsed = ConnectionString::new(text).map_err(|_| {
        invalid(
            variable,
            "not a storage connection string (expected Key=Value pairs separated by ';')",
        )
    })?;

    if parsed.use_development_storage == Some(true) {
        return Ok(StorageEndpoint {
            location: CloudLocation::Custom {
                account: EMULATOR_ACCOUNT.to_owned(),
                uri: EMULATOR_TABLE_ENDPOINT.to_owned(),
            },
            credentials: StorageCredentials::access_key(EMULATOR_ACCOUNT, EMULATOR_KEY.to_owned()),
            endpoint: EMULATOR_TABLE_ENDPOINT.to_owned(),
            queue: Some(CloudLocation::Custom {
                account: EMULATOR_ACCOUNT.to_owned(),
                uri: EMULATOR_QUEUE_ENDPOINT.to_owned(),
            }),
        });
    }

    let public_endpoint = |service: &str| {
        parsed.account_name.map(|account| {
            let protocol = match parsed.default_endpoints_protocol {
                Some(azure_storage::EndpointProtocol::Http) => "http",
                _ => "https",
            };
            let suffix = parsed.endpoint_suffix.unwrap_or("core.windows.net");
            format!("{protocol}://{account}.{service}.{suffix}")
        })
    };
    let endpoint = match (parsed.table_endpoint, public_endpoint("table")) {
        (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
        (None, Some(endpoint)) => endpoint,
        (None, None) => {
            return Err(invalid(
                variable,
                "has neither TableEndpoint nor AccountName",
            ))
        }
    };
    let url = url::Url::parse(&endpoint)
        .map_err(|_| invalid(variable, "TableEndpoint is not an absolute URL"))?;
    let account = match parsed.account_name {
        Some(account) => account.to_owned(),
        None => url
            .host_str()
            .and_then(|host| host.split('.').next())
            .unwrap_or_default()
            .to_owned(),
    };
    let credentials = parsed
        .storage_credentials()
        .map_err(|_| invalid(variable, "has no AccountKey or SharedAccessSignature"))?;
    // A string naming its table endpoint names its queue endpoint too, or has none: the account's
    // public one would be a guess at another host.
    let queue = match (parsed.queue_endpoint, parsed.table_endpoint) {
        (Some(queue), _) => Some(queue.trim_end_matches('/').to_owned()),
        (None, Some(_)) => None,
        (None, None) => public_endpoint("queue"),
    };
    Ok(StorageEndpoint {
        queue: queue.map(|uri| CloudLocation::Custom {
            account: account.clone(),
            uri,
        }),
        location: CloudLocation::Custom {
            account,
            uri: endpoint.clone(),
        },
        credentials,
        endpoint,
    })
}

/// Service Connector's identity-based connection: the table endpoint, and tokens from the platform's
/// identity endpoint (App Service, Functions) or the instance metadata service (VMs, AKS), for the
/// system-assigned identity or the user-assigned one `AZURE_STORAGETABLE_CLIENTID` names.
fn from_managed_identity(
    endpoint: &str,
    queue_endpoint: Option<&str>,
    identity: &IdentitySettings,
) -> Result<StorageEndpoint, ConfigError> {
    let variable = crate::configuration::RESOURCE_ENDPOINT_VAR;
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    let url =
        url::Url::parse(&endpoint).map_err(|_| invalid(variable, "is not an absolute URL"))?;
    let account = url
        .host_str()
        .and_then(|host| host.split('.').next())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid(variable, "has no account host name"))?
        .to_owned();
    let credential: Arc<dyn TokenCredential> = Arc::new(ManagedIdentityCredential::new(identity));
    let queue = match queue_endpoint {
        Some(queue) => Some(queue.trim_end_matches('/').to_owned()),
        None => url
            .host_str()
            .filter(|host| host.contains(".table."))
            .map(|host| endpoint.replacen(host, &host.replacen(".table.", ".queue.", 1), 1)),
    };
    Ok(StorageEndpoint {
        queue: queue.map(|uri| CloudLocation::Custom {
            account: account.clone(),
            uri,
        }),
        location: CloudLocation::Custom {
            account,
            uri: endpoint.clone(),
        },
        credentials: StorageCredentials::token_credential(credential),
        endpoint,
    })
}

/// Builds the client with our own HTTP transport (bounded connect and request times, so an outage
/// becomes a quick 503 rather than a hung request) and a short retry budget for transient faults.
///
/// The crate's default transport turns connection pooling off (`pool_max_idle_per_host(0)`, a
/// workaround for hyperium/hyper#2312, where a pooled connection could hang a request forever). We
/// pool: a new TCP (and TLS) connection per storage call roughly doubled discovery latency against
/// Azurite in `make bench`, and the hang the workaround guards against is bounded here by the request
/// timeout and by the store's per-operation budget. At most `max_connections` requests are in flight
/// (`transport`), so no more connections are ever open, and no more are kept idle.
///
/// The queue client, when the account has a queue endpoint, shares the transport, so tables and
/// queues together never hold more than `max_connections`.
pub(super) fn clients(
    storage: StorageEndpoint,
    timeout: Duration,
    max_connections: usize,
) -> (TableServiceClient, Option<QueueServiceClient>) {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2).min(timeout))
        .timeout(timeout)
        .pool_max_idle_per_host(max_connections)
        .build()
        .expect("a reqwest client with rustls and static settings always builds");
    let http = CappedTransport::new(http, max_connections);
    let retry = azure_core::RetryOptions::exponential(
        azure_core::ExponentialRetryOptions::default()
            .max_retries(2u32)
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(500))
            .max_total_elapsed(timeout),
    );
    let transport = azure_core::TransportOptions::new(Arc::new(http));
    let queues = storage.queue.map(|location| {
        let options = azure_core::ClientOptions::default()
            .transport(transport.clone())
            .retry(retry.clone());
        QueueServiceClientBuilder::with_location(location, storage.credentials.clone())
            .client_options(options)
            .build()
    });
    let options = azure_core::ClientOptions::default()
        .transport(transport)
        .retry(retry)
        .per_call_policies(vec![Arc::new(LeanQueries) as Arc<dyn azure_core::Policy>]);
    let tables = TableServiceClientBuilder::with_location(storage.location, storage.credentials)
        .client_options(options)
        .build();
    (tables, queues)
}

/// Asks for `odata=minimalmetadata` on entity queries, where the crate asks for `fullmetadata`
/// (and offers no option): full metadata repeats an id, an edit link, a type and a type annotation
/// for every property of every entity, about three times the bytes of the entities themselves
/// (a 1,000-row read: 1.51 MB against 0.47 MB, measured with make bench). Minimal metadata keeps `odata.etag` and
/// the annotations of the types JSON cannot tell apart (Int64, DateTime, Guid, Binary); every
/// property is read tolerantly of its numeric shape (`properties`), so nothing else changes.
/// Queries only (a GET on `<table>()`): point reads and writes keep the crate's own headers.
/// The Accept header is outside Shared Key's string to sign, so signing is unaffected.
#[derive(Debug)]
struct LeanQueries;

#[async_trait::async_trait]
impl azure_core::Policy for LeanQueries {
    async fn send(
        &self,
        ctx: &azure_core::Context,
        request: &mut azure_core::Request,
        next: &[Arc<dyn azure_core::Policy>],
    ) -> azure_core::PolicyResult {
        if is_entity_query(request.method(), request.url()) {
            request.insert_header(
                azure_core::headers::ACCEPT,
                "application/json;odata=minimalmetadata",
            );
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

fn is_entity_query(method: &azure_core::Method, url: &url::Url) -> bool {
    let path = url.path();
    *method == azure_core::Method::Get && (path.ends_with("()") || path.ends_with("%28%29"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint_of(text: &str) -> Result<String, ConfigError> {
        from_connection_string("STORAGE_CONNECTION_STRING", text).map(|t| t.endpoint)
    }

    #[test]
    fn only_entity_queries_ask_for_minimal_metadata() {
        let get = azure_core::Method::Get;
        let at = |path: &str| url::Url::parse(&format!("http://127.0.0.1:10002{path}")).unwrap();
        assert!(is_entity_query(&get, &at("/devstoreaccount1/reg()")));
        assert!(is_entity_query(&get, &at("/devstoreaccount1/reg%28%29")));
        assert!(!is_entity_query(
            &get,
            &at("/devstoreaccount1/reg(PartitionKey='a',RowKey='b')")
        ));
        assert!(!is_entity_query(&get, &at("/devstoreaccount1/Tables")));
        assert!(!is_entity_query(
            &azure_core::Method::Post,
            &at("/devstoreaccount1/reg()")
        ));
    }

    #[test]
    fn development_storage_maps_to_azurite() {
        assert_eq!(
            endpoint_of("UseDevelopmentStorage=true").unwrap(),
            EMULATOR_TABLE_ENDPOINT
        );
    }

    #[test]
    fn table_endpoint_wins_and_loses_its_trailing_slash() {
        let text = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={EMULATOR_KEY};TableEndpoint=http://127.0.0.1:12345/devstoreaccount1/;"
        );
        assert_eq!(
            endpoint_of(&text).unwrap(),
            "http://127.0.0.1:12345/devstoreaccount1"
        );
    }

    #[test]
    fn account_and_suffix_build_the_public_endpoint() {
        let text = "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=bXlrZXk=;EndpointSuffix=core.windows.net";
        assert_eq!(
            endpoint_of(text).unwrap(),
            "https://myacct.table.core.windows.net"
        );
    }

    fn queue_of(storage: Result<StorageEndpoint, ConfigError>) -> Option<String> {
        match storage.unwrap().queue {
            Some(CloudLocation::Custom { uri, .. }) => Some(uri),
            Some(_) => panic!("always a custom location"),
            None => None,
        }
    }

    #[test]
    fn the_queue_endpoint_comes_from_the_same_source() {
        let from = |text: &str| queue_of(from_connection_string("V", text));
        assert_eq!(
            from("UseDevelopmentStorage=true").as_deref(),
            Some(EMULATOR_QUEUE_ENDPOINT)
        );
        assert_eq!(
            from("AccountName=myacct;AccountKey=bXlrZXk=;EndpointSuffix=core.windows.net")
                .as_deref(),
            Some("https://myacct.queue.core.windows.net")
        );
        let table_only = format!(
            "AccountName=devstoreaccount1;AccountKey={EMULATOR_KEY};TableEndpoint=http://127.0.0.1:1/devstoreaccount1;"
        );
        assert_eq!(from(&table_only), None);
        assert_eq!(
            from(&format!(
                "{table_only}QueueEndpoint=http://127.0.0.1:2/devstoreaccount1/;"
            ))
            .as_deref(),
            Some("http://127.0.0.1:2/devstoreaccount1")
        );

        let identity = IdentitySettings {
            source: crate::configuration::IdentitySource::InstanceMetadata,
            client_id: None,
            timeout: Duration::from_secs(5),
        };
        let table = "https://acct.table.core.windows.net/";
        assert_eq!(
            queue_of(from_managed_identity(table, None, &identity)).as_deref(),
            Some("https://acct.queue.core.windows.net")
        );
        assert_eq!(
            queue_of(from_managed_identity(
                table,
                Some("https://q.example.test/"),
                &identity
            ))
            .as_deref(),
            Some("https://q.example.test")
        );
        assert_eq!(
            queue_of(from_managed_identity(
                "https://10.0.0.1/acct",
                None,
                &identity
            )),
            None
        );
    }

    #[test]
    fn errors_never_repeat_the_secret() {
        for text in [
            "AccountKey=SECRETSECRET",
            "garbage SECRETSECRET",
            "AccountName=a;Foo=SECRETSECRET",
        ] {
            let err = endpoint_of(text).unwrap_err().to_string();
            assert!(!err.contains("SECRETSECRET"), "{err}");
            assert!(err.contains("STORAGE_CONNECTION_STRING"), "{err}");
        }
    }
}
