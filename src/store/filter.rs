//! The OData `$filter` a key selection becomes: the only text this handler sends to storage that is
//! built from a caller's input, so it is built here and nowhere else.

use crate::domain::{KeyRange, KeySelection};

/// An OData literal: quotes doubled. Keys are already restricted to characters that need no escaping;
/// this is the second line of defence, not the first.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `$filter` for a selection. A service name selects the recipe-style row `name` and every
/// instance row `name:<id>`: one RowKey range from `name` up to `name;` (`;` is the character
/// after `:`), so a service's instances are read in one range scan. Not an OR of the point and
/// the range, which storage evaluates as two (and Azurite row by row). The range also holds names
/// that only start with `name` and go on with a character below `:` (`name-2`, `name0`):
/// `admits` drops those after the read.
pub(super) fn filter_for(selection: &KeySelection) -> Option<String> {
    let mut clauses = Vec::new();
    if let Some(service_type) = &selection.service_type {
        clauses.push(format!(
            "PartitionKey eq {}",
            literal(service_type.as_str())
        ));
    }
    match (&selection.service_name, &selection.instance_id) {
        (Some(name), Some(instance)) => clauses.push(format!(
            "RowKey eq {}",
            literal(&format!("{name}:{instance}"))
        )),
        (Some(name), None) => clauses.push(format!(
            "RowKey ge {} and RowKey lt {}",
            literal(name.as_str()),
            literal(&format!("{name};"))
        )),
        (None, _) => {}
    }
    (!clauses.is_empty()).then(|| clauses.join(" and "))
}

/// The `$filter` for one shard's key range: one partition, a RowKey range inside it (half-open,
/// either end possibly open), so storage answers it with a range scan of one partition. The keys
/// come from a queue message, so they are quoted like any other literal.
pub(super) fn range_filter(range: &KeyRange) -> String {
    let mut filter = format!("PartitionKey eq {}", literal(&range.partition));
    if let Some(from) = &range.from {
        filter.push_str(&format!(" and RowKey ge {}", literal(from)));
    }
    if let Some(to) = &range.to {
        filter.push_str(&format!(" and RowKey lt {}", literal(to)));
    }
    filter
}

/// Whether a row the selection's filter returned is one it means: the name range also returns
/// other names that start with the selected one.
pub(super) fn admits(selection: &KeySelection, row_key: &str) -> bool {
    match (&selection.service_name, &selection.instance_id) {
        (Some(name), None) => row_key
            .strip_prefix(name.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':')),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InstanceId, ServiceName, ServiceType};

    #[test]
    fn filters_use_only_validated_keys() {
        let mut q = KeySelection::all();
        assert_eq!(filter_for(&q), None);
        q.service_type = Some(ServiceType::parse("api").unwrap());
        assert_eq!(filter_for(&q).unwrap(), "PartitionKey eq 'api'");
        q.service_type = None;
        q.service_name = Some(ServiceName::parse("svc").unwrap());
        assert_eq!(
            filter_for(&q).unwrap(),
            "RowKey ge 'svc' and RowKey lt 'svc;'"
        );
        for (row_key, meant) in [
            ("svc", true),
            ("svc:pod-1", true),
            ("svc-2", false),
            ("svc0", false),
            ("svc.x", false),
        ] {
            assert_eq!(admits(&q, row_key), meant, "{row_key}");
        }
        q.service_type = Some(ServiceType::parse("api").unwrap());
        assert_eq!(
            filter_for(&q).unwrap(),
            "PartitionKey eq 'api' and RowKey ge 'svc' and RowKey lt 'svc;'"
        );
        q.service_type = None;
        q.instance_id = Some(InstanceId::parse("pod-1").unwrap());
        assert_eq!(filter_for(&q).unwrap(), "RowKey eq 'svc:pod-1'");
        assert_eq!(literal("o'brien"), "'o''brien'");
    }

    #[test]
    fn a_shard_range_is_one_partition_and_a_half_open_row_range() {
        let range = |from: Option<&str>, to: Option<&str>| KeyRange {
            partition: "api".into(),
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        assert_eq!(range_filter(&range(None, None)), "PartitionKey eq 'api'");
        assert_eq!(
            range_filter(&range(Some("b"), Some("o'k"))),
            "PartitionKey eq 'api' and RowKey ge 'b' and RowKey lt 'o''k'"
        );
        assert_eq!(
            range_filter(&range(None, Some("m"))),
            "PartitionKey eq 'api' and RowKey lt 'm'"
        );
    }
}
