//! How a Consul write by ID finds its rows: in the catalog snapshot, among the rows the caller may
//! write, and once more from a fresh storage read when the snapshot has none.
//!
//! The snapshot is this process's view, up to the read cache's TTL old: a registration made
//! through another instance within that time is not in it. Answering "unknown" then would make a
//! deregistration a `200` that removes nothing and a TTL pass a `404`, so a miss drops this
//! process's cached reads and asks again. That costs one read of both tables, as a registration
//! through this instance does (a writer can already cause that), and only on a miss.

use super::super::entry::Entry;
use super::super::snapshot::Catalog;
use super::super::AppState;
use crate::domain::InstanceKey;
use crate::error::{ApiError, ApiResult};
use crate::security::Caller;

/// The entries `find` picks that `caller` may write, from the snapshot or, when it has none, from
/// a snapshot rebuilt from a fresh storage read.
pub(super) async fn writable_rows(
    state: &AppState,
    caller: &Caller,
    find: impl Fn(&Catalog) -> Vec<&Entry>,
) -> ApiResult<Vec<Entry>> {
    let catalog = &super::consul(state).catalog;
    let snapshot = catalog.current().await?;
    let found = writable(caller, find(&snapshot));
    if !found.is_empty() {
        return Ok(found.into_iter().cloned().collect());
    }
    state.store.read_afresh();
    let snapshot = catalog.current().await?;
    Ok(writable(caller, find(&snapshot))
        .into_iter()
        .cloned()
        .collect())
}

/// The entries among `found` this caller may write. A call by ID sees only these: an ID held only
/// in another scope answers as an unknown one (a deregister does nothing, a check update is a 404),
/// so a caller learns nothing of other scopes' IDs and cannot act on them, and a squatter's row
/// with someone else's ID does not make that owner's calls ambiguous.
pub(super) fn writable<'a>(caller: &Caller, found: Vec<&'a Entry>) -> Vec<&'a Entry> {
    found
        .into_iter()
        .filter(
            |e| match InstanceKey::from_stored(&e.partition_key, &e.row_key) {
                Ok(key) => caller.may_write(&key).is_ok(),
                // Kept for a caller that may write everything, which `key_of` then refuses (400).
                Err(_) => caller.grants().write_scope().is_everything(),
            },
        )
        .collect()
}

/// The row one entry is.
pub(super) fn key_of(entry: &Entry) -> ApiResult<InstanceKey> {
    InstanceKey::from_stored(&entry.partition_key, &entry.row_key).map_err(|_| {
        ApiError::bad_request(
            "ID",
            format!(
                "the registration with ID {} has keys this registry cannot address",
                entry.id
            ),
        )
    })
}
