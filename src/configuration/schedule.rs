//! The standalone timer's schedule text. Under the Functions host the timer is the host's; running on
//! our own we follow the same schedule, so it has one source of truth: the timer binding in
//! `HealthMonitor/function.json`, unless `HEALTH_MONITOR_SCHEDULE` overrides it.

use super::environment::Environment;
use super::ConfigError;
use std::path::{Path, PathBuf};

/// The standalone timer's schedule: `HEALTH_MONITOR_SCHEDULE`, else the timer binding of
/// `<FUNCTIONS_APP_ROOT_PATH>/HealthMonitor/function.json`, so the schedule has one source of truth.
/// `%NAME%` means "the value of app setting NAME", as in function.json on Azure. Whether the text is
/// a valid NCRONTAB expression is `scheduler`'s to say.
pub(super) fn text(
    env: &Environment<impl Fn(&str) -> Option<String>>,
) -> Result<String, ConfigError> {
    let text = match env.text("HEALTH_MONITOR_SCHEDULE") {
        Some(text) => text,
        None => {
            let app_root = env
                .text("FUNCTIONS_APP_ROOT_PATH")
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            schedule_in_function_json(&app_root)?
        }
    };
    let text = text.trim();
    match text.strip_prefix('%').and_then(|t| t.strip_suffix('%')) {
        Some(name) => env.raw(name).ok_or_else(|| ConfigError::UnsetAppSetting {
            schedule: text.to_owned(),
            name: name.to_owned(),
        }),
        None => Ok(text.to_owned()),
    }
}

/// The `schedule` of the timerTrigger binding in `<app_root>/HealthMonitor/function.json`.
fn schedule_in_function_json(app_root: &Path) -> Result<String, ConfigError> {
    let path = app_root.join("HealthMonitor").join("function.json");
    let shown = path.display().to_string();
    let unreadable = |reason: String| ConfigError::FunctionJsonUnreadable {
        path: shown.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| unreadable(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    json["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| {
            b["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("timerTrigger"))
        })
        .and_then(|b| b["schedule"].as_str())
        .map(str::to_owned)
        .ok_or(ConfigError::NoTimer { path: shown })
}
