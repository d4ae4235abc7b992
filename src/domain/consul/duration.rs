//! Go's `time.ParseDuration`, which Consul reads every duration with: a blocking read's `wait`
//! (`agent/http.go` `parseWait`) and a check's `TTL`, `Interval`, `Timeout` and
//! `DeregisterCriticalServiceAfter` (`agent/structs/check_type.go`). Clients send the Go forms
//! (`10s`, `2000ms`, `1m30s`), so the registry accepts exactly those and nothing Go would refuse.

/// Nanoseconds of a Go duration (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`), or `None` when Go's
/// `time.ParseDuration` would refuse it (no unit, unknown unit, no digits, beyond ±2^63-1 ns).
pub(super) fn go_duration_nanos(text: &str) -> Option<i128> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, after) = rest.split_at(whole_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(len)
            }
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return None,
        };
        // Beyond 2^63 ns Go reports an overflow; so do we, before i128 could.
        if whole.len() > 20 {
            return None;
        }
        let mut value = if whole.is_empty() {
            0
        } else {
            whole.parse::<i128>().ok()? * scale
        };
        // Digits past the nineteenth cannot move a nanosecond total below 2^63; Go drops them too.
        let kept = &fraction[..fraction.len().min(19)];
        if !kept.is_empty() {
            value += kept.parse::<i128>().ok()? * scale / 10i128.pow(kept.len() as u32);
        }
        total += value;
        if total > i64::MAX as i128 + i128::from(negative) {
            return None;
        }
        rest = after;
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i128 = 1_000_000_000;

    #[test]
    fn every_unit_and_compound_form() {
        for (text, nanos) in [
            ("0", 0),
            ("-0", 0),
            ("1ns", 1),
            ("1us", 1_000),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("1ms", 1_000_000),
            ("1s", SECOND),
            ("1m", 60 * SECOND),
            ("1h", 3_600 * SECOND),
            ("1h2m3s", 3_723 * SECOND),
            ("1.5s", 3 * SECOND / 2),
            ("-1.5s", -3 * SECOND / 2),
            ("+.25m", 15 * SECOND),
        ] {
            assert_eq!(go_duration_nanos(text), Some(nanos), "{text}");
        }
    }

    #[test]
    fn what_go_refuses() {
        for text in [
            "",
            "1",
            "s",
            "1d",
            "1S",
            "1 s",
            ".s",
            "1..2s",
            "--1s",
            "1s ",
            "9223372037s",
        ] {
            assert_eq!(go_duration_nanos(text), None, "{text:?}");
        }
        assert_eq!(
            go_duration_nanos("9223372036s"),
            Some(9_223_372_036 * SECOND)
        );
    }
}
