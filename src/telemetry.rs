//! Logging: one structured line per request and per sweep, on stdout (the Functions host captures a
//! custom handler's stdout into its own logs).
//!
//! `RUST_LOG` sets the level (default `info`), `RUST_LOG_FORMAT=json` switches to one JSON object per
//! line for log pipelines (both read by `configuration` into `TelemetrySettings`). Nothing logged may carry a secret: request lines hold the path only (the
//! query can hold the function key `code`), and free text from errors goes through `redact` first.

use crate::configuration::TelemetrySettings;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer};

/// Crates that print request headers at debug and trace: a SharedKey `Authorization` header is a
/// signature made with the account key, and a SAS request URL carries `sig`.
const CHATTY_CRATES: [&str; 6] = [
    "azure_core",
    "azure_storage",
    "azure_data_tables",
    "reqwest",
    "hyper",
    "hyper_util",
];

pub fn init(settings: &TelemetrySettings) {
    // RUST_LOG chooses what to see (default: info, and warn for the chatty crates). A second filter,
    // which RUST_LOG cannot loosen, caps the chatty crates at info: `RUST_LOG=azure_core::http_client=debug`
    // names a more specific target than any cap added to the same EnvFilter, so the cap has to be
    // a separate filter combined with `and`.
    let wanted = settings
        .filter
        .as_deref()
        .and_then(|filter| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| {
            CHATTY_CRATES
                .iter()
                .fold(EnvFilter::new("info"), |filter, target| {
                    filter.add_directive(
                        format!("{target}=warn")
                            .parse()
                            .expect("a static directive parses"),
                    )
                })
        });
    let cap = never_below_info();
    let json = settings.json;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let layer = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .with_writer(std::io::stdout)
            .boxed()
    } else {
        fmt::layer()
            .compact()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(std::io::stdout)
            .boxed()
    };
    // A second init (tests) is harmless.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(wanted.and(cap)))
        .try_init();
}

/// Everything passes except the chatty crates below info, whatever their module path.
fn never_below_info() -> Targets {
    CHATTY_CRATES.iter().fold(
        Targets::new().with_default(Level::TRACE),
        |targets, name| targets.with_target(*name, Level::INFO),
    )
}

/// Secret-bearing parameters of storage connection strings, SAS URLs, Functions requests and
/// managed-identity token requests and answers.
const SECRET_NAMES: [&str; 9] = [
    "accountkey",
    "sharedaccesssignature",
    "sig",
    "code",
    "x-functions-key",
    "password",
    "access_token",
    "x-identity-header",
    "identity_header",
];

/// Replaces the value of every `name=value` pair whose name is secret-bearing, whether it sits in a
/// connection string (`;`-separated), a URL query (`&`-separated) or free text, and the token after
/// every `Bearer `.
pub fn redact(text: &str) -> String {
    redact_bearer(&redact_pairs(text))
}

fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        out.push_str(before);
        out.push('=');
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(0, |i| i + 1);
        let name = before[name_start..].to_ascii_lowercase();
        let value = &after[1..];
        if SECRET_NAMES.contains(&name.as_str()) {
            let end = value
                .find([';', '&', ' ', '"', '\'', ',', ')', '\n'])
                .unwrap_or(value.len());
            out.push_str("[redacted]");
            rest = &value[end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    out
}

/// `Bearer <token>` (an `Authorization` header quoted in an error) keeps the word, loses the token.
/// A token is a run of RFC 6750 `b64token` characters long enough to be one (Entra's are hundreds
/// long), so prose such as "bearer token:" is left alone.
fn redact_bearer(text: &str) -> String {
    const WORD: &str = "bearer ";
    const MIN_TOKEN_LEN: usize = 20;
    let is_token_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.to_ascii_lowercase().find(WORD) {
        let value_start = at + WORD.len();
        out.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        let end = value.find(|c| !is_token_char(c)).unwrap_or(value.len());
        if end >= MIN_TOKEN_LEN {
            out.push_str("[redacted]");
            rest = &value[end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    out
}

/// An error and its causes in one line (reqwest's own text is only "error sending request").
/// Callers redact it (`redact`) before it reaches a log line or a response.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{never_below_info, redact};
    use tracing::Level;

    #[test]
    fn the_cap_holds_for_submodules_of_the_chatty_crates() {
        let cap = never_below_info();
        assert!(!cap.would_enable("azure_core::http_client", &Level::DEBUG));
        assert!(!cap.would_enable("reqwest::connect", &Level::TRACE));
        assert!(cap.would_enable("azure_core::http_client", &Level::INFO));
        assert!(cap.would_enable("service_registry::health", &Level::DEBUG));
    }

    #[test]
    fn hides_keys_signatures_and_function_codes() {
        let text =
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc+/==;EndpointSuffix=x";
        assert_eq!(
            redact(text),
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=[redacted];EndpointSuffix=x"
        );
        assert_eq!(
            redact("GET https://a.table.core.windows.net/T()?sv=1&sig=s3cr%2Bt&se=2 failed"),
            "GET https://a.table.core.windows.net/T()?sv=1&sig=[redacted]&se=2 failed"
        );
        assert_eq!(
            redact("/api/ServiceDiscovery?code=k3y"),
            "/api/ServiceDiscovery?code=[redacted]"
        );
        assert_eq!(
            redact(
                r#"Authorization: Bearer eyJ0eXAi.eyJhdWQiOiJo.c2lnbmF0dXJl, "access_token=abc&x=1" BEARER abcdefghijklmnopqrstuvwxyz"#
            ),
            r#"Authorization: Bearer [redacted], "access_token=[redacted]&x=1" BEARER [redacted]"#
        );
        assert_eq!(
            redact("failed to get bearer token: managed identity"),
            "failed to get bearer token: managed identity"
        );
        assert_eq!(
            redact("X-IDENTITY-HEADER=853b9a84 bearer"),
            "X-IDENTITY-HEADER=[redacted] bearer"
        );
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(redact("a=b=c"), "a=b=c");
    }
}
