//! Logging: one structured line per request and per sweep, on stdout (the Functions host captures a
//! custom handler's stdout into its own logs).
//!
//! `RUST_LOG` sets the level (default `info`), `RUST_LOG_FORMAT=json` switches to one JSON object per
//! line for log pipelines. Nothing logged may carry a secret: request lines hold the path only (the
//! query can hold the function key `code`), and free text from errors goes through `redact` first.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    // The HTTP and storage crates stay at warn by default and never go below info whatever RUST_LOG
    // says: at debug and trace they print request headers, and a SharedKey Authorization header is a
    // signature made with the account key.
    const QUIET: [&str; 7] = [
        "azure_core",
        "azure_storage",
        "azure_data_tables",
        "azure_identity",
        "reqwest",
        "hyper",
        "hyper_util",
    ];
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => QUIET.iter().fold(filter, |filter, target| {
            filter.add_directive(
                format!("{target}=info")
                    .parse()
                    .expect("a static directive parses"),
            )
        }),
        Err(_) => QUIET.iter().fold(EnvFilter::new("info"), |filter, target| {
            filter.add_directive(
                format!("{target}=warn")
                    .parse()
                    .expect("a static directive parses"),
            )
        }),
    };
    let json = std::env::var("RUST_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(std::io::stdout);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests) is harmless.
    let _ = result;
}

/// Secret-bearing parameters of storage connection strings, SAS URLs and Functions requests.
const SECRET_NAMES: [&str; 6] = [
    "accountkey",
    "sharedaccesssignature",
    "sig",
    "code",
    "x-functions-key",
    "password",
];

/// Replaces the value of every `name=value` pair whose name is secret-bearing, whether it sits in a
/// connection string (`;`-separated), a URL query (`&`-separated) or free text.
pub fn redact(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::redact;

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
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(redact("a=b=c"), "a=b=c");
    }
}
