//! What an HTTP check expects of the answer, beyond "below 400": `expectedStatus`, a list of status
//! codes and `"lo-hi"` ranges (`[200, "200-299", 401]`), and `expectBody`, a substring the first
//! 64 KiB of the body must hold. Parsed once at registration with errors naming the entry
//! (`healthCheck.expectedStatus[3]`), read tolerantly from stored rows, and applied by
//! [`judge_http`], the one rule that turns a status (and whether the body matched) into a verdict:
//!
//! - with `expectedStatus`, a listed status is healthy; otherwise 429 and 503 with `Retry-After`
//!   are still warnings (Consul's rule), and anything else is unhealthy;
//! - without it, the recipe's rule: below 400 healthy, the same warnings, the rest unhealthy;
//! - a healthy status whose body lacks `expectBody` is unhealthy.

use super::health::warning_reason;
use super::{has_control_char, HealthVerdict, ValidationError};
use serde_json::{json, Value};
use std::time::Duration;

pub const MIN_STATUS: u16 = 100;
pub const MAX_STATUS: u16 = 599;
pub const MAX_EXPECTED_STATUS_ENTRIES: usize = 16;
pub const MAX_EXPECT_BODY_LEN: usize = 256;
/// How much of the body `expectBody` is searched in.
pub const EXPECT_BODY_WINDOW: usize = 64 * 1024;

/// The field names of the entries, so an error can name the one at fault (a `ValidationError`
/// names its field with a static text).
const ENTRY_FIELDS: [&str; MAX_EXPECTED_STATUS_ENTRIES] = [
    "healthCheck.expectedStatus[0]",
    "healthCheck.expectedStatus[1]",
    "healthCheck.expectedStatus[2]",
    "healthCheck.expectedStatus[3]",
    "healthCheck.expectedStatus[4]",
    "healthCheck.expectedStatus[5]",
    "healthCheck.expectedStatus[6]",
    "healthCheck.expectedStatus[7]",
    "healthCheck.expectedStatus[8]",
    "healthCheck.expectedStatus[9]",
    "healthCheck.expectedStatus[10]",
    "healthCheck.expectedStatus[11]",
    "healthCheck.expectedStatus[12]",
    "healthCheck.expectedStatus[13]",
    "healthCheck.expectedStatus[14]",
    "healthCheck.expectedStatus[15]",
];
const FIELD: &str = "healthCheck.expectedStatus";
const BODY_FIELD: &str = "healthCheck.expectBody";

/// The statuses a check accepts: inclusive ranges, single codes as `lo == hi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedStatus(Vec<(u16, u16)>);

impl ExpectedStatus {
    pub fn parse(value: &Value) -> Result<Self, ValidationError> {
        let entries = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
            ValidationError::new(
                FIELD,
                format!("{FIELD} must be a non-empty array of status codes and \"lo-hi\" ranges, such as [200, \"200-299\", 401]"),
            )
        })?;
        if entries.len() > MAX_EXPECTED_STATUS_ENTRIES {
            return Err(ValidationError::new(
                FIELD,
                format!("{FIELD} holds at most {MAX_EXPECTED_STATUS_ENTRIES} entries"),
            ));
        }
        let ranges = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                entry_range(entry).ok_or_else(|| {
                    let field = ENTRY_FIELDS[i];
                    ValidationError::new(
                        field,
                        format!("{field} must be a status code from {MIN_STATUS} to {MAX_STATUS} or a range \"lo-hi\" of them with lo <= hi"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ExpectedStatus(ranges))
    }

    /// Reads the stored form; `None` when unreadable (a row another client wrote).
    pub fn from_stored(value: &Value) -> Option<Self> {
        Self::parse(value).ok()
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// Codes as numbers, ranges as `"lo-hi"`: the form registered, normalised.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        json!(lo)
                    } else {
                        json!(format!("{lo}-{hi}"))
                    }
                })
                .collect(),
        )
    }
}

