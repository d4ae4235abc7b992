//! The query string every Consul read carries, parsed once: the blocking pair (`index`, `wait`), the
//! selection parameters (`dc`, `tag`, `passing`, `node-meta`, `filter`), the `?token=` carrier, and
//! the consistency flags.
//!
//! The rules follow Consul's own HTTP layer (`hashicorp/consul`, `agent/http.go` `parseWait`,
//! `parseConsistency`, `parseMetaFilter`, and `agent/health_endpoint.go` `getBoolQueryParam`), so a
//! client gets the same answer from us as from an agent:
//!
//! - A repeated parameter counts once, by its **first** value (Go's `url.Values.Get`), except `tag`
//!   and `node-meta`, which add up. An empty value counts as absent (`index=`, `wait=`, `dc=`,
//!   `filter=`, `token=`), as in Consul.
//! - `index`: a decimal `u64`, digits only (no sign, no spaces: `strconv.ParseUint`); `0` means "do
//!   not block". Anything else is a 400 naming `index`.
//! - `wait`: a Go duration (`time.ParseDuration`): `10s`, `2000ms`, `5m`, `1h`, `1m30s`, `1.5s`,
//!   `300us`. A bare number (`10`) has no unit and is refused (Go refuses it too), except `0`. Zero
//!   or negative means the server's default (Consul's `blockingQuery` does the same). The cap and the
//!   default are the caller's ([`DEFAULT_WAIT`], [`MAX_WAIT`], [`ConsulQuery::wait_or_default`]).
//! - `passing`: present with no value, or a Go boolean (`1`, `t`, `true`, `TRUE`, `True`, `0`, `f`,
//!   `false`, ...). Any other value is a 400 naming `passing` (Consul: "Invalid value for ?passing").
//! - `node-meta=key:value`, repeated, all must match; a pair without `:` means an empty value, and a
//!   key given twice keeps its last value (Consul builds a map).
//! - `tag` and `node-meta` values are also split on `,`: the Functions host joins a repeated query
//!   key into one value with commas (docs/functions-host-protocol.md), so `tag=a&tag=b` arrives as
//!   `tag=a,b`. A tag or node-meta value that itself contains a comma cannot be queried.
//! - `stale`, `consistent`, `cached` are presence flags; `stale` with `consistent` is a 400 (Consul:
//!   "Cannot specify ?stale with ?consistent, conflicting semantics").
//! - Accepted and ignored: `near`, `ns`, `partition`, `peer`, `merge-central-config`, `hash`,
//!   `recurse`, `keys`, `separator`, and every parameter Consul does not know either.
//!
//! The token is kept out of `Debug` output, so a logged query never carries it.

use super::duration::go_duration_nanos;
use crate::domain::ValidationError;
use std::fmt;
use std::time::Duration;

/// Consul's default hold when a blocking read gives no `wait` (`website/content/api-docs/features/blocking.mdx`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
/// Consul's longest hold (`max_query_time`'s default): longer waits are cut to it.
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// A Consul read's query string, parsed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConsulQuery {
    /// `Some(n)` (n ≥ 1): answer once the index exceeds `n` or the wait ends. `None`: answer at once.
    pub index: Option<u64>,
    /// The wait the client asked for; `None` when absent, zero or negative (the server's default).
    pub wait: Option<Duration>,
    pub dc: Option<String>,
    /// Every `tag=` value in order; an entry must carry all of them.
    pub tags: Vec<String>,
    /// Only entries whose checks all pass.
    pub passing: bool,
    /// `node-meta` pairs; a node must carry all of them. Keys are unique (the last value wins).
    pub node_meta: Vec<(String, String)>,
    /// The raw `filter` expression (parsed by `Filter::parse` against the endpoint's schema).
    pub filter: Option<String>,
    /// `?token=`; never printed by `Debug`.
    pub token: Option<String>,
    pub stale: bool,
    pub consistent: bool,
    pub cached: bool,
}

impl fmt::Debug for ConsulQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulQuery")
            .field("index", &self.index)
            .field("wait", &self.wait)
            .field("dc", &self.dc)
            .field("tags", &self.tags)
            .field("passing", &self.passing)
            .field("node_meta", &self.node_meta)
            .field("filter", &self.filter)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("stale", &self.stale)
            .field("consistent", &self.consistent)
            .field("cached", &self.cached)
            .finish()
    }
}

