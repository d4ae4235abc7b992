//! The shapes Service Connector's values come in, read for where they point and nothing else:
//! `key=value;…` connection strings (ADO.NET, storage, Service Bus), libpq's `key=value …`, URLs
//! (`https://`, `rediss://`, `jdbc:…://`) and `host[:port]`.
//!
//! Every reader answers with a host, maybe a port and a database, and whether the value carried
//! secret material; the secret values themselves are only handed back so the caller can check
//! that none of them reached what it builds (see `Located::secrets`). Errors are fixed phrases
//! that never quote the value, so a log line can say what was wrong without leaking a key.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A reason a value was not understood; completes "<VARIABLE> …" in a log line.
pub type Why = &'static str;

/// A host as a registration may carry it: a DNS name (lower case) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    /// Reads a bare host: a DNS name, an IPv4 address, or an IPv6 address with or without
    /// brackets. Names are held to letters, digits, `-` and `_` per label: a value that was
    /// misread (a password where a host should be) is then far more likely to be refused than
    /// registered.
    pub fn parse(text: &str) -> Result<Host, Why> {
        const BAD: Why = "names a host that is not a DNS name or an IP address";
        let text = text.trim();
        let unbracketed = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'));
        if let Some(inner) = unbracketed {
            return inner.parse().map(Host::V6).map_err(|_| BAD);
        }
        if let Ok(v6) = text.parse::<Ipv6Addr>() {
            return Ok(Host::V6(v6));
        }
        if let Ok(v4) = text.parse::<Ipv4Addr>() {
            return Ok(Host::V4(v4));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(BAD);
        }
        Ok(Host::Name(name))
    }

    /// As it goes into a URL: IPv6 in brackets.
    pub fn to_url_text(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::V4(v4) => v4.to_string(),
            Host::V6(v6) => format!("[{v6}]"),
        }
    }

    /// The resource name: the first DNS label. An address has no label, so it stands for
    /// itself, in a spelling a service name allows (IPv6's colons become dashes, every group
    /// written out: `::1` is `0-0-0-0-0-0-0-1`).
    pub fn resource_name(&self) -> String {
        match self {
            Host::Name(name) => name.split('.').next().unwrap_or_default().to_owned(),
            Host::V4(v4) => v4.to_string(),
            Host::V6(v6) => v6
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join("-"),
        }
    }

    /// Loopback and addresses, where an emulator's path names the account (Azurite's
    /// `http://127.0.0.1:10002/devstoreaccount1`).
    pub fn is_local_or_address(&self) -> bool {
        !matches!(self, Host::Name(name) if name != "localhost")
    }
}

/// Where a value points, and what it gave away about its authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub host: Host,
    pub port: Option<u16>,
    /// `http://` rather than `https://` (emulators); only https-kind targets look at it.
    pub plain_http: bool,
    pub database: Option<String>,
    /// A name the value gives for the resource when its host cannot (an emulator's account path).
    pub name_hint: Option<String>,
    /// The value held a password, key or SAS.
    pub secret: bool,
    /// Those secret values, for the caller's check that none reached the registration.
    pub secrets: Vec<String>,
}

impl Located {
    pub fn at(host: Host, port: Option<u16>) -> Self {
        Located {
            host,
            port,
            plain_http: false,
            database: None,
            name_hint: None,
            secret: false,
            secrets: Vec::new(),
        }
    }
}

/// A port number from 1 to 65535.
pub fn port(text: &str) -> Result<u16, Why> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or("has a port that is not a number from 1 to 65535")
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address.
pub fn host_port(text: &str) -> Result<(Host, Option<u16>), Why> {
    let text = text.trim();
    if text.is_empty() {
        return Err("names no host");
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or("has an unclosed '[' in its host")?;
        let host = Host::parse(&format!("[{inner}]"))?;
        return match after {
            "" => Ok((host, None)),
            _ => {
                let p = after.strip_prefix(':').ok_or("has text after its host")?;
                Ok((host, Some(port(p)?)))
            }
        };
    }
    match text.matches(':').count() {
        0 => Ok((Host::parse(text)?, None)),
        1 => {
            let (host, p) = text.split_once(':').expect("one colon");
            Ok((Host::parse(host)?, Some(port(p)?)))
        }
        _ => Ok((Host::parse(text)?, None)),
    }
}

/// Splits `key=value;key=value` (keys lower-cased, values trimmed; a value may be quoted in `'`
/// or `"` to hold a `;`). `None` when a part has no `=`: then it is not this shape at all.
pub fn pairs(text: &str, separator: char) -> Option<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => current.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == separator => parts.push(std::mem::take(&mut current)),
            None => current.push(c),
        }
    }
    if quote.is_some() {
        return None;
    }
    parts.push(current);
    parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=')?;
            Some((key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect()
}

/// The value of the first of `keys` present (keys as `pairs` lower-cased them).
pub fn get<'a>(pairs: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| {
        pairs
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    })
}

