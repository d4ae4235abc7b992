//! A Storage Queue's name, parsed once: the sweep's shard queue is read from a setting, and the
//! poison queue's name is derived from it, so both must be names the service accepts before any
//! request is made with them.
//!
//! Azure's rule (Naming Queues and Metadata): 3 to 63 characters, lower-case letters, digits and
//! hyphens, starting and ending with a letter or digit, no two hyphens in a row.

use super::ValidationError;

/// Suffix of the queue the Functions host (and the standalone poller) moves a message to once it
/// has failed `maxDequeueCount` times.
const POISON_SUFFIX: &str = "-poison";

/// The longest queue name Azure accepts.
const MAX_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueName(String);

impl QueueName {
    /// `field` names the setting in the error.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let wrong = |why: &str| ValidationError::new(field, format!("{field} {why}"));
        let chars_ok = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if raw.len() < 3 || raw.len() > MAX_LEN {
            return Err(wrong("must be 3 to 63 characters"));
        }
        if !chars_ok {
            return Err(wrong(
                "may hold only lower-case letters, digits and hyphens",
            ));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(wrong("must start and end with a letter or digit"));
        }
        if raw.contains("--") {
            return Err(wrong("must not hold two hyphens in a row"));
        }
        Ok(QueueName(raw.to_owned()))
    }

    /// A queue name that also leaves room for its poison queue (`<name>-poison`).
    pub fn parse_with_poison(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let name = Self::parse(field, raw)?;
        if raw.len() + POISON_SUFFIX.len() > MAX_LEN {
            return Err(ValidationError::new(
                field,
                format!(
                    "{field} must be at most {} characters, so that its poison queue's name (<name>{POISON_SUFFIX}) is valid",
                    MAX_LEN - POISON_SUFFIX.len()
                ),
            ));
        }
        Ok(name)
    }

    /// The queue a message goes to once it has failed too often.
    pub fn poison(&self) -> QueueName {
        QueueName(format!("{}{POISON_SUFFIX}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for QueueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_azures_rule_and_errors_name_the_setting() {
        for good in ["abc", "sweep-shards", "a1-b2", &"a".repeat(56)] {
            let name = QueueName::parse_with_poison("SWEEP_QUEUE", good).unwrap();
            assert_eq!(name.as_str(), good);
        }
        assert_eq!(
            QueueName::parse("Q", "sweep").unwrap().poison().as_str(),
            "sweep-poison"
        );
        for bad in [
            "ab",
            "Sweep",
            "sweep_shards",
            "-sweep",
            "sweep-",
            "a--b",
            "swé",
            &"a".repeat(64),
        ] {
            let e = QueueName::parse("SWEEP_QUEUE", bad).unwrap_err();
            assert_eq!(e.field, "SWEEP_QUEUE", "{bad}");
            assert!(e.message.starts_with("SWEEP_QUEUE "), "{}", e.message);
        }
        let e = QueueName::parse_with_poison("SWEEP_QUEUE", &"a".repeat(57)).unwrap_err();
        assert!(e.message.contains("poison"), "{}", e.message);
    }
}
