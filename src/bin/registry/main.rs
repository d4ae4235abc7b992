//! `registry`: the service registry's command-line client and sidecar agent.
//!
//! A second binary beside `handler`, sharing nothing with it but the HTTP API: it reads its own
//! flags and environment (`REGISTRY_URL`, `REGISTRY_KEY`, `REGISTRY_TOKEN`) through clap, so the
//! handler's `configuration` module stays the handler's only environment reader. Exit codes:
//! 0 done, 1 the registry refused or could not be reached, 2 bad command line (clap's own).

mod agent;
mod client;
mod output;
mod watch;

use clap::{Args, Parser, Subcommand, ValueEnum};
use client::{Client, Credential, Failure};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "registry",
    version,
    about = "Client and sidecar agent for the service registry"
)]
struct Cli {
    /// The registry's base URL (the part before /api).
    #[arg(
        long,
        env = "REGISTRY_URL",
        default_value = "http://127.0.0.1:7071",
        global = true
    )]
    url: String,
    /// A function key or API key, sent as `x-functions-key`.
    #[arg(
        long,
        env = "REGISTRY_KEY",
        hide_env_values = true,
        global = true,
        conflicts_with = "token"
    )]
    key: Option<String>,
    /// A bearer token (an API key or an Entra access token), sent as `Authorization: Bearer`.
    #[arg(long, env = "REGISTRY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// How answers are printed.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    /// Seconds each request may take.
    #[arg(long, default_value_t = 10, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Register (or re-register) a service or an instance.
    Register(Registration),
    /// Move an existing registration's lastHeartbeat.
    Heartbeat(Key),
    /// Delete one registration.
    Deregister(Key),
    /// List matching instances with their health.
    Discover(Filters),
    /// Choose one instance of a service to call.
    Resolve(Filters),
    /// Poll discovery (with If-None-Match) and print instances added, removed or changed.
    Watch(watch::WatchArgs),
    /// Register a local service, keep it alive with heartbeats, deregister on SIGTERM/SIGINT.
    Agent(agent::AgentArgs),
}

/// Which registration a command is about.
#[derive(Args, Clone)]
pub struct Key {
    #[arg(long = "name")]
    pub service_name: String,
    #[arg(long = "type")]
    pub service_type: Option<String>,
    #[arg(long = "instance")]
    pub instance_id: Option<String>,
}

impl Key {
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("serviceName".into(), json!(self.service_name));
        if let Some(t) = &self.service_type {
            body.insert("serviceType".into(), json!(t));
        }
        if let Some(i) = &self.instance_id {
            body.insert("instanceId".into(), json!(i));
        }
        Value::Object(body)
    }

    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("serviceName", self.service_name.clone())];
        if let Some(t) = &self.service_type {
            query.push(("serviceType", t.clone()));
        }
        if let Some(i) = &self.instance_id {
            query.push(("instanceId", i.clone()));
        }
        query
    }
}

/// A registration body, field by field as docs/api.md's `POST /api/ServiceRegistrar` table has them.
#[derive(Args, Clone)]
pub struct Registration {
    #[command(flatten)]
    pub key: Key,
    #[arg(long)]
    pub endpoint: String,
    #[arg(long)]
    pub health_endpoint: Option<String>,
    #[arg(long = "service-version")]
    pub version: Option<String>,
    /// Repeatable.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// `key=value`, repeatable; the value is sent as a string.
    #[arg(long = "meta", value_parser = parse_pair)]
    pub metadata: Vec<(String, String)>,
    /// Seconds after the last heartbeat at which the registration expires.
    #[arg(long = "ttl")]
    pub ttl_seconds: Option<u32>,
    #[arg(long)]
    pub weight: Option<u32>,
}

