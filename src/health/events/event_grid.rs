//! The Event Grid sink: the sweep's events posted to a custom topic in the CloudEvents batch form.
//!
//! The protocol, from Event Grid's publish documentation (docs/events.md has the sources):
//! `POST <topic endpoint>?api-version=2018-01-01` with `Content-Type:
//! application/cloudevents-batch+json; charset=utf-8` and a JSON array of CloudEvents 1.0 as the
//! body (at most 1 MB per request, 64 KB per event, else 413), authenticated either by the
//! topic's access key in the `aeg-sas-key` header or by a Microsoft Entra token for
//! `https://eventgrid.azure.net` as `Authorization: Bearer` (the identity holds the `EventGrid
//! Data Sender` role). A 200 means every event in the batch was accepted; anything else, none.

use super::{EventSink, PublishError};
use crate::configuration::{TopicAuth, TopicSettings};
use crate::identity::ManagedIdentityCredential;
use serde_json::Value;
use std::time::Duration;

/// The API version the publish documentation gives for custom topics.
pub const API_VERSION: &str = "2018-01-01";
/// The CloudEvents batch media type Event Grid reads.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json; charset=utf-8";
/// The audience of a managed-identity token for Event Grid.
pub const EVENT_GRID_RESOURCE: &str = "https://eventgrid.azure.net";
/// Events per request: far below the 1 MB a request may carry (an event is about 1 KB at most).
const BATCH: usize = 100;

pub struct EventGridSink {
    http: reqwest::Client,
    url: url::Url,
    auth: Auth,
}

enum Auth {
    Key(crate::configuration::Secret),
    Identity(Box<ManagedIdentityCredential>),
}

impl EventGridSink {
    pub fn new(settings: &TopicSettings, timeout: Duration) -> Self {
        let mut url = settings.endpoint.clone();
        if !url.query_pairs().any(|(name, _)| name == "api-version") {
            url.query_pairs_mut()
                .append_pair("api-version", API_VERSION);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .expect("a reqwest client with rustls and static settings always builds");
        let auth = match &settings.auth {
            TopicAuth::Key(key) => Auth::Key(key.clone()),
            TopicAuth::ManagedIdentity(identity) => {
                Auth::Identity(Box::new(ManagedIdentityCredential::new(identity)))
            }
        };
        EventGridSink { http, url, auth }
    }
}

#[async_trait::async_trait]
impl EventSink for EventGridSink {
    fn name(&self) -> &'static str {
        "eventgrid"
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    async fn deliver(&self, events: &[Value]) -> Result<(), PublishError> {
        let body = Value::from(events.to_vec()).to_string();
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
            .body(body);
        request = match &self.auth {
            Auth::Key(key) => request.header("aeg-sas-key", key.expose()),
            Auth::Identity(credential) => {
                let token = credential
                    .access_token(EVENT_GRID_RESOURCE)
                    .await
                    .map_err(|e| PublishError(format!("Event Grid token: {e}")))?;
                request.bearer_auth(token.expose())
            }
        };
        // The error text never holds the URL's query or a header: reqwest's error is reduced to
        // its kind.
        let response = request.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "could not connect or send"
            };
            PublishError(format!("Event Grid topic: {kind}"))
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(PublishError(format!(
                "Event Grid topic answered {}",
                status.as_u16()
            )))
        }
    }
}
