//! Health-change events: where the sweep publishes its transitions (`HEALTH_EVENTS_QUEUE`, a
//! Storage Queue in the registry's own storage account; optionally an Event Grid topic), what the
//! events name as their source, and how long publishing may take after a sweep's writes.
//! Without `HEALTH_EVENTS_QUEUE` and `HEALTH_EVENTS_TOPIC_ENDPOINT` nothing is published; the
//! recent transitions are still kept for `GET /api/Sweep`.

use super::environment::Environment;
use super::{ConfigError, Secret};
use std::time::Duration;

pub const QUEUE_VAR: &str = "HEALTH_EVENTS_QUEUE";
pub const TOPIC_ENDPOINT_VAR: &str = "HEALTH_EVENTS_TOPIC_ENDPOINT";
pub const TOPIC_KEY_VAR: &str = "HEALTH_EVENTS_TOPIC_KEY";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// The Storage Queue every event is put on (a valid queue name).
    pub queue: Option<String>,
    /// The Event Grid topic, when events also go there.
    pub topic: Option<TopicSettings>,
    /// The CloudEvents `source` of every event (`HEALTH_EVENTS_SOURCE`, default `/service-registry`).
    pub source: String,
    /// The most publishing may take after a sweep's writes (`HEALTH_EVENTS_PUBLISH_TIMEOUT_MS`,
    /// default 10 s); what is not delivered by then waits in the outbox for the next sweep.
    pub publish_timeout: Duration,
    /// The most events the outbox keeps (`HEALTH_EVENTS_OUTBOX_MAX`, default 1,000); beyond it the
    /// oldest are dropped and counted.
    pub outbox_max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    /// The topic's endpoint, `https://<topic>.<region>-1.eventgrid.azure.net/api/events` (`http://`
    /// only for a loopback address: the tests' imitation).
    pub endpoint: url::Url,
    pub auth: TopicAuth,
}

/// How the topic is told who publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicAuth {
    /// The topic's access key (`HEALTH_EVENTS_TOPIC_KEY`), sent as the `aeg-sas-key` header.
    Key(Secret),
    /// No key: a managed-identity token for `https://eventgrid.azure.net` (the identity needs the
    /// `EventGrid Data Sender` role on the topic).
    ManagedIdentity(super::IdentitySettings),
}

impl EventSettings {
    /// Whether any destination is configured.
    pub fn publishes(&self) -> bool {
        self.queue.is_some() || self.topic.is_some()
    }
}

pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
) -> Result<EventSettings, ConfigError> {
    let queue = match env.text(QUEUE_VAR) {
        None => None,
        Some(name) => Some(queue_name(&name).map_err(|reason| ConfigError::Invalid {
            variable: QUEUE_VAR.into(),
            reason,
        })?),
    };
    let topic = match env.text(TOPIC_ENDPOINT_VAR) {
        None => None,
        Some(text) => Some(TopicSettings {
            endpoint: topic_endpoint(&text).map_err(|reason| ConfigError::Invalid {
                variable: TOPIC_ENDPOINT_VAR.into(),
                reason,
            })?,
            auth: match env.text(TOPIC_KEY_VAR) {
                Some(key) => TopicAuth::Key(Secret::new(key)),
                None => TopicAuth::ManagedIdentity(super::identity::settings(
                    env,
                    Duration::from_secs(10),
                )?),
            },
        }),
    };
    let outbox_max = env.count("HEALTH_EVENTS_OUTBOX_MAX", 1_000)?;
    Ok(EventSettings {
        queue,
        topic,
        source: env
            .text("HEALTH_EVENTS_SOURCE")
            .unwrap_or_else(|| "/service-registry".to_owned()),
        publish_timeout: env.millis("HEALTH_EVENTS_PUBLISH_TIMEOUT_MS", 10_000)?,
        outbox_max: outbox_max as usize,
    })
}

/// Azure Storage's queue-name rule: 3 to 63 characters, lowercase letters, digits and hyphens,
/// starting and ending with a letter or digit, no two hyphens in a row. The reason never quotes
/// the value.
pub fn queue_name(name: &str) -> Result<String, String> {
    let length = name.chars().count();
    if !(3..=63).contains(&length) {
        return Err(format!("a queue name has 3 to 63 characters, not {length}"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("a queue name holds only lowercase letters, digits and hyphens".into());
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(
            "a queue name starts and ends with a letter or digit and has no two hyphens in a row"
                .into(),
        );
    }
    Ok(name.to_owned())
}

/// An `https://` URL, or `http://` to a loopback address (the tests' imitation of Event Grid).
fn topic_endpoint(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|_| "not an absolute URL".to_owned())?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("must be an https:// URL (http:// only to a loopback address)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<EventSettings, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = Environment::new(move |name: &str| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        });
        settings(&env)
    }

    #[test]
    fn nothing_set_publishes_nothing() {
        let s = read(&[]).unwrap();
        assert!(!s.publishes());
        assert_eq!(s.source, "/service-registry");
        assert_eq!(s.publish_timeout, Duration::from_secs(10));
        assert_eq!(s.outbox_max, 1_000);
    }

    #[test]
    fn a_valid_queue_name_is_taken() {
        for name in ["abc", "health-events", "q1-2-3", &"a".repeat(63)] {
            let s = read(&[(QUEUE_VAR, name)]).unwrap();
            assert_eq!(s.queue.as_deref(), Some(name));
            assert!(s.publishes());
        }
    }

    #[test]
    fn an_invalid_queue_name_names_the_variable_not_the_value() {
        for name in [
            "ab",
            "Health",
            "a_b",
            "-ab",
            "ab-",
            "a--b",
            &"a".repeat(64),
            "évé",
        ] {
            let e = read(&[(QUEUE_VAR, name)]).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with("HEALTH_EVENTS_QUEUE is invalid: "),
                "{text}"
            );
            assert!(!text.contains(name), "{text}");
        }
    }

    #[test]
    fn the_topic_is_https_or_loopback_http() {
        let s = read(&[
            (
                TOPIC_ENDPOINT_VAR,
                "https://t.westeurope-1.eventgrid.azure.net/api/events",
            ),
            (TOPIC_KEY_VAR, "c2VjcmV0"),
        ])
        .unwrap();
        let topic = s.topic.unwrap();
        assert!(matches!(topic.auth, TopicAuth::Key(key) if key.expose() == "c2VjcmV0"));
        let local = read(&[(TOPIC_ENDPOINT_VAR, "http://127.0.0.1:9/api/events")]).unwrap();
        let auth = local.topic.unwrap().auth;
        assert!(matches!(auth, TopicAuth::ManagedIdentity(_)));
        for bad in [
            "http://example.com/api/events",
            "not a url",
            "ftp://127.0.0.1/",
        ] {
            let e = read(&[(TOPIC_ENDPOINT_VAR, bad)]).unwrap_err().to_string();
            assert!(
                e.starts_with("HEALTH_EVENTS_TOPIC_ENDPOINT is invalid"),
                "{e}"
            );
        }
    }
}
