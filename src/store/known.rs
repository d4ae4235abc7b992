//! Which rows this process has seen exist: a hint, never a fact. A registration of a row the hint
//! knows starts with a read (two round trips: read, replace) instead of an insert that would be
//! refused (three: insert, read, replace); one the hint does not know starts with the insert, which
//! for a new row is the only round trip. A wrong hint costs one round trip and corrects itself, so
//! the set is bounded by emptying it, not by tracking what other replicas did.

use std::collections::HashSet;
use std::sync::Mutex;

/// More rows than this empties the set (about 100 bytes a row: a few MiB at most).
const MAX_ROWS: usize = 50_000;

#[derive(Default)]
pub(super) struct ExistingRowsHint(Mutex<HashSet<(String, String)>>);

impl ExistingRowsHint {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn contains(&self, partition_key: &str, row_key: &str) -> bool {
        self.rows()
            .contains(&(partition_key.to_owned(), row_key.to_owned()))
    }

    pub(super) fn exists(&self, partition_key: &str, row_key: &str) {
        let mut rows = self.rows();
        if rows.len() >= MAX_ROWS {
            rows.clear();
        }
        rows.insert((partition_key.to_owned(), row_key.to_owned()));
    }

    pub(super) fn gone(&self, partition_key: &str, row_key: &str) {
        self.rows()
            .remove(&(partition_key.to_owned(), row_key.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_forgets_and_stays_bounded() {
        let known = ExistingRowsHint::default();
        assert!(!known.contains("api", "a"));
        known.exists("api", "a");
        assert!(known.contains("api", "a"));
        known.gone("api", "a");
        assert!(!known.contains("api", "a"));
        for i in 0..MAX_ROWS + 1 {
            known.exists("api", &i.to_string());
        }
        assert!(known.rows().len() <= MAX_ROWS);
    }
}