impl Registration {
    pub fn body(&self) -> Value {
        let mut body = self.key.body();
        let object = body.as_object_mut().expect("an object");
        object.insert("endpoint".into(), json!(self.endpoint));
        let optional = [
            (
                "healthEndpoint",
                self.health_endpoint.as_ref().map(|v| json!(v)),
            ),
            ("version", self.version.as_ref().map(|v| json!(v))),
            ("ttlSeconds", self.ttl_seconds.map(|v| json!(v))),
            ("weight", self.weight.map(|v| json!(v))),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                object.insert(name.into(), value);
            }
        }
        if !self.tags.is_empty() {
            object.insert("tags".into(), json!(self.tags));
        }
        if !self.metadata.is_empty() {
            let metadata: Map<String, Value> = self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            object.insert("metadata".into(), Value::Object(metadata));
        }
        body
    }
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

/// Discovery's and the resolver's filters.
#[derive(Args, Clone, Default)]
pub struct Filters {
    #[arg(long = "name")]
    pub service_name: Option<String>,
    #[arg(long = "type")]
    pub service_type: Option<String>,
    #[arg(long = "instance")]
    pub instance_id: Option<String>,
    /// Repeatable: instances carrying all of these tags.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// `key=value`, repeatable.
    #[arg(long = "meta")]
    pub metadata: Vec<String>,
    #[arg(long = "service-version")]
    pub version: Option<String>,
    /// Only instances whose last health check passed (discovery).
    #[arg(long)]
    pub healthy_only: bool,
    /// Also instances whose TTL lapsed (discovery).
    #[arg(long)]
    pub include_expired: bool,
}

impl Filters {
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![];
        let single = [
            ("serviceName", &self.service_name),
            ("serviceType", &self.service_type),
            ("instanceId", &self.instance_id),
            ("version", &self.version),
        ];
        for (name, value) in single {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        query.extend(self.tags.iter().map(|t| ("tags", t.clone())));
        query.extend(self.metadata.iter().map(|m| ("metadata", m.clone())));
        if self.healthy_only {
            query.push(("healthyOnly", "true".into()));
        }
        if self.include_expired {
            query.push(("includeExpired", "true".into()));
        }
        query
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let credential = match (cli.key.clone(), cli.token.clone()) {
        (Some(key), _) if !key.is_empty() => Credential::Key(key),
        (_, Some(token)) if !token.is_empty() => Credential::Token(token),
        _ => Credential::None,
    };
    let client = match Client::new(
        &cli.url,
        credential,
        Duration::from_secs(cli.timeout.max(1)),
    ) {
        Ok(client) => client,
        Err(why) => {
            eprintln!("registry: {why}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Register(registration) => {
            let body = registration.body();
            client
                .call(Method::POST, "ServiceRegistrar", &[], Some(&body), None)
                .await
                .map(|a| output::message(cli.output, &a.body))
        }
        Command::Heartbeat(key) => client
            .call(
                Method::POST,
                "ServiceHeartbeat",
                &[],
                Some(&key.body()),
                None,
            )
            .await
            .map(|a| output::message(cli.output, &a.body)),
        Command::Deregister(key) => client
            .call(Method::DELETE, "ServiceRegistrar", &key.query(), None, None)
            .await
            .map(|a| output::message(cli.output, &a.body)),
        Command::Discover(filters) => client
            .call(
                Method::GET,
                "ServiceDiscovery",
                &filters.query(),
                None,
                None,
            )
            .await
            .map(|a| output::discovery(cli.output, &a.body)),
        Command::Resolve(filters) => client
            .call(Method::GET, "ServiceResolver", &filters.query(), None, None)
            .await
            .map(|a| output::resolved(cli.output, &a.body)),
        Command::Watch(args) => watch::run(&client, cli.output, args).await,
        Command::Agent(args) => return agent::run(&client, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(cli.output, &failure);
            ExitCode::FAILURE
        }
    }
}

/// A failure on stderr: the registry's own JSON error as it came with `--output json`, a line otherwise.
fn report(format: Output, failure: &Failure) {
    match (format, failure) {
        (Output::Json, Failure::Refused { status, body, .. }) => {
            eprintln!("{}", json!({"status": status.as_u16(), "body": body}));
        }
        _ => eprintln!("registry: {failure}"),
    }
}
