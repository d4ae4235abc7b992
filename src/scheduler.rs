//! The HealthMonitor timer in standalone mode.
//!
//! Under the Functions host the timer belongs to the host (a singleton across instances). Running on
//! our own, we fire the same sweep on the same schedule: `configuration` finds its text (in
//! `HealthMonitor/function.json`, so the schedule has one source of truth, unless
//! `HEALTH_MONITOR_SCHEDULE` overrides it); this module parses and follows it. Schedules are
//! six-field NCRONTAB (`second minute hour day month day-of-week`), in UTC, as on Azure.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("schedule {schedule:?} is not a six-field NCRONTAB expression: {reason}")]
    Invalid { schedule: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    /// Parses a six-field NCRONTAB expression.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let text = text.trim().to_owned();
        let invalid = |reason: String| ScheduleError::Invalid {
            schedule: text.clone(),
            reason,
        };
        if text.split_whitespace().count() != 6 {
            return Err(invalid(
                "expected 6 fields: second minute hour day month day-of-week".into(),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(&text)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Schedule { text, cron })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_five_minutes_at_second_zero() {
        let s = Schedule::parse("0 */5 * * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 5, 2, 30).unwrap();
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 25, 5, 5, 0).unwrap()
        );
        let on_the_dot = Utc.with_ymd_and_hms(2026, 11, 25, 5, 5, 0).unwrap();
        assert_eq!(
            s.next_after(on_the_dot).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 25, 5, 10, 0).unwrap()
        );
    }

    #[test]
    fn sunday_is_zero_as_in_ncrontab() {
        let s = Schedule::parse("0 0 9 * * 0").unwrap();
        let wednesday = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        assert_eq!(
            s.next_after(wednesday).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap()
        );
    }

    #[test]
    fn five_field_unix_cron_is_refused() {
        assert!(matches!(
            Schedule::parse("*/5 * * * *"),
            Err(ScheduleError::Invalid { .. })
        ));
        assert!(matches!(
            Schedule::parse("0 */5 * * * * *"),
            Err(ScheduleError::Invalid { .. })
        ));
        assert!(matches!(
            Schedule::parse("0 61 * * * *"),
            Err(ScheduleError::Invalid { .. })
        ));
    }
}
