//! Consul's JSON shapes, as typed structs: what Go clients decode into (`hashicorp/consul/api`), so
//! `Port` is always an integer, `Meta` always string to string, `Tags` always an array.
//!
//! Field names and nesting follow Consul's API docs and Go types (`api/agent.go`, `api/catalog.go`,
//! `api/health.go`); fields no client here reads are left out unless a Go struct needs them to be
//! the right type.

use super::entry::{Check, Entry};
use serde::Serialize;
use std::collections::BTreeMap;

/// The node every entry sits on: one per endpoint host ("external node").
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node<'a> {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: &'a str,
    pub address: &'a str,
    pub datacenter: &'a str,
    pub tagged_addresses: BTreeMap<&'static str, &'a str>,
    pub meta: BTreeMap<&'static str, &'static str>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceAddress<'a> {
    pub address: &'a str,
    pub port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

/// `AgentService`: `Service` of a health entry, and each value of `/v1/agent/services`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentService<'a> {
    pub kind: &'static str,
    #[serde(rename = "ID")]
    pub id: &'a str,
    pub service: &'a str,
    pub tags: &'a [String],
    pub meta: &'a BTreeMap<String, String>,
    pub port: u16,
    pub address: &'a str,
    pub tagged_addresses: BTreeMap<&'static str, ServiceAddress<'a>>,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub datacenter: &'a str,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `HealthCheck`: each of a health entry's `Checks`, and `/v1/health/checks`, `/v1/health/state`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck<'a> {
    pub node: &'a str,
    #[serde(rename = "CheckID")]
    pub check_id: &'a str,
    pub name: &'a str,
    pub status: &'static str,
    pub notes: &'static str,
    pub output: &'a str,
    #[serde(rename = "ServiceID")]
    pub service_id: &'a str,
    pub service_name: &'a str,
    pub service_tags: &'a [String],
    #[serde(rename = "Type")]
    pub kind: &'a str,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `ServiceEntry`: one item of `/v1/health/service/<name>`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceEntry<'a> {
    pub node: Node<'a>,
    pub service: AgentService<'a>,
    pub checks: Vec<HealthCheck<'a>>,
}

/// `CatalogService`: one item of `/v1/catalog/service/<name>`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogService<'a> {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: &'a str,
    pub address: &'a str,
    pub datacenter: &'a str,
    pub tagged_addresses: BTreeMap<&'static str, &'a str>,
    pub node_meta: BTreeMap<&'static str, &'static str>,
    #[serde(rename = "ServiceID")]
    pub service_id: &'a str,
    pub service_name: &'a str,
    pub service_address: &'a str,
    pub service_tags: &'a [String],
    pub service_meta: &'a BTreeMap<String, String>,
    pub service_port: u16,
    pub service_weights: Weights,
    pub service_tagged_addresses: BTreeMap<&'static str, ServiceAddress<'a>>,
    pub service_enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

fn node_meta() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([("external-node", "true"), ("external-probe", "true")])
}

fn lan_wan(address: &str) -> BTreeMap<&'static str, &str> {
    BTreeMap::from([("lan", address), ("wan", address)])
}

fn service_lan_wan(e: &Entry) -> BTreeMap<&'static str, ServiceAddress<'_>> {
    let at = || ServiceAddress {
        address: &e.address,
        port: e.port,
    };
    BTreeMap::from([("lan", at()), ("wan", at())])
}

fn weights(e: &Entry) -> Weights {
    Weights {
        passing: e.weight,
        warning: 1,
    }
}

pub fn node<'a>(e: &'a Entry, datacenter: &'a str) -> Node<'a> {
    Node {
        id: e.node_id(),
        node: &e.address,
        address: &e.address,
        datacenter,
        tagged_addresses: lan_wan(&e.address),
        meta: node_meta(),
        create_index: e.create_index,
        modify_index: e.create_index,
    }
}

pub fn agent_service<'a>(e: &'a Entry, datacenter: &'a str) -> AgentService<'a> {
    AgentService {
        kind: "",
        id: &e.id,
        service: &e.name,
        tags: &e.tags,
        meta: &e.meta,
        port: e.port,
        address: &e.address,
        tagged_addresses: service_lan_wan(e),
        weights: weights(e),
        enable_tag_override: false,
        datacenter,
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

pub fn health_check<'a>(e: &'a Entry, check: &'a Check) -> HealthCheck<'a> {
    HealthCheck {
        node: &e.address,
        check_id: &check.id,
        name: &check.name,
        status: check.status.as_str(),
        notes: "",
        output: &check.output,
        service_id: &e.id,
        service_name: &e.name,
        service_tags: &e.tags,
        kind: &check.kind,
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

pub fn service_entry<'a>(e: &'a Entry, datacenter: &'a str) -> ServiceEntry<'a> {
    ServiceEntry {
        node: node(e, datacenter),
        service: agent_service(e, datacenter),
        checks: e.checks.iter().map(|c| health_check(e, c)).collect(),
    }
}

pub fn catalog_service<'a>(e: &'a Entry, datacenter: &'a str) -> CatalogService<'a> {
    CatalogService {
        id: e.node_id(),
        node: &e.address,
        address: &e.address,
        datacenter,
        tagged_addresses: lan_wan(&e.address),
        node_meta: node_meta(),
        service_id: &e.id,
        service_name: &e.name,
        service_address: &e.address,
        service_tags: &e.tags,
        service_meta: &e.meta,
        service_port: e.port,
        service_weights: weights(e),
        service_tagged_addresses: service_lan_wan(e),
        service_enable_tag_override: false,
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}