fn entry_range(entry: &Value) -> Option<(u16, u16)> {
    let code = |n: u64| {
        u16::try_from(n)
            .ok()
            .filter(|n| (MIN_STATUS..=MAX_STATUS).contains(n))
    };
    let text_code = |t: &str| {
        (!t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
            .and_then(code)
    };
    match entry {
        Value::Number(n) => code(n.as_u64()?).map(|c| (c, c)),
        Value::String(text) => match text.split_once('-') {
            None => text_code(text).map(|c| (c, c)),
            Some((lo, hi)) => {
                let (lo, hi) = (text_code(lo)?, text_code(hi)?);
                (lo <= hi).then_some((lo, hi))
            }
        },
        _ => None,
    }
}

/// Parses `expectBody`: a non-empty string of at most 256 characters, no control characters.
pub fn parse_expect_body(value: &Value) -> Result<String, ValidationError> {
    match value {
        Value::String(text)
            if !text.is_empty()
                && text.chars().count() <= MAX_EXPECT_BODY_LEN
                && !has_control_char(text) =>
        {
            Ok(text.clone())
        }
        _ => Err(ValidationError::new(
            BODY_FIELD,
            format!("{BODY_FIELD} must be a non-empty string of at most {MAX_EXPECT_BODY_LEN} characters without control characters"),
        )),
    }
}

/// The verdict for an HTTP answer (rules in the module docs). `body_matched`: `None` when the
/// check has no `expectBody` (or the body was not read), else whether it was found.
pub fn judge_http(
    status: u16,
    retry_after: bool,
    expected: Option<&ExpectedStatus>,
    body_matched: Option<bool>,
    elapsed: Duration,
) -> HealthVerdict {
    let passed = match expected {
        Some(expected) => expected.contains(status),
        None => status < 400,
    };
    if !passed {
        return match (warning_reason(status, retry_after), expected) {
            (Some(reason), _) => HealthVerdict::degraded(elapsed, reason),
            (None, Some(_)) => {
                HealthVerdict::unhealthy(elapsed, format!("HTTP {status} (not an expected status)"))
            }
            (None, None) => HealthVerdict::unhealthy(elapsed, format!("HTTP {status}")),
        };
    }
    match body_matched {
        Some(false) => HealthVerdict::unhealthy(
            elapsed,
            format!("HTTP {status}, but the body does not contain expectBody"),
        ),
        _ => HealthVerdict::healthy(elapsed),
    }
}

/// Whether `needle` occurs in `haystack` (bytes; the body may not be UTF-8).
pub fn body_contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::HealthState;

    const MS: Duration = Duration::from_millis(1);

    fn field_of(value: Value) -> &'static str {
        ExpectedStatus::parse(&value).unwrap_err().field
    }

    #[test]
    fn codes_and_ranges_parse_and_round_trip() {
        let e = ExpectedStatus::parse(&json!([200, "201-299", 401, "404"])).unwrap();
        for s in [200, 201, 250, 299, 401, 404] {
            assert!(e.contains(s), "{s}");
        }
        for s in [100, 300, 400, 402, 500] {
            assert!(!e.contains(s), "{s}");
        }
        assert_eq!(e.to_json(), json!([200, "201-299", 401, 404]));
        assert_eq!(ExpectedStatus::from_stored(&e.to_json()), Some(e));
    }

    #[test]
    fn every_bad_entry_is_named_by_its_index() {
        assert_eq!(field_of(json!([])), FIELD);
        assert_eq!(field_of(json!("200")), FIELD);
        assert_eq!(field_of(json!(vec![200; 17])), FIELD);
        assert_eq!(
            ExpectedStatus::parse(&json!(vec![200; 16])).map(|e| e.0.len()),
            Ok(16)
        );
        for (bad, at) in [
            (json!([99]), 0),
            (json!([200, 600]), 1),
            (json!([200, 201, "300-200"]), 2),
            (json!([200, "2xx"]), 1),
            (json!([200, "200-"]), 1),
            (json!([200, 1.5]), 1),
            (json!([200, -200]), 1),
            (json!([200, "0200"]), 1),
            (json!([200, null]), 1),
            (json!([200, "200-299-300"]), 1),
        ] {
            assert_eq!(field_of(bad.clone()), ENTRY_FIELDS[at], "{bad}");
        }
        assert_eq!(
            field_of(json!([
                200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 1
            ])),
            "healthCheck.expectedStatus[15]"
        );
    }

    #[test]
    fn expect_body_is_bounded() {
        assert_eq!(parse_expect_body(&json!("ok")), Ok("ok".to_owned()));
        assert!(parse_expect_body(&json!("é".repeat(256))).is_ok());
        for bad in [json!(""), json!("x".repeat(257)), json!(5), json!("a\nb")] {
            assert_eq!(parse_expect_body(&bad).unwrap_err().field, BODY_FIELD);
        }
    }

    #[test]
    fn the_expected_list_replaces_the_below_400_rule_but_not_the_warnings() {
        let e = ExpectedStatus::parse(&json!([401, "500-502"])).unwrap();
        let state = |s, ra| judge_http(s, ra, Some(&e), None, MS).state;
        assert_eq!(state(401, false), HealthState::Healthy);
        assert_eq!(state(501, false), HealthState::Healthy);
        assert_eq!(state(200, false), HealthState::Unhealthy);
        assert_eq!(state(429, false), HealthState::Degraded);
        assert_eq!(state(503, true), HealthState::Degraded);
        assert_eq!(state(503, false), HealthState::Unhealthy);
        assert_eq!(
            judge_http(200, false, Some(&e), None, MS).error_message,
            "HTTP 200 (not an expected status)"
        );
        let listed = ExpectedStatus::parse(&json!([429, "503"])).unwrap();
        assert_eq!(
            judge_http(429, false, Some(&listed), None, MS).state,
            HealthState::Healthy
        );
        assert_eq!(
            judge_http(503, true, Some(&listed), None, MS).state,
            HealthState::Healthy
        );
    }

    #[test]
    fn the_body_must_hold_the_text_when_asked() {
        assert_eq!(
            judge_http(200, false, None, Some(true), MS).state,
            HealthState::Healthy
        );
        let missing = judge_http(200, false, None, Some(false), MS);
        assert_eq!(missing.state, HealthState::Unhealthy);
        assert_eq!(
            missing.error_message,
            "HTTP 200, but the body does not contain expectBody"
        );
        // A failed status is reported as such, whatever the body.
        assert_eq!(
            judge_http(500, false, None, Some(false), MS).error_message,
            "HTTP 500"
        );
        assert!(body_contains(b"{\"status\":\"UP\"}", "\"UP\""));
        assert!(!body_contains(b"DOWN", "UP"));
    }
}
