//! API keys: the configured digests, and the one comparison that decides whether a presented key
//! is one of them.
//!
//! Only SHA-256 digests are configured, so a leaked settings page or key file gives no key away.
//! A presented key is hashed and compared with every configured digest in constant time
//! (`subtle`), without stopping at the first match, so the time taken says nothing about how close
//! a guess came. Keys are long random strings (see docs/security.md), so an unsalted digest is enough:
//! there is no dictionary to try against it.

use super::caller::{Caller, Identity};
use crate::configuration::ApiKeyEntry;
use crate::domain::Grants;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub struct KeyRing {
    entries: Vec<ApiKeyEntry>,
}

impl KeyRing {
    pub fn new(entries: Vec<ApiKeyEntry>) -> Self {
        KeyRing { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller a presented key stands for, if it is one of ours.
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            if digest_matches(&digest, &entry.sha256) {
                found = Some(entry);
            }
        }
        found.map(|entry| {
            Caller::new(
                Identity::ApiKey(entry.id.clone()),
                Grants::of(entry.role, entry.scope.clone()),
            )
        })
    }
}

/// Constant-time equality of two digests: every byte is compared whatever the first difference.
pub fn digest_matches(presented: &[u8; 32], configured: &[u8; 32]) -> bool {
    presented.ct_eq(configured).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, Scope};

    fn entry(id: &str, key: &str, role: Role) -> ApiKeyEntry {
        ApiKeyEntry {
            id: id.into(),
            role,
            scope: Scope::everything(),
            sha256: Sha256::digest(key.as_bytes()).into(),
        }
    }

    #[test]
    fn the_comparison_is_subtles_and_tells_equal_from_every_kind_of_unequal() {
        let a: [u8; 32] = Sha256::digest(b"a").into();
        assert!(digest_matches(&a, &a));
        let mut first = a;
        first[0] ^= 1;
        let mut last = a;
        last[31] ^= 0x80;
        assert!(!digest_matches(&first, &a));
        assert!(!digest_matches(&last, &a));
        assert!(!digest_matches(&[0; 32], &a));
        // The same answer as subtle's own constant-time comparison, for equal and unequal input.
        for other in [a, first, last, [0; 32]] {
            assert_eq!(
                digest_matches(&other, &a),
                bool::from(other[..].ct_eq(&a[..]))
            );
        }
    }

    #[test]
    fn a_presented_key_finds_its_entry_and_nothing_else_does() {
        let ring = KeyRing::new(vec![
            entry("reader", "k-read-0123456789", Role::Read),
            entry("ops", "k-admin-0123456789", Role::Admin),
        ]);
        let caller = ring.caller("k-admin-0123456789").unwrap();
        assert_eq!(caller.identity, Identity::ApiKey("ops".into()));
        assert!(caller.grants().is_admin());
        let reader = ring.caller("k-read-0123456789").unwrap();
        assert!(!reader.grants().is_admin());
        for wrong in [
            "",
            "k-read-012345678",
            "k-read-0123456789 ",
            "K-READ-0123456789",
        ] {
            assert!(ring.caller(wrong).is_none(), "{wrong:?}");
        }
        assert!(KeyRing::new(vec![]).caller("anything").is_none());
    }
}
