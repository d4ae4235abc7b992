//! `filter=` and `node-meta=` on Consul reads: each endpoint's items as the subjects a filter
//! expression selects fields of (Consul's selectors per endpoint), and the node metadata every
//! node carries.

use super::entry::{Check, Entry};
use crate::domain::consul::{ConsulQuery, FieldValue, Filter, FilterSchema, FilterSubject};
use crate::error::ApiResult;
use std::borrow::Cow;

/// The query's `filter`, parsed for this endpoint's items; one it cannot evaluate is a 400 naming
/// `filter`, never ignored.
fn parse(query: &ConsulQuery, schema: FilterSchema) -> ApiResult<Option<Filter>> {
    Ok(query
        .filter
        .as_deref()
        .map(|text| Filter::parse(text, schema))
        .transpose()?)
}

pub fn catalog_filter(query: &ConsulQuery) -> ApiResult<Option<Filter>> {
    parse(query, FilterSchema::CatalogServiceNode)
}

pub fn health_filter(query: &ConsulQuery) -> ApiResult<Option<Filter>> {
    parse(query, FilterSchema::HealthServiceEntry)
}

pub fn check_filter(query: &ConsulQuery) -> ApiResult<Option<Filter>> {
    parse(query, FilterSchema::HealthCheck)
}

pub fn agent_filter(query: &ConsulQuery) -> ApiResult<Option<Filter>> {
    parse(query, FilterSchema::AgentService)
}

/// The metadata every node carries (one node per endpoint host).
pub const NODE_META: [(&str, &str); 2] = [("external-node", "true"), ("external-probe", "true")];

/// Whether every `node-meta=k:v` matches the nodes' metadata (the same on every node).
pub fn node_meta_matches(query: &ConsulQuery) -> bool {
    query
        .node_meta
        .iter()
        .all(|(k, v)| NODE_META.iter().any(|(nk, nv)| nk == k && nv == v))
}

fn text(s: &str) -> FieldValue<'_> {
    FieldValue::Text(Cow::Borrowed(s))
}

fn list(items: &[String]) -> FieldValue<'_> {
    FieldValue::List(items.iter().map(|s| Cow::Borrowed(s.as_str())).collect())
}

fn meta<'a>(e: &'a Entry, key: Option<&&str>) -> FieldValue<'a> {
    match key.and_then(|k| e.meta.get(*k)) {
        Some(v) => text(v),
        None => FieldValue::Missing,
    }
}

fn meta_keys(e: &Entry) -> FieldValue<'_> {
    FieldValue::List(e.meta.keys().map(|k| Cow::Borrowed(k.as_str())).collect())
}

fn node_meta_keys() -> FieldValue<'static> {
    FieldValue::List(NODE_META.iter().map(|(k, _)| Cow::Borrowed(*k)).collect())
}

fn node_meta_field(key: Option<&&str>) -> FieldValue<'static> {
    match key.and_then(|k| NODE_META.iter().find(|(nk, _)| nk == k)) {
        Some((_, v)) => text(v),
        None => FieldValue::Missing,
    }
}

/// A `CatalogService` row: `ServiceName`, `ServiceID`, `ServiceTags`, `ServiceMeta.<k>`, ...
pub struct CatalogSubject<'a>(pub &'a Entry, pub &'a str);

impl FilterSubject for CatalogSubject<'_> {
    fn field(&self, selector: &[&str]) -> FieldValue<'_> {
        let (e, dc) = (self.0, self.1);
        match selector {
            ["ServiceName"] => text(&e.name),
            ["ServiceID"] => text(&e.id),
            ["ServiceTags"] => list(&e.tags),
            ["ServiceMeta", key] => meta(e, Some(key)),
            ["ServiceMeta"] => meta_keys(e),
            ["ID"] => FieldValue::Text(Cow::Owned(e.node_id())),
            ["NodeMeta"] => node_meta_keys(),
            ["ServiceAddress"] | ["Address"] | ["Node"] => text(&e.address),
            ["ServicePort"] => FieldValue::Text(Cow::Owned(e.port.to_string())),
            ["Datacenter"] => text(dc),
            ["NodeMeta", key] => node_meta_field(Some(key)),
            _ => FieldValue::Missing,
        }
    }
}

