//! One source's linkers as the sync keeps them while its pages arrive: each item is classified as
//! it is read and only what reconciliation needs stays, so a source costs its mapped linkers (one
//! `Linker` per row key, the first listed) and a handful of counters, not its listing.
//!
//! Skipped linkers are counted per reason and reported as one line per source and sync (the
//! `summary`); each one is a debug line only, so a listing of a million unmapped linkers logs one
//! line, not a million.

use super::linkers::{self, Key, Linker, LinkerItem, Reason, Skip};
use crate::configuration::AppId;
use std::collections::BTreeMap;

/// How many linkers were skipped, per reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub not_azure_resource: usize,
    pub unmapped: usize,
    pub invalid: usize,
    pub held: usize,
    pub malformed: usize,
}

impl Skipped {
    pub fn add(&mut self, reason: Reason) {
        *match reason {
            Reason::NotAzureResource => &mut self.not_azure_resource,
            Reason::Unmapped => &mut self.unmapped,
            Reason::Invalid => &mut self.invalid,
            Reason::Held => &mut self.held,
            Reason::Malformed => &mut self.malformed,
        } += 1;
    }

    pub fn total(&self) -> usize {
        self.not_azure_resource + self.unmapped + self.invalid + self.held + self.malformed
    }

    /// The one line a source's skipped linkers get: the total and each reason that occurred.
    pub fn summary(&self, source: &AppId) -> String {
        let reasons: Vec<String> = [
            (self.not_azure_resource, "target not an Azure resource"),
            (self.unmapped, "target type not mapped"),
            (self.invalid, "target makes no valid registration"),
            (self.held, "key registered by a person or client"),
            (self.malformed, "malformed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        format!(
            "Service Connector sync: skipped {} linkers of {source} ({})",
            self.total(),
            reasons.join(", ")
        )
    }
}

/// A source's listing, reduced as it is read.
pub struct SourceLinkers {
    pub source: AppId,
    /// The linkers that make a row, by key: the first listed for each key.
    pub wanted: BTreeMap<Key, Linker>,
    pub skipped: Skipped,
    /// Every item listed, kept or not.
    pub items: usize,
}

impl SourceLinkers {
    pub fn new(source: AppId) -> Self {
        SourceLinkers {
            source,
            wanted: BTreeMap::new(),
            skipped: Skipped::default(),
            items: 0,
        }
    }

    /// One item as its page hands it over (`None`: not a linker's shape).
    pub fn add(&mut self, item: Option<LinkerItem>) {
        self.items += 1;
        let parsed = linkers::parse_linker(item).and_then(|linker| {
            let registration = linkers::registration(&linker, self.source.as_str())?;
            Ok((linkers::key_of(&registration), linker))
        });
        match parsed {
            Ok((key, linker)) => {
                self.wanted.entry(key).or_insert(linker);
            }
            Err(skip) => self.skip(skip),
        }
    }

    /// Counts a skipped linker; its detail is a debug line.
    pub fn skip(&mut self, skip: Skip) {
        self.skipped.add(skip.reason);
        tracing::debug!(function = "HealthMonitor", source = %self.source, linker = skip.linker_id.as_deref().unwrap_or(""), "Service Connector sync: linker skipped: {}", skip.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const APP: &str =
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Web/sites/app";

    fn item(target: serde_json::Value) -> Option<LinkerItem> {
        serde_json::from_value(json!({"id": format!("{APP}/providers/Microsoft.ServiceLinker/linkers/l"), "properties": {"targetService": target}})).ok()
    }

    #[test]
    fn a_listing_keeps_one_linker_per_key_and_counts_the_rest_by_reason() {
        let mut listed = SourceLinkers::new(AppId::parse(APP).unwrap());
        let redis = json!({"type": "AzureResource", "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Cache/redis/c1"});
        listed.add(item(redis.clone()));
        listed.add(item(redis));
        for _ in 0..3 {
            listed.add(item(json!({"type": "SelfHostedServer", "endpoint": "x"})));
        }
        listed.add(item(json!({"type": "AzureResource", "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.AppConfiguration/configurationStores/c"})));
        listed.add(None);
        assert_eq!(listed.items, 7);
        assert_eq!(
            listed.wanted.keys().collect::<Vec<_>>(),
            [&("redis".to_owned(), "c1".to_owned())]
        );
        assert_eq!(
            listed.skipped,
            Skipped {
                not_azure_resource: 3,
                unmapped: 1,
                malformed: 1,
                ..Skipped::default()
            }
        );
        assert_eq!(
            listed.skipped.summary(&listed.source),
            format!("Service Connector sync: skipped 5 linkers of {APP} (3 target not an Azure resource, 1 target type not mapped, 1 malformed)")
        );
    }
}
