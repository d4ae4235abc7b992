//! The API keys the keyed tests run with (a reader, a writer for type `api`, a writer for names
//! starting with `orders-`, an admin), the key table that grants them, and a standalone handler
//! configured with it (`HandlerConfig::with_keys`).

use super::{HandlerConfig, Mode};
use sha2::{Digest, Sha256};

pub const READER: &str = "rk-3f9a1c0d7e2b4a6c8e0f1a3b5c7d9e1f";
pub const WRITER: &str = "wk-8b2d4f6a0c1e3a5c7e9b1d3f5a7c9e0b";
pub const PREFIXED: &str = "pk-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d";
pub const ADMIN: &str = "ak-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

pub fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key table these tests run with: a reader of everything, a writer for type `api`, a writer
/// for names starting with `orders-` in any type, and an admin.
pub fn key_lines() -> String {
    format!(
        "reader read * {}\nwriter write api {}\nprefixed write *:orders-* {}\nops admin * {}",
        sha256_hex(READER),
        sha256_hex(WRITER),
        sha256_hex(PREFIXED),
        sha256_hex(ADMIN)
    )
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

impl HandlerConfig {
    /// Standalone, shared Azurite, fresh tables, and `REGISTRY_API_KEYS` set to `key_lines()`.
    pub fn with_keys() -> HandlerConfig {
        HandlerConfig::new(Mode::Standalone).env("REGISTRY_API_KEYS", &key_lines())
    }
}
