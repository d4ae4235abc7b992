//! The fanned-out sweep's settings: with `SWEEP_QUEUE` set, a tick cuts the registry into shards
//! and puts them on that Storage Queue, and every process probes the shards it takes (under the
//! host, the `ProbeShard` queue trigger delivers them; standalone, this process polls). Without it
//! the sweep runs in process, as before: small installs need no queue.

use super::environment::Environment;
use super::{schedule, ConfigError, HostMode};
use crate::domain::{QueueName, DEFAULT_SHARD_SIZE};
use std::time::Duration;

pub const SWEEP_QUEUE_VAR: &str = "SWEEP_QUEUE";

/// The most services one shard may hold: a shard is one invocation, and must end well inside the
/// function timeout even when every service in it is silent.
const MAX_SHARD_SIZE: u32 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutSettings {
    /// `SWEEP_QUEUE`: where the shards go; `<queue>-poison` holds those that failed too often.
    pub queue: QueueName,
    /// `SWEEP_SHARD_SIZE`: services per shard (default 250: docs/performance.md).
    pub shard_size: usize,
    /// The timer's schedule text (as the standalone timer reads it, in both modes): a sweep's
    /// window is the interval between two of its occurrences.
    pub schedule: String,
    /// `SWEEP_WINDOW_SECONDS`: the window instead of the schedule's interval.
    pub window: Option<Duration>,
    /// `SWEEP_QUEUE_MAX_DEQUEUE_COUNT`: tries before the poller moves a shard to the poison queue
    /// (the host's `maxDequeueCount`, default 5, does the same under the host).
    pub max_dequeue_count: u32,
    /// `SWEEP_QUEUE_VISIBILITY_SECONDS`: how long a shard the poller took stays invisible without a
    /// renewal, so how long a dead worker's shard waits before another process takes it.
    pub visibility: Duration,
    /// `SWEEP_QUEUE_MAX_POLL_MS`: the poller's longest back-off on an empty queue.
    pub max_poll_interval: Duration,
    /// Standalone mode: this process polls the queue itself. Under the host never (the host's
    /// queue trigger delivers, and a second consumer would skew its scaling).
    pub poll: bool,
}

pub(super) fn settings(
    env: &Environment<impl Fn(&str) -> Option<String>>,
    mode: &HostMode,
) -> Result<Option<FanoutSettings>, ConfigError> {
    let Some(raw) = env.text(SWEEP_QUEUE_VAR) else {
        return Ok(None);
    };
    let queue = QueueName::parse_with_poison(SWEEP_QUEUE_VAR, raw.trim()).map_err(|e| {
        ConfigError::Invalid {
            variable: SWEEP_QUEUE_VAR.to_owned(),
            reason: e.message,
        }
    })?;
    let shard_size = env.count("SWEEP_SHARD_SIZE", DEFAULT_SHARD_SIZE as u32)?;
    if shard_size > MAX_SHARD_SIZE {
        return Err(ConfigError::Invalid {
            variable: "SWEEP_SHARD_SIZE".to_owned(),
            reason: format!("expected at most {MAX_SHARD_SIZE}, got {shard_size}"),
        });
    }
    let window = env
        .parsed::<u64>("SWEEP_WINDOW_SECONDS", "a whole number of seconds above 0")?
        .map(|s| {
            (s > 0)
                .then(|| Duration::from_secs(s))
                .ok_or(ConfigError::Invalid {
                    variable: "SWEEP_WINDOW_SECONDS".to_owned(),
                    reason: "expected a whole number of seconds above 0, got 0".to_owned(),
                })
        })
        .transpose()?;
    let schedule = match window {
        // Not needed, and under the host the folder holding function.json may not be ours to read.
        Some(_) => String::new(),
        None => schedule::text(env)?,
    };
    let visibility =
        Duration::from_secs(u64::from(env.count("SWEEP_QUEUE_VISIBILITY_SECONDS", 30)?));
    Ok(Some(FanoutSettings {
        queue,
        shard_size: shard_size as usize,
        schedule,
        window,
        max_dequeue_count: env.count("SWEEP_QUEUE_MAX_DEQUEUE_COUNT", 5)?,
        visibility: visibility.max(Duration::from_secs(3)),
        max_poll_interval: env.millis("SWEEP_QUEUE_MAX_POLL_MS", 2_000)?,
        poll: mode.is_standalone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(
        vars: &[(&str, &str)],
        standalone: bool,
    ) -> Result<Option<FanoutSettings>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Environment::new(move |name: &str| vars.get(name).cloned());
        let mode = if standalone {
            HostMode::Standalone {
                bind: "127.0.0.1:0".parse().unwrap(),
            }
        } else {
            HostMode::CustomHandler { port: 1 }
        };
        settings(&env, &mode)
    }

    #[test]
    fn without_the_queue_the_sweep_stays_in_process() {
        assert_eq!(read(&[], true).unwrap(), None);
        assert_eq!(read(&[("SWEEP_QUEUE", " ")], true).unwrap(), None);
    }

    #[test]
    fn the_queue_name_is_checked_and_the_error_names_the_variable() {
        for bad in ["Sweep", "ab", "a--b", &"a".repeat(60)] {
            let e = read(&[("SWEEP_QUEUE", bad)], true).unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("SWEEP_QUEUE is invalid: "), "{text}");
            assert!(!text.contains(bad), "the value stays out: {text}");
        }
        let e = read(
            &[("SWEEP_QUEUE", "shards"), ("SWEEP_SHARD_SIZE", "9000")],
            true,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("SWEEP_SHARD_SIZE"), "{e}");
        let e = read(
            &[("SWEEP_QUEUE", "shards"), ("SWEEP_WINDOW_SECONDS", "0")],
            true,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("SWEEP_WINDOW_SECONDS"), "{e}");
    }

    #[test]
    fn defaults_and_who_polls() {
        let vars = [
            ("SWEEP_QUEUE", "sweep-shards"),
            ("HEALTH_MONITOR_SCHEDULE", "0 */5 * * * *"),
        ];
        let standalone = read(&vars, true).unwrap().unwrap();
        assert_eq!(standalone.queue.as_str(), "sweep-shards");
        assert_eq!(standalone.shard_size, DEFAULT_SHARD_SIZE);
        assert_eq!(standalone.schedule, "0 */5 * * * *");
        assert_eq!(standalone.window, None);
        assert_eq!(standalone.max_dequeue_count, 5);
        assert_eq!(standalone.visibility, Duration::from_secs(30));
        assert_eq!(standalone.max_poll_interval, Duration::from_secs(2));
        assert!(standalone.poll);
        let hosted = read(&vars, false).unwrap().unwrap();
        assert!(!hosted.poll);
        let windowed = read(
            &[
                ("SWEEP_QUEUE", "sweep-shards"),
                ("SWEEP_WINDOW_SECONDS", "60"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(windowed.window, Some(Duration::from_secs(60)));
    }
}
