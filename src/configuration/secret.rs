//! `Secret`: how every setting that must never reach a log line is held (connection strings,
//! keys, the identity header). Its `Debug` prints `[redacted]`, so a settings dump or an error
//! cannot leak one; only `expose` gives the value, to the code that sends it.

use std::fmt;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
