//! A fanned-out sweep's unit of work: a shard, the message that carries it over the queue, how the
//! registry's keys are cut into shards, and whether a shard that arrives is still worth running.
//!
//! A shard is a list of key ranges, each inside one partition (one `serviceType`), so that reading
//! it is one range query per partition, never a scan. Ranges are half-open (`from` inclusive, `to`
//! exclusive) and the first and last range of a partition are open-ended, so the shards of one
//! sweep cover every key of the partitions they name exactly once, including services registered
//! after the keys were read (a new `serviceType` waits for the next sweep).
//!
//! The message is compact JSON. Its fields are named so that none collides with the trigger
//! metadata the Functions host copies a JSON message's top-level fields over (`Id`,
//! `DequeueCount`, `PopReceipt`, `InsertionTime`, `ExpirationTime`, `NextVisibleTime`, `sys`, ...),
//! and the ranges are an array, which the host does not copy at all.

use super::ValidationError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The message format's version: a worker refuses what it cannot read (the message goes to the
/// poison queue instead of being misread across a rolling deployment).
const VERSION: u32 = 1;

/// Ranges in one shard at most: a range is at most two keys of 128 characters and a partition
/// key, so 64 of them stay far below the queue's 48 KiB of raw text per message.
pub const MAX_RANGES: usize = 64;

/// Services per shard by default. Small enough that a process takes shards in proportion to its
/// probe slots (500 slots hold two shards, so three processes share a sweep of 10,000 services in
/// 40 shards), large enough that a million services are 4,000 messages (docs/performance.md).
pub const DEFAULT_SHARD_SIZE: usize = 250;

/// A sweep's id: its start time (compact ISO, UTC, milliseconds) and a random suffix, so two ticks
/// in the same millisecond still differ. Letters, digits and hyphens only: it is part of a table
/// key (the shard markers' partition) and of log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SweepId(String);

impl SweepId {
    pub fn new(started: DateTime<Utc>, nonce: u16) -> Self {
        SweepId(format!(
            "{}-{nonce:04x}",
            started.format("%Y%m%dT%H%M%S%3fZ")
        ))
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = !raw.is_empty()
            && raw.len() <= 40
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(ValidationError::new(
                "sweep",
                "sweep must be 1 to 40 letters, digits or hyphens",
            ));
        }
        Ok(SweepId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SweepId {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        SweepId::parse(&raw)
    }
}

impl From<SweepId> for String {
    fn from(id: SweepId) -> String {
        id.0
    }
}

impl std::fmt::Display for SweepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// RowKeys `from` (inclusive) up to `to` (exclusive) of one partition; `None` is open-ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(String, Option<String>, Option<String>)")]
#[serde(into = "(String, Option<String>, Option<String>)")]
pub struct KeyRange {
    pub partition: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl From<(String, Option<String>, Option<String>)> for KeyRange {
    fn from((partition, from, to): (String, Option<String>, Option<String>)) -> Self {
        KeyRange {
            partition,
            from,
            to,
        }
    }
}

impl From<KeyRange> for (String, Option<String>, Option<String>) {
    fn from(range: KeyRange) -> Self {
        (range.partition, range.from, range.to)
    }
}

impl KeyRange {
    pub fn contains(&self, partition: &str, row_key: &str) -> bool {
        partition == self.partition
            && self.from.as_deref().is_none_or(|from| row_key >= from)
            && self.to.as_deref().is_none_or(|to| row_key < to)
    }
}

/// One shard as it travels over the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMessage {
    /// The format's version (`VERSION`).
    pub v: u32,
    pub sweep: SweepId,
    /// This shard's number, from 0, and how many the sweep has.
    pub shard: u32,
    pub of: u32,
    /// The sweep's start: every transition any shard records is dated at it.
    #[serde(with = "iso_time")]
    pub started: DateTime<Utc>,
    /// The sweep's window ends here (its start plus the schedule's interval): a shard that
    /// arrives later is dropped, because the next sweep covers its services.
    #[serde(with = "iso_time")]
    pub deadline: DateTime<Utc>,
    pub ranges: Vec<KeyRange>,
}

impl ShardMessage {
    pub fn new(
        sweep: &SweepId,
        shard: u32,
        of: u32,
        window: (DateTime<Utc>, DateTime<Utc>),
        ranges: Vec<KeyRange>,
    ) -> Self {
        ShardMessage {
            v: VERSION,
            sweep: sweep.clone(),
            shard,
            of,
            started: window.0,
            deadline: window.1,
            ranges,
        }
    }

