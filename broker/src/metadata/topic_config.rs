//! Topic configuration: the keys a topic may set, their broker-wide defaults, and their parsing
//! into the storage engine's [`LogConfig`].

use std::collections::BTreeMap;

use millrace_log::LogConfig;

use crate::config::BrokerConfig;

/// A configuration key the broker understands, with how to read its default.
struct ConfigKey {
    name: &'static str,
    default: fn(&BrokerConfig) -> String,
    validate: fn(&str) -> Result<(), String>,
    doc: &'static str,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |value| match value.parse::<i64>() {
        Ok(v) if v >= min => Ok(()),
        Ok(v) => Err(format!("{v} is below the minimum {min}")),
        Err(_) => Err(format!("{value:?} is not a whole number")),
    }
}

const KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: "cleanup.policy",
        default: |_| "delete".into(),
        validate: |v| match v {
            "delete" => Ok(()),
            "compact" | "compact,delete" | "delete,compact" => {
                Err("log compaction is not supported yet; use cleanup.policy=delete".into())
            }
            other => Err(format!("unknown cleanup.policy {other:?}")),
        },
        doc: "delete: old segments are removed by retention.ms / retention.bytes",
    },
    ConfigKey {
        name: "retention.ms",
        default: |c| c.log_retention_ms.to_string(),
        validate: |v| long_at_least(-1)(v),
        doc: "how long a segment is kept after its newest record (-1: forever)",
    },
    ConfigKey {
        name: "retention.bytes",
        default: |c| c.log_retention_bytes.to_string(),
        validate: |v| long_at_least(-1)(v),
        doc: "largest size of a partition before old segments are removed (-1: unlimited)",
    },
    ConfigKey {
        name: "segment.bytes",
        default: |c| c.log_segment_bytes.to_string(),
        validate: |v| long_at_least(14)(v),
        doc: "size at which the active segment is rolled",
    },
    ConfigKey {
        name: "segment.ms",
        default: |c| c.log_segment_ms.to_string(),
        validate: |v| long_at_least(1)(v),
        doc: "age at which the active segment is rolled",
    },
    ConfigKey {
        name: "flush.messages",
        default: |c| c.log_flush_messages.to_string(),
        validate: |v| long_at_least(-1)(v),
        doc: "fsync after this many records (-1: not by count)",
    },
    ConfigKey {
        name: "flush.ms",
        default: |c| c.log_flush_ms.to_string(),
        validate: |v| long_at_least(0)(v),
        doc: "fsync when the oldest unflushed record is this old",
    },
    ConfigKey {
        name: "max.message.bytes",
        default: |c| c.max_message_bytes.to_string(),
        validate: |v| long_at_least(0)(v),
        doc: "largest record batch accepted",
    },
    ConfigKey {
        name: "min.insync.replicas",
        default: |_| "1".into(),
        validate: |v| long_at_least(1)(v),
        doc: "replicas that must have a record before acks=all succeeds",
    },
];

/// A configuration change the broker refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

/// Where a described value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Topic,
    Default,
}

/// One described configuration entry.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
    pub doc: &'static str,
}

/// A topic's effective configuration: broker defaults overlaid with the topic's own values.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    entries: Vec<ConfigEntry>,
}

impl TopicConfig {
    /// Checks that every key is known and every value valid.
    pub fn validate(overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        for (key, value) in overrides {
            let Some(spec) = KEYS.iter().find(|k| k.name == key) else {
                return Err(ConfigError {
                    key: key.clone(),
                    reason: "unknown or unsupported topic configuration".into(),
                });
            };
            (spec.validate)(value).map_err(|reason| ConfigError {
                key: key.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// The effective configuration; `overrides` must have passed [`TopicConfig::validate`].
    pub fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> TopicConfig {
        let entries = KEYS
            .iter()
            .map(|key| match overrides.get(key.name) {
                Some(value) => ConfigEntry {
                    name: key.name,
                    value: value.clone(),
                    source: ConfigSource::Topic,
                    doc: key.doc,
                },
                None => ConfigEntry {
                    name: key.name,
                    value: (key.default)(broker),
                    source: ConfigSource::Default,
                    doc: key.doc,
                },
            })
            .collect();
        TopicConfig { entries }
    }

    pub fn entries(&self) -> &[ConfigEntry] {
        &self.entries
    }

    fn long(&self, name: &str) -> i64 {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.parse().ok())
            .unwrap_or_else(|| panic!("{name} is a validated numeric topic config"))
    }

    pub fn min_insync_replicas(&self) -> i64 {
        self.long("min.insync.replicas")
    }

    /// The storage engine's view of this configuration.
    pub fn log_config(&self) -> LogConfig {
        let flush_messages = self.long("flush.messages");
        LogConfig {
            segment_bytes: self.long("segment.bytes") as u64,
            segment_ms: self.long("segment.ms"),
            retention_ms: self.long("retention.ms"),
            retention_bytes: self.long("retention.bytes"),
            flush_messages: if flush_messages < 0 {
                i64::MAX
            } else {
                flush_messages
            },
            flush_ms: self.long("flush.ms"),
            max_batch_bytes: self.long("max.message.bytes") as usize,
            ..LogConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn broker_config() -> BrokerConfig {
        BrokerConfig::parse_from(["millrace-broker"])
    }

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn topic_values_override_broker_defaults() {
        let config = TopicConfig::resolve(
            &broker_config(),
            &overrides(&[("retention.ms", "1000"), ("segment.bytes", "4096")]),
        );
        let log = config.log_config();
        assert_eq!(log.retention_ms, 1000);
        assert_eq!(log.segment_bytes, 4096);
        assert_eq!(log.flush_ms, 1000);
        assert_eq!(log.flush_messages, i64::MAX);
    }

    #[test]
    fn refuses_unknown_keys_bad_values_and_compaction() {
        for (key, value) in [
            ("no.such.key", "1"),
            ("retention.ms", "soon"),
            ("retention.ms", "-2"),
            ("segment.bytes", "1"),
            ("cleanup.policy", "compact"),
        ] {
            let error = TopicConfig::validate(&overrides(&[(key, value)])).unwrap_err();
            assert_eq!(error.key, key);
        }
    }
}
