//! The logger's settings: `RUST_LOG` as given, and whether lines are JSON (`RUST_LOG_FORMAT`).

use super::environment::Environment;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// `RUST_LOG` as given; `None` (or a filter that does not parse) means the default.
    pub filter: Option<String>,
    /// `RUST_LOG_FORMAT=json`: one JSON object per line.
    pub json: bool,
}

/// Never fails: a filter that does not parse falls back to the default where it is used.
pub(super) fn settings(env: &Environment<impl Fn(&str) -> Option<String>>) -> TelemetrySettings {
    TelemetrySettings {
        filter: env.raw("RUST_LOG"),
        json: env
            .raw("RUST_LOG_FORMAT")
            .is_some_and(|v| v.eq_ignore_ascii_case("json")),
    }
}