impl ConsulQuery {
    /// Parses percent-decoded query pairs (see the module docs for every rule).
    pub fn parse(pairs: &[(String, String)]) -> Result<ConsulQuery, ValidationError> {
        let first = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let non_empty = |name: &str| first(name).filter(|value| !value.is_empty());
        let mut query = ConsulQuery {
            index: non_empty("index").map(parse_index).transpose()?.flatten(),
            wait: non_empty("wait").map(parse_wait).transpose()?.flatten(),
            dc: non_empty("dc").map(str::to_owned),
            filter: non_empty("filter").map(str::to_owned),
            token: non_empty("token").map(str::to_owned),
            passing: first("passing")
                .map(parse_passing)
                .transpose()?
                .unwrap_or(false),
            stale: first("stale").is_some(),
            consistent: first("consistent").is_some(),
            cached: first("cached").is_some(),
            ..ConsulQuery::default()
        };
        if query.stale && query.consistent {
            return Err(ValidationError::new(
                "stale",
                "Cannot specify ?stale with ?consistent, conflicting semantics",
            ));
        }
        for (key, value) in pairs {
            match key.as_str() {
                "tag" => query.tags.extend(value.split(',').map(str::to_owned)),
                "node-meta" => {
                    for pair in value.split(',') {
                        let (name, wanted) = pair.split_once(':').unwrap_or((pair, ""));
                        query.node_meta.retain(|(known, _)| known != name);
                        query.node_meta.push((name.to_owned(), wanted.to_owned()));
                    }
                }
                _ => {}
            }
        }
        Ok(query)
    }

    /// How long the client asked to be held: its `wait`, or Consul's default, cut to Consul's maximum.
    /// The caller applies its own, lower cap on top.
    pub fn wait_or_default(&self) -> Duration {
        self.wait.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT)
    }
}

/// `strconv.ParseUint(text, 10, 64)`; `0` is "no index".
fn parse_index(text: &str) -> Result<Option<u64>, ValidationError> {
    let invalid = || {
        ValidationError::new(
            "index",
            "Invalid index: index must be a whole number from 0 to 18446744073709551615",
        )
    };
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let index: u64 = text.parse().map_err(|_| invalid())?;
    Ok((index > 0).then_some(index))
}

/// Go's `strconv.ParseBool`, with an empty value meaning true (the parameter is a flag).
fn parse_passing(text: &str) -> Result<bool, ValidationError> {
    match text {
        "" | "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ValidationError::new(
            "passing",
            "Invalid value for ?passing: give no value, or true/false/1/0",
        )),
    }
}