    /// The message text (before the queue's base64).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a shard serialises")
    }

    /// A message read back; anything else is an error naming what is wrong (such a message can
    /// never succeed: it ends in the poison queue).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let message: ShardMessage = serde_json::from_str(text)
            .map_err(|e| ValidationError::new("shard", format!("not a shard message: {e}")))?;
        if message.v != VERSION {
            return Err(ValidationError::new(
                "v",
                format!("shard message version {} is not {VERSION}", message.v),
            ));
        }
        if message.shard >= message.of {
            return Err(ValidationError::new("shard", "shard must be below of"));
        }
        if message.ranges.is_empty() || message.ranges.len() > MAX_RANGES {
            return Err(ValidationError::new(
                "ranges",
                format!("ranges must hold 1 to {MAX_RANGES} key ranges"),
            ));
        }
        Ok(message)
    }

    /// Whether the shard is still worth running: `current` is the sweep the state table names as
    /// the latest (`None`: no sweep recorded).
    pub fn fate(&self, current: Option<&SweepId>, now: DateTime<Utc>) -> ShardFate {
        if current != Some(&self.sweep) {
            return ShardFate::Stale("a newer sweep has started");
        }
        if now >= self.deadline {
            return ShardFate::Late;
        }
        ShardFate::Run
    }
}

/// Times in the message as the tables write them: ISO-8601 UTC with milliseconds and `Z`.
mod iso_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// What a worker does with a shard it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardFate {
    Run,
    /// Its sweep is no longer the current one (already summarised): dropped, nothing recorded.
    Stale(&'static str),
    /// Its sweep's window is over: dropped, and recorded as dropped in its sweep.
    Late,
}

