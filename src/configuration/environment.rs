//! The one reader of the environment: a lookup function and typed helpers on top of it.
//!
//! Each helper knows one shape of value (milliseconds, a count, a flag, a list of CIDR ranges) and
//! says in its error which variable was wrong and what was expected, so start-up fails with one line
//! an operator can act on. A variable set to blank counts as unset, as an app setting cleared in the
//! portal does.

use super::ConfigError;
use std::str::FromStr;
use std::time::Duration;

pub struct Environment<F> {
    lookup: F,
    /// The names set, where the source can list them (the process environment can; a test's
    /// lookup need not): only for settings whose variable names are not known in advance.
    names: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Environment<F> {
    pub fn new(lookup: F) -> Self {
        Self::with_names(lookup, Vec::new())
    }

    pub fn with_names(lookup: F, names: Vec<String>) -> Self {
        Environment { lookup, names }
    }

    /// Every name set, as far as the source could list them.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The value exactly as set, blank included.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The value, or `None` when unset or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.trim().is_empty())
    }

    /// The first of `names` that is set, with its name (so an error can name the right one).
    pub fn first_of(&self, names: &[&'static str]) -> Option<(&'static str, String)> {
        names
            .iter()
            .find_map(|name| self.text(name).map(|value| (*name, value)))
    }

    /// The value parsed as `T`; `expected` completes "expected …" in the error.
    pub fn parsed<T: FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>, ConfigError> {
        self.text(name)
            .map(|raw| {
                raw.trim()
                    .parse()
                    .map_err(|_| invalid(name, format!("expected {expected}, got {raw:?}")))
            })
            .transpose()
    }

    /// A duration in milliseconds, above 0.
    pub fn millis(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        let ms = self
            .parsed::<u64>(name, "a whole number of milliseconds above 0")?
            .map(|ms| positive(ms, name))
            .transpose()?;
        Ok(Duration::from_millis(ms.unwrap_or(default_ms)))
    }

    /// A duration in milliseconds where 0 is meaningful (no jitter, no cache).
    pub fn millis_or_zero(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        let ms = self.parsed::<u64>(name, "a whole number of milliseconds")?;
        Ok(Duration::from_millis(ms.unwrap_or(default_ms)))
    }

    /// A duration in seconds where 0 is meaningful (delete at once).
    pub fn seconds_or_zero(&self, name: &str, default_s: u64) -> Result<Duration, ConfigError> {
        let s = self.parsed::<u64>(name, "a whole number of seconds")?;
        Ok(Duration::from_secs(s.unwrap_or(default_s)))
    }

    /// A count above 0 (larger values saturate at `u32::MAX`).
    pub fn count(&self, name: &str, default: u32) -> Result<u32, ConfigError> {
        let n = self
            .parsed::<u64>(name, "a whole number above 0")?
            .map(|n| positive(n, name))
            .transpose()?;
        Ok(n.map_or(default, |n| n.min(u64::from(u32::MAX)) as u32))
    }

    /// `true`/`false` (or `1`/`0`), in any case.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.text(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" || v == "1" => Ok(true),
            Some(v) if v == "false" || v == "0" => Ok(false),
            Some(v) => Err(invalid(name, format!("expected true or false, got {v:?}"))),
        }
    }

    /// A comma-separated list: each item trimmed, empty items dropped; empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A comma-separated list of CIDR ranges; a bare address is a /32 (or /128) range.
    pub fn cidrs(&self, name: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.list(name)
            .iter()
            .map(|item| {
                item.parse::<ipnet::IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(
                            name,
                            format!("{item:?} is not a CIDR range such as 10.0.0.0/8"),
                        )
                    })
            })
            .collect()
    }
}

fn invalid(variable: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        reason,
    }
}

fn positive(n: u64, variable: &str) -> Result<u64, ConfigError> {
    if n == 0 {
        return Err(invalid(variable, "must be above 0".to_owned()));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> Environment<impl Fn(&str) -> Option<String>> {
        Environment::new(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn reason(e: ConfigError) -> (String, String) {
        match e {
            ConfigError::Invalid { variable, reason } => (variable, reason),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_helper_names_the_variable_and_what_it_expected() {
        let e = env(&[
            ("A", "ten"),
            ("B", "0"),
            ("C", "maybe"),
            ("D", "10.0.0.0/33"),
        ]);
        assert_eq!(
            reason(e.millis("A", 1).unwrap_err()),
            (
                "A".into(),
                "expected a whole number of milliseconds above 0, got \"ten\"".into()
            )
        );
        assert_eq!(
            reason(e.millis("B", 1).unwrap_err()),
            ("B".into(), "must be above 0".into())
        );
        assert_eq!(
            reason(e.count("B", 1).unwrap_err()),
            ("B".into(), "must be above 0".into())
        );
        assert_eq!(
            reason(e.flag("C", false).unwrap_err()),
            ("C".into(), "expected true or false, got \"maybe\"".into())
        );
        assert_eq!(
            reason(e.cidrs("D").unwrap_err()),
            (
                "D".into(),
                "\"10.0.0.0/33\" is not a CIDR range such as 10.0.0.0/8".into()
            )
        );
    }

    #[test]
    fn blank_is_unset_and_zero_is_allowed_where_it_means_off() {
        let e = env(&[
            ("BLANK", "  "),
            ("ZERO", "0"),
            ("LIST", " 10.0.0.0/8, ,192.168.1.7 "),
        ]);
        assert_eq!(e.text("BLANK"), None);
        assert_eq!(e.raw("BLANK").as_deref(), Some("  "));
        assert_eq!(e.millis("BLANK", 7).unwrap(), Duration::from_millis(7));
        assert_eq!(e.millis_or_zero("ZERO", 7).unwrap(), Duration::ZERO);
        assert_eq!(e.seconds_or_zero("ZERO", 7).unwrap(), Duration::ZERO);
        assert_eq!(e.count("UNSET", 3).unwrap(), 3);
        assert!(e.flag("UNSET", true).unwrap());
        let list = e.cidrs("LIST").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].to_string(), "192.168.1.7/32");
        assert_eq!(e.first_of(&["UNSET", "ZERO"]), Some(("ZERO", "0".into())));
    }
}