/// A `ServiceEntry`: `Node.*`, `Service.*`, `Checks.*` (a list across the entry's checks).
pub struct HealthSubject<'a>(pub &'a Entry, pub &'a str);

impl FilterSubject for HealthSubject<'_> {
    fn field(&self, selector: &[&str]) -> FieldValue<'_> {
        let (e, dc) = (self.0, self.1);
        let checks =
            |f: fn(&Check) -> Cow<'_, str>| FieldValue::List(e.checks.iter().map(f).collect());
        match selector {
            ["Node", "Node"] | ["Node", "Address"] => text(&e.address),
            ["Node", "Datacenter"] => text(dc),
            ["Node", "Meta", key] => node_meta_field(Some(key)),
            ["Node", "Meta"] => node_meta_keys(),
            ["Node", "ID"] => FieldValue::Text(Cow::Owned(e.node_id())),
            ["Checks"] | ["Checks", "CheckID"] => checks(|c| Cow::Borrowed(c.id.as_str())),
            ["Checks", "Node"] => FieldValue::List(
                e.checks
                    .iter()
                    .map(|_| Cow::Borrowed(e.address.as_str()))
                    .collect(),
            ),
            ["Service", rest @ ..] => agent_field(e, rest),
            ["Checks", "Status"] => checks(|c| Cow::Borrowed(c.status.as_str())),
            ["Checks", "Name"] => checks(|c| Cow::Borrowed(c.name.as_str())),
            ["Checks", "Type"] => checks(|c| Cow::Borrowed(c.kind.as_str())),
            ["Checks", "ServiceName"] => FieldValue::List(
                e.checks
                    .iter()
                    .map(|_| Cow::Borrowed(e.name.as_str()))
                    .collect(),
            ),
            ["Checks", "ServiceID"] => FieldValue::List(
                e.checks
                    .iter()
                    .map(|_| Cow::Borrowed(e.id.as_str()))
                    .collect(),
            ),
            _ => FieldValue::Missing,
        }
    }
}

/// An `AgentService`: `ID`, `Service`, `Tags`, `Meta.<k>`, `Address`, `Port`.
pub struct AgentSubject<'a>(pub &'a Entry);

impl FilterSubject for AgentSubject<'_> {
    fn field(&self, selector: &[&str]) -> FieldValue<'_> {
        agent_field(self.0, selector)
    }
}

fn agent_field<'a>(e: &'a Entry, selector: &[&str]) -> FieldValue<'a> {
    {
        match selector {
            ["ID"] => text(&e.id),
            ["Service"] => text(&e.name),
            ["Tags"] => list(&e.tags),
            ["Meta", key] => meta(e, Some(key)),
            ["Meta"] => meta_keys(e),
            ["Address"] => text(&e.address),
            ["Port"] => FieldValue::Text(Cow::Owned(e.port.to_string())),
            _ => FieldValue::Missing,
        }
    }
}

/// A `HealthCheck`: `Node`, `CheckID`, `Name`, `Status`, `ServiceID`, `ServiceName`, `ServiceTags`.
pub struct CheckSubject<'a>(pub &'a Entry, pub &'a Check);

impl FilterSubject for CheckSubject<'_> {
    fn field(&self, selector: &[&str]) -> FieldValue<'_> {
        let (e, c) = (self.0, self.1);
        match selector {
            ["Node"] => text(&e.address),
            ["CheckID"] => text(&c.id),
            ["Name"] => text(&c.name),
            ["Status"] => text(c.status.as_str()),
            ["Type"] => text(&c.kind),
            ["ServiceID"] => text(&e.id),
            ["ServiceName"] => text(&e.name),
            ["ServiceTags"] => list(&e.tags),
            ["Notes"] => text(""),
            ["Output"] => text(&c.output),
            _ => FieldValue::Missing,
        }
    }
}