/// Cuts the registry's keys (sorted by partition, then row key) into shards of about `size`
/// services, each at most `MAX_RANGES` ranges. No keys, no shards.
pub fn cut_shards(keys: &[(String, String)], size: usize) -> Vec<Vec<KeyRange>> {
    let size = size.max(1);
    let mut shards = Vec::new();
    let (mut shard, mut filled): (Vec<KeyRange>, usize) = (Vec::new(), 0);
    let mut at = 0;
    while at < keys.len() {
        let partition = &keys[at].0;
        let end = at + keys[at..].partition_point(|(p, _)| p == partition);
        let mut from: Option<String> = None;
        while at < end {
            let take = (size - filled).min(end - at);
            at += take;
            filled += take;
            let to = (at < end).then(|| keys[at].1.clone());
            shard.push(KeyRange {
                partition: partition.clone(),
                from: from.take(),
                to: to.clone(),
            });
            from = to;
            if filled >= size || shard.len() >= MAX_RANGES {
                shards.push(std::mem::take(&mut shard));
                filled = 0;
            }
        }
    }
    if !shard.is_empty() {
        shards.push(shard);
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn keys(spec: &[(&str, usize)]) -> Vec<(String, String)> {
        spec.iter()
            .flat_map(|(p, n)| (0..*n).map(move |i| (p.to_string(), format!("svc{i:05}"))))
            .collect()
    }

    fn covering(shards: &[Vec<KeyRange>], p: &str, r: &str) -> usize {
        shards
            .iter()
            .flatten()
            .filter(|range| range.contains(p, r))
            .count()
    }

    #[test]
    fn every_key_and_every_key_between_lands_in_exactly_one_shard() {
        let keys = keys(&[("api", 1000), ("db", 7), ("web", 260)]);
        let shards = cut_shards(&keys, 250);
        assert_eq!(shards.len(), 6, "{shards:?}");
        for (p, r) in &keys {
            assert_eq!(covering(&shards, p, r), 1, "{p}/{r}");
        }
        // Keys registered after the cut: before the first, between two, after the last.
        for (p, r) in [
            ("api", "a"),
            ("api", "svc00249x"),
            ("db", "zzz"),
            ("web", ""),
        ] {
            assert_eq!(covering(&shards, p, r), 1, "{p}/{r}");
        }
        assert_eq!(covering(&shards, "new-type", "x"), 0);
        // Sizes: four full shards of api, then db's 7 with 243 of web, then web's last 17.
        let sizes: Vec<usize> = shards
            .iter()
            .map(|s| {
                keys.iter()
                    .filter(|(p, r)| s.iter().any(|range| range.contains(p, r)))
                    .count()
            })
            .collect();
        assert_eq!(sizes, vec![250, 250, 250, 250, 250, 17]);
        assert!(cut_shards(&[], 250).is_empty());
    }

    #[test]
    fn many_small_partitions_stop_a_shard_at_the_range_cap() {
        let spec: Vec<(String, usize)> = (0..130).map(|i| (format!("t{i:03}"), 1)).collect();
        let spec: Vec<(&str, usize)> = spec.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        let shards = cut_shards(&keys(&spec), 1000);
        let lens: Vec<usize> = shards.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![MAX_RANGES, MAX_RANGES, 2]);
    }

    #[test]
    fn a_message_round_trips_and_collides_with_no_trigger_metadata() {
        let start = Utc.with_ymd_and_hms(2026, 12, 7, 10, 55, 0).unwrap();
        let sweep = SweepId::new(start, 0xab);
        assert_eq!(sweep.as_str(), "20261207T105500000Z-00ab");
        let message = ShardMessage::new(
            &sweep,
            3,
            40,
            (start, start + chrono::Duration::minutes(5)),
            vec![KeyRange {
                partition: "api".into(),
                from: None,
                to: Some("m".into()),
            }],
        );
        let text = message.to_text();
        assert_eq!(
            text,
            r#"{"v":1,"sweep":"20261207T105500000Z-00ab","shard":3,"of":40,"started":"2026-12-07T10:55:00.000Z","deadline":"2026-12-07T11:00:00.000Z","ranges":[["api",null,"m"]]}"#
        );
        assert_eq!(ShardMessage::parse(&text).unwrap(), message);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for reserved in [
            "Id",
            "DequeueCount",
            "PopReceipt",
            "InsertionTime",
            "ExpirationTime",
            "NextVisibleTime",
            "sys",
            "QueueTrigger",
        ] {
            let clash = value
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.eq_ignore_ascii_case(reserved));
            assert!(!clash, "{reserved}");
        }
        for (bad, field) in [
            (text.replace(r#""v":1"#, r#""v":2"#), "v"),
            (text.replace(r#""shard":3"#, r#""shard":40"#), "shard"),
            (text.replace(r#"[["api",null,"m"]]"#, "[]"), "ranges"),
            (text.replace("00ab", "00/b"), "shard"),
            ("{}".to_owned(), "shard"),
        ] {
            assert_eq!(ShardMessage::parse(&bad).unwrap_err().field, field, "{bad}");
        }
    }

    #[test]
    fn a_shard_runs_only_in_its_own_sweep_and_window() {
        let start = Utc.with_ymd_and_hms(2026, 12, 7, 10, 55, 0).unwrap();
        let sweep = SweepId::new(start, 1);
        let newer = SweepId::new(start + chrono::Duration::minutes(5), 2);
        let range = KeyRange::from(("api".to_owned(), None, None));
        let message = ShardMessage::new(
            &sweep,
            0,
            1,
            (start, start + chrono::Duration::minutes(5)),
            vec![range],
        );
        let during = start + chrono::Duration::minutes(1);
        assert_eq!(message.fate(Some(&sweep), during), ShardFate::Run);
        assert!(matches!(
            message.fate(Some(&newer), during),
            ShardFate::Stale(_)
        ));
        assert!(matches!(message.fate(None, during), ShardFate::Stale(_)));
        let after = start + chrono::Duration::minutes(5);
        assert_eq!(message.fate(Some(&sweep), after), ShardFate::Late);
    }
}