/// `wait` as Go's `time.ParseDuration` reads it; zero or negative is "the default" (`None`).
fn parse_wait(text: &str) -> Result<Option<Duration>, ValidationError> {
    let nanos = go_duration_nanos(text).ok_or_else(|| {
        ValidationError::new(
            "wait",
            "Invalid wait time: wait must be a duration with a unit, such as 10s, 2000ms, 5m or 1m30s",
        )
    })?;
    Ok(u64::try_from(nanos)
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(list: &[(&str, &str)]) -> Result<ConsulQuery, ValidationError> {
        ConsulQuery::parse(&pairs(list))
    }

    fn field_of(list: &[(&str, &str)]) -> &'static str {
        parse(list).unwrap_err().field
    }

    #[test]
    fn what_the_go_client_sends_for_a_blocking_read() {
        let q = parse(&[
            ("dc", "dc1"),
            ("stale", ""),
            ("index", "1702"),
            ("wait", "120000ms"),
            ("tag", "v1"),
            ("tag", "prod"),
            ("passing", "1"),
            ("node-meta", "rack:r1"),
            ("filter", "Service.Meta.env == \"qa\""),
        ])
        .unwrap();
        assert_eq!(q.index, Some(1702));
        assert_eq!(q.wait, Some(Duration::from_secs(120)));
        assert_eq!(q.dc.as_deref(), Some("dc1"));
        assert_eq!(q.tags, ["v1", "prod"]);
        assert!(q.passing && q.stale && !q.consistent && !q.cached);
        assert_eq!(q.node_meta, [("rack".to_owned(), "r1".to_owned())]);
        assert_eq!(q.filter.as_deref(), Some("Service.Meta.env == \"qa\""));
    }

    #[test]
    fn nothing_given_is_a_plain_read() {
        let q = parse(&[]).unwrap();
        assert_eq!(q, ConsulQuery::default());
        assert_eq!(q.wait_or_default(), DEFAULT_WAIT);
    }

    #[test]
    fn index_zero_or_empty_does_not_block_and_other_text_is_refused() {
        assert_eq!(parse(&[("index", "0")]).unwrap().index, None);
        assert_eq!(parse(&[("index", "")]).unwrap().index, None);
        assert_eq!(
            parse(&[("index", "18446744073709551615")]).unwrap().index,
            Some(u64::MAX)
        );
        for bad in [
            "-1",
            "+5",
            " 5",
            "5 ",
            "1.0",
            "0x10",
            "18446744073709551616",
            "abc",
        ] {
            assert_eq!(field_of(&[("index", bad)]), "index", "{bad:?}");
        }
    }

    #[test]
    fn wait_reads_go_durations() {
        for (text, expected) in [
            ("10s", Duration::from_secs(10)),
            ("2000ms", Duration::from_secs(2)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("525s", Duration::from_secs(525)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("+3s", Duration::from_secs(3)),
            ("300us", Duration::from_micros(300)),
            ("300µs", Duration::from_micros(300)),
            ("300μs", Duration::from_micros(300)),
            ("7ns", Duration::from_nanos(7)),
            ("1h0m0.000000001s", Duration::from_nanos(3_600_000_000_001)),
        ] {
            assert_eq!(
                parse(&[("wait", text)]).unwrap().wait,
                Some(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn zero_negative_or_empty_wait_means_the_default() {
        for text in ["0", "0s", "-5s", "-0", ""] {
            let q = parse(&[("wait", text)]).unwrap();
            assert_eq!(q.wait, None, "{text:?}");
            assert_eq!(q.wait_or_default(), DEFAULT_WAIT);
        }
        let long = parse(&[("wait", "30m")]).unwrap();
        assert_eq!(long.wait, Some(Duration::from_secs(1800)));
        assert_eq!(long.wait_or_default(), MAX_WAIT);
    }

    #[test]
    fn wait_without_a_unit_or_with_a_bad_one_is_refused() {
        for bad in [
            "10",
            "120000",
            "s",
            "1x",
            "1e3s",
            "1S",
            "1 s",
            " 1s",
            "-",
            "+",
            ".s",
            "1.2.3s",
            "9999999999h",
            "2562048h",
            "99999999999999999999999s",
        ] {
            assert_eq!(field_of(&[("wait", bad)]), "wait", "{bad:?}");
        }
        // The largest Go duration still parses.
        assert!(parse(&[("wait", "2562047h")]).is_ok());
    }

    #[test]
    fn passing_is_a_flag_or_a_go_boolean() {
        for (text, expected) in [
            ("", true),
            ("1", true),
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("t", true),
            ("0", false),
            ("false", false),
            ("F", false),
        ] {
            assert_eq!(
                parse(&[("passing", text)]).unwrap().passing,
                expected,
                "{text:?}"
            );
        }
        for bad in ["yes", "on", "2", "tRuE"] {
            assert_eq!(field_of(&[("passing", bad)]), "passing", "{bad:?}");
        }
    }

    #[test]
    fn the_first_of_a_repeated_parameter_wins_but_tags_and_node_meta_add_up() {
        let q = parse(&[
            ("index", "5"),
            ("index", "junk"),
            ("dc", "one"),
            ("dc", "two"),
            ("tag", "a"),
            ("tag", "b"),
            ("node-meta", "k:1"),
            ("node-meta", "other"),
            ("node-meta", "k:2"),
            ("node-meta", "url:http://x"),
        ])
        .unwrap();
        assert_eq!(q.index, Some(5));
        assert_eq!(q.dc.as_deref(), Some("one"));
        assert_eq!(q.tags, ["a", "b"]);
        let meta: Vec<(&str, &str)> = q
            .node_meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(meta, [("other", ""), ("k", "2"), ("url", "http://x")]);
    }

    #[test]
    fn consistency_flags_are_presence_flags_and_stale_excludes_consistent() {
        let q = parse(&[("consistent", "1"), ("cached", "")]).unwrap();
        assert!(q.consistent && q.cached && !q.stale);
        assert!(parse(&[("stale", "false")]).unwrap().stale);
        assert_eq!(field_of(&[("stale", ""), ("consistent", "")]), "stale");
    }

    #[test]
    fn ignored_parameters_are_accepted() {
        let q = parse(&[
            ("near", "_agent"),
            ("ns", "default"),
            ("partition", "default"),
            ("peer", "x"),
            ("merge-central-config", ""),
            ("hash", "abc"),
            ("recurse", ""),
            ("keys", ""),
            ("separator", "/"),
            ("code", "host-function-key"),
            ("future-parameter", "1"),
        ])
        .unwrap();
        assert_eq!(q, ConsulQuery::default());
    }

    #[test]
    fn the_token_is_read_but_never_printed() {
        let q = parse(&[("token", "s3cr3t-token")]).unwrap();
        assert_eq!(q.token.as_deref(), Some("s3cr3t-token"));
        let printed = format!("{q:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert_eq!(parse(&[("token", "")]).unwrap().token, None);
    }

    #[test]
    fn tags_and_node_meta_the_host_joined_with_commas_are_split() {
        let q = parse(&[("tag", "a,b"), ("tag", "c"), ("node-meta", "k:1,r:x")]).unwrap();
        assert_eq!(q.tags, ["a", "b", "c"]);
        let meta: Vec<(&str, &str)> = q
            .node_meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(meta, [("k", "1"), ("r", "x")]);
    }
}
