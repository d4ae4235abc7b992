//! A service's own fields read into the native registration body, and the finishing step that adds
//! the checks, runs `Registration::parse` and renames its errors to the Consul fields.

use super::checks::{ConsulCheckKind, ParsedCheck};
use super::fields::{endpoint_host, read_meta, read_tags, read_weight};
use super::keys::Object;
use super::names::ServiceNames;
use super::{ConsulDefaults, ConsulRegistration};
use crate::domain::{InstanceId, Registration, ServiceName, ServiceType, ValidationError};
use serde_json::{json, Map, Value};

/// Meta keys the registry derives on reads rather than stores.
const DERIVED_META: [&str; 4] = ["serviceType", "version", "scheme", "endpoint"];

/// The service's own parts, read and checked; `finish` adds the checks and builds the registration.
pub(super) struct ServiceParts {
    pub service_id: String,
    names: &'static ServiceNames,
    native: Map<String, Value>,
    meta_service_type: Option<String>,
}

pub(super) fn read_service(
    object: Object<'_>,
    names: &'static ServiceNames,
    node_address: Option<&str>,
) -> Result<ServiceParts, ValidationError> {
    if let Some(kind) = object.string("Kind", names.kind)? {
        if kind != "typical" {
            return Err(ValidationError::new(
                names.kind,
                format!(
                    "{}: only typical services can be registered here",
                    names.kind
                ),
            ));
        }
    }
    if object.string("SocketPath", names.socket_path)?.is_some() {
        return Err(ValidationError::new(
            names.socket_path,
            format!(
                "{} is not supported: give Address and Port",
                names.socket_path
            ),
        ));
    }
    let name = object.string(names.name_key, names.name)?.ok_or_else(|| {
        ValidationError::new(
            names.name,
            format!("Missing service name: {} is required", names.name),
        )
    })?;
    let name = ServiceName::parse(name).map_err(|e| rename(e, "serviceName", names.name))?;
    let service_id = object
        .string("ID", names.id)?
        .unwrap_or(name.as_str())
        .to_owned();
    let instance = (service_id != name.as_str())
        .then(|| InstanceId::parse(&service_id))
        .transpose()
        .map_err(|e| rename(e, "instanceId", names.id))?;

    let meta = read_meta(object, names)?;
    let scheme = match meta.get("scheme").and_then(Value::as_str) {
        None | Some("http") => "http",
        Some("https") => "https",
        Some(_) => {
            return Err(ValidationError::new(
                names.meta_scheme,
                format!("{} must be \"http\" or \"https\"", names.meta_scheme),
            ))
        }
    };
    let address = object.string("Address", names.address)?.or(node_address);
    let host = endpoint_host(address, names.address)?;
    let port = match object.integer("Port", names.port)? {
        Some(port) if (1..=65535).contains(&port) => port,
        _ => {
            return Err(ValidationError::new(
                names.port,
                format!(
                    "{} is required, from 1 to 65535: this registry has no agent whose port could stand in",
                    names.port
                ),
            ))
        }
    };

    let mut native = Map::new();
    native.insert("serviceName".into(), json!(name.as_str()));
    if let Some(instance) = instance {
        native.insert("instanceId".into(), json!(instance.as_str()));
    }
    native.insert(
        "endpoint".into(),
        json!(format!("{scheme}://{host}:{port}")),
    );
    native.insert("tags".into(), read_tags(object, names)?);
    if let Some(version) = meta.get("version") {
        native.insert("version".into(), version.clone());
    }
    if let Some(weight) = read_weight(object, names)? {
        native.insert("weight".into(), json!(weight));
    }
    let meta_service_type = meta
        .get("serviceType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let metadata: Map<String, Value> = meta
        .into_iter()
        .filter(|(key, _)| !DERIVED_META.contains(&key.as_str()))
        .collect();
    native.insert("metadata".into(), Value::Object(metadata));
    Ok(ServiceParts {
        names,
        native,
        service_id,
        meta_service_type,
    })
}

impl ServiceParts {
    pub(super) fn finish(
        mut self,
        parsed: Vec<ParsedCheck>,
        defaults: &ConsulDefaults,
        node: Option<String>,
    ) -> Result<ConsulRegistration, ValidationError> {
        let names = self.names;
        let service_type = match &self.meta_service_type {
            Some(text) => ServiceType::parse(text)
                .map_err(|e| rename(e, "serviceType", names.meta_service_type))?,
            None => ServiceType::parse(&defaults.service_type).map_err(|_| {
                ValidationError::new(
                    "serviceType",
                    "the configured default service type is invalid",
                )
            })?,
        };
        self.native
            .insert("serviceType".into(), json!(service_type.as_str()));
        let ttl_check = single(&parsed, |p| p.check.kind == ConsulCheckKind::Ttl)?;
        let probe_check = single(&parsed, |p| p.check.kind != ConsulCheckKind::Ttl)?;
        if let Some(ttl) = ttl_check.and_then(|p| p.ttl) {
            self.native
                .insert("ttlSeconds".into(), json!(ttl.as_secs()));
        }
        if let Some(probe) = probe_check {
            self.native
                .insert("healthEndpoint".into(), json!(probe.target));
            let mut settings = Map::new();
            settings.insert("kind".into(), json!(probe.check.kind.as_str()));
            if let Some(timeout) = probe.timeout {
                settings.insert("timeoutMs".into(), json!(timeout.as_millis() as u64));
            }
            self.native
                .insert("healthCheck".into(), Value::Object(settings));
        }
        let registration = Registration::parse(&Value::Object(self.native))
            .map_err(|e| native_error(e, names, ttl_check, probe_check))?;
        let deregister_critical_after = parsed
            .iter()
            .filter_map(|p| p.check.deregister_critical_after)
            .min();
        let probe_field = match probe_check {
            Some(p) if p.check.kind == ConsulCheckKind::Tcp => p.names.tcp,
            Some(p) => p.names.http,
            None => names.address,
        };
        Ok(ConsulRegistration {
            registration,
            service_id: self.service_id,
            checks: parsed.into_iter().map(|p| p.check).collect(),
            deregister_critical_after,
            node,
            probe_field,
        })
    }
}

/// The one check that satisfies `wanted`, or none; two are a 400 naming where the second sits.
fn single(
    parsed: &[ParsedCheck],
    wanted: impl Fn(&ParsedCheck) -> bool,
) -> Result<Option<&ParsedCheck>, ValidationError> {
    let mut matching = parsed.iter().filter(|p| wanted(p));
    let first = matching.next();
    if let Some(second) = matching.next() {
        let parent = second.names.parent;
        return Err(ValidationError::new(
            parent,
            format!(
                "{parent}: at most one TTL check and one HTTP or TCP check per service (a registration has one TTL and one health endpoint)"
            ),
        ));
    }
    Ok(first)
}

/// A native parse error, renamed to the Consul field that supplied the value.
fn native_error(
    error: ValidationError,
    names: &ServiceNames,
    ttl: Option<&ParsedCheck>,
    probe: Option<&ParsedCheck>,
) -> ValidationError {
    let probe_names = probe.map_or(names.check, |p| p.names);
    let target = match probe.map(|p| p.check.kind) {
        Some(ConsulCheckKind::Tcp) => probe_names.tcp,
        _ => probe_names.http,
    };
    let consul = match error.field {
        "serviceName" => names.name,
        "instanceId" => names.id,
        "serviceType" => names.meta_service_type,
        "endpoint" => names.address,
        "healthEndpoint" => target,
        "healthCheck.timeoutMs" => probe_names.timeout,
        "healthCheck" | "healthCheck.kind" | "healthCheck.path" => target,
        "version" => names.meta_version,
        "tags" => names.tags,
        "metadata" => names.meta,
        "ttlSeconds" => ttl.map_or(names.check.ttl, |p| p.names.ttl),
        "weight" => names.weights_passing,
        other => other,
    };
    let native = error.field;
    rename(error, native, consul)
}

/// The error with its field renamed, and the native name at the start of its message replaced.
fn rename(error: ValidationError, native: &'static str, consul: &'static str) -> ValidationError {
    let message = match error.message.strip_prefix(native) {
        Some(rest) => format!("{consul}{rest}"),
        None => error.message,
    };
    ValidationError::new(consul, message)
}
