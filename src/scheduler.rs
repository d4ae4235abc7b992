//! The HealthMonitor timer in standalone mode.
//!
//! Under the Functions host the timer belongs to the host (a singleton across instances). Running on
//! our own, we fire the same sweep on the same schedule: read from `HealthMonitor/function.json`, so
//! the schedule has one source of truth, unless `HEALTH_MONITOR_SCHEDULE` overrides it. Schedules are
//! six-field NCRONTAB (`second minute hour day month day-of-week`), in UTC, as on Azure.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("cannot read {path}: {reason}; set FUNCTIONS_APP_ROOT_PATH to the folder holding HealthMonitor/, or HEALTH_MONITOR_SCHEDULE")]
    Unreadable { path: String, reason: String },
    #[error("{path} has no timerTrigger binding with a schedule")]
    NoTimer { path: String },
    #[error("schedule {schedule:?} is not a six-field NCRONTAB expression: {reason}")]
    Invalid { schedule: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    /// Parses a six-field NCRONTAB expression. `%NAME%` means "the value of app setting NAME", as in
    /// function.json on Azure.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let text = text.trim();
        let resolved = match text.strip_prefix('%').and_then(|t| t.strip_suffix('%')) {
            Some(name) => std::env::var(name).map_err(|_| ScheduleError::Invalid {
                schedule: text.to_owned(),
                reason: format!("app setting {name} is not set"),
            })?,
            None => text.to_owned(),
        };
        let invalid = |reason: String| ScheduleError::Invalid {
            schedule: resolved.clone(),
            reason,
        };
        if resolved.split_whitespace().count() != 6 {
            return Err(invalid(
                "expected 6 fields: second minute hour day month day-of-week".into(),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(&resolved)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Schedule {
            text: resolved,
            cron,
        })
    }

    /// Reads the timer binding's schedule from `<app_root>/HealthMonitor/function.json`.
    pub fn from_function_json(app_root: &Path) -> Result<Self, ScheduleError> {
        let path = app_root.join("HealthMonitor").join("function.json");
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ScheduleError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ScheduleError::Unreadable {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let schedule = json["bindings"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| {
                b["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("timerTrigger"))
            })
            .and_then(|b| b["schedule"].as_str())
            .ok_or(ScheduleError::NoTimer { path: shown })?;
        Self::parse(schedule)
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

    #[test]
    fn reads_the_repository_function_json() {
        let s = Schedule::from_function_json(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(s.as_str(), "0 */5 * * * *");
        let missing = Schedule::from_function_json(Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(missing, ScheduleError::Unreadable { .. }));
    }
}