/// The secret values among `pairs`: what a connection string must never give away.
pub fn secrets_of(pairs: &[(String, String)]) -> Vec<String> {
    const SECRET_KEYS: [&str; 6] = [
        "password",
        "pwd",
        "accountkey",
        "sharedaccesskey",
        "sharedaccesssignature",
        "sas",
    ];
    pairs
        .iter()
        .filter(|(k, v)| SECRET_KEYS.contains(&k.as_str()) && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect()
}

/// An absolute URL with a host (`https://`, `sb://`, `rediss://`, `postgresql://`, …): host,
/// port, first path segment, and its password or signature as secrets.
pub fn url(text: &str) -> Result<Located, Why> {
    let url = url::Url::parse(text.trim()).map_err(|_| "is not an absolute URL")?;
    let host_text = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("names no host")?;
    let host = Host::parse(host_text)?;
    let mut located = Located::at(host, url.port());
    located.plain_http = url.scheme() == "http";
    located.name_hint = url
        .path_segments()
        .and_then(|mut segments| segments.next())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(password) = url.password().filter(|p| !p.is_empty()) {
        located.secrets.push(password.to_owned());
        located
            .secrets
            .push(percent_decoded(password).unwrap_or_default());
    }
    for (key, value) in url.query_pairs() {
        let key = key.to_ascii_lowercase();
        if matches!(key.as_str(), "password" | "sig" | "pwd") && !value.is_empty() {
            located.secrets.push(value.into_owned());
        }
    }
    located.secrets.retain(|s| !s.is_empty());
    located.secret = !located.secrets.is_empty();
    Ok(located)
}

/// An `http://` or `https://` URL, as `url` reads it.
pub fn http_url(text: &str) -> Result<Located, Why> {
    let scheme = text
        .trim()
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err("is not an http(s) URL");
    }
    url(text)
}

fn percent_decoded(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_or_addresses_and_nothing_else() {
        assert_eq!(
            Host::parse("Acct.Table.Core.Windows.NET").unwrap(),
            Host::Name("acct.table.core.windows.net".into())
        );
        assert_eq!(
            Host::parse("127.0.0.1").unwrap(),
            Host::V4([127, 0, 0, 1].into())
        );
        assert_eq!(Host::parse("[::1]").unwrap(), Host::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(Host::parse("::1").unwrap(), Host::V6(Ipv6Addr::LOCALHOST));
        for bad in [
            "",
            "a b",
            "pass=word",
            "x/y",
            "[::1",
            "a..b",
            "a@b",
            "ä.example",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Host::V6(Ipv6Addr::LOCALHOST).resource_name(),
            "0-0-0-0-0-0-0-1"
        );
        assert_eq!(Host::V6(Ipv6Addr::LOCALHOST).to_url_text(), "[::1]");
        assert_eq!(
            Host::parse("cache1.redis.cache.windows.net")
                .unwrap()
                .resource_name(),
            "cache1"
        );
    }

    #[test]
    fn host_and_port_in_every_spelling() {
        let v6 = Host::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(host_port("[::1]:6380").unwrap(), (v6.clone(), Some(6380)));
        assert_eq!(host_port("[::1]").unwrap(), (v6.clone(), None));
        assert_eq!(host_port("::1").unwrap(), (v6, None));
        assert_eq!(
            host_port("x.example:1433").unwrap(),
            (Host::Name("x.example".into()), Some(1433))
        );
        for bad in ["x:0", "x:70000", "x:port", "[::1]x", ":1433", "[::1]:"] {
            assert!(host_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pairs_split_on_the_separator_outside_quotes() {
        let p = pairs("Server=x;Password='a;b';Database=\"d\";", ';').unwrap();
        assert_eq!(get(&p, &["password"]), Some("a;b"));
        assert_eq!(get(&p, &["database"]), Some("d"));
        assert_eq!(secrets_of(&p), vec!["a;b".to_owned()]);
        assert!(pairs("just text", ';').is_none());
        assert!(pairs("a='unclosed", ';').is_none());
    }

    #[test]
    fn urls_give_host_port_path_and_their_secrets() {
        let l = url("rediss://:p%40ss@cache.redis.cache.windows.net:6380/0").unwrap();
        assert_eq!(l.host, Host::Name("cache.redis.cache.windows.net".into()));
        assert_eq!(l.port, Some(6380));
        assert!(l.secret);
        assert!(l.secrets.contains(&"p@ss".to_owned()));
        let l = url("http://127.0.0.1:10002/devstoreaccount1").unwrap();
        assert!(l.plain_http && !l.secret);
        assert_eq!(l.name_hint.as_deref(), Some("devstoreaccount1"));
        assert!(url("not a url").is_err());
    }
}
