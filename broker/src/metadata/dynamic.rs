//! Broker settings changed while the broker runs (Kafka's dynamic per-broker configuration):
//! set with IncrementalAlterConfigs on this broker's BROKER resource, they take precedence over
//! the flags the broker started with, apply at once to every topic that does not override them,
//! and are kept in `dynamic-config.json` in the data directory so that a restart keeps them.
//!
//! The topic defaults are dynamic here (as in Kafka, whose log defaults are the
//! reconfigurable part of a broker's configuration), and so is the replication throttle
//! (`leader.replication.throttled.rate`, a dynamic broker setting in Kafka too); everything else
//! is read at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio::sync::watch;

use super::topic_config::ConfigError;
use crate::config::BrokerConfig;

const FILE_NAME: &str = "dynamic-config.json";

/// A dynamic setting: its broker name, the rule its values follow, and where it goes in the
/// configuration.
struct DynamicKey {
    name: &'static str,
    rule: Rule,
    apply: fn(&mut BrokerConfig, i64),
}

/// What a dynamic setting's value must be.
enum Rule {
    /// The default of this topic setting, whose rules apply.
    TopicDefault(&'static str),
    /// A long of at least 0 (Kafka's replication quotas).
    NonNegativeLong,
}

const KEYS: &[DynamicKey] = &[
    DynamicKey {
        name: "log.retention.ms",
        rule: Rule::TopicDefault("retention.ms"),
        apply: |c, v| c.log_retention_ms = v,
    },
    DynamicKey {
        name: "log.retention.bytes",
        rule: Rule::TopicDefault("retention.bytes"),
        apply: |c, v| c.log_retention_bytes = v,
    },
    DynamicKey {
        name: "log.segment.bytes",
        rule: Rule::TopicDefault("segment.bytes"),
        apply: |c, v| c.log_segment_bytes = v,
    },
    DynamicKey {
        name: "log.roll.ms",
        rule: Rule::TopicDefault("segment.ms"),
        apply: |c, v| c.log_segment_ms = v,
    },
    DynamicKey {
        name: "log.flush.interval.messages",
        rule: Rule::TopicDefault("flush.messages"),
        apply: |c, v| c.log_flush_messages = v,
    },
    DynamicKey {
        name: "log.flush.interval.ms",
        rule: Rule::TopicDefault("flush.ms"),
        apply: |c, v| c.log_flush_ms = v,
    },
    DynamicKey {
        name: "message.max.bytes",
        rule: Rule::TopicDefault("max.message.bytes"),
        apply: |c, v| c.max_message_bytes = v as usize,
    },
    DynamicKey {
        name: "leader.replication.throttled.rate",
        rule: Rule::NonNegativeLong,
        apply: |c, v| c.leader_replication_throttled_rate = v,
    },
];

/// Whether `name` can be changed without a restart.
pub fn is_dynamic(name: &str) -> bool {
    KEYS.iter().any(|k| k.name == name)
}

/// Checks every override: a known dynamic key with a valid value.
pub fn validate(overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in overrides {
        let Some(key) = KEYS.iter().find(|k| k.name == name) else {
            return Err(ConfigError {
                key: name.clone(),
                reason: "cannot be changed while the broker runs (it is read at start, or \
                         unknown); the dynamic settings are the log defaults, \
                         message.max.bytes and leader.replication.throttled.rate"
                    .into(),
            });
        };
        key.rule.check(value).map_err(|reason| ConfigError {
            key: name.clone(),
            reason,
        })?;
    }
    Ok(())
}

impl Rule {
    fn check(&self, value: &str) -> Result<(), String> {
        match self {
            Rule::TopicDefault(topic_key) => {
                let topic_setting = BTreeMap::from([(topic_key.to_string(), value.to_string())]);
                super::TopicConfig::validate(&topic_setting).map_err(|e| e.reason)
            }
            Rule::NonNegativeLong => match value.parse::<i64>() {
                Ok(long) if long >= 0 => Ok(()),
                Ok(_) => Err("must be at least 0".into()),
                Err(_) => Err(format!("{value:?} is not a long")),
            },
        }
    }
}

/// The broker's dynamic overrides and the configuration they produce with its flags.
pub struct DynamicConfig {
    path: PathBuf,
    flags: BrokerConfig,
    state: RwLock<State>,
    /// One change at a time; the file is written under it, not under `state`'s lock, so
    /// readers (every produce) never wait for a disk write.
    writer: std::sync::Mutex<()>,
    /// Counts changes; the metadata sync re-applies topic configurations when it moves.
    changes: watch::Sender<u64>,
}

struct State {
    overrides: BTreeMap<String, String>,
    effective: Arc<BrokerConfig>,
}

impl DynamicConfig {
    /// Loads the overrides kept in `data_dir`, if any.
    pub fn open(flags: &BrokerConfig, data_dir: &Path) -> anyhow::Result<DynamicConfig> {
        let path = data_dir.join(FILE_NAME);
        let overrides: BTreeMap<String, String> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // A setting this version does not know (kept by a newer one before a downgrade) or no
        // longer accepts is left out, not fatal: the broker starts on its flags for it.
        let overrides: BTreeMap<String, String> = overrides
            .into_iter()
            .filter(|(name, value)| {
                let single = BTreeMap::from([(name.clone(), value.clone())]);
                let valid = validate(&single);
                if let Err(error) = &valid {
                    tracing::warn!(file = %path.display(), %error, "dynamic setting ignored");
                }
                valid.is_ok()
            })
            .collect();
        let effective = Arc::new(effective(flags, &overrides));
        Ok(DynamicConfig {
            path,
            flags: flags.clone(),
            state: RwLock::new(State {
                overrides,
                effective,
            }),
            writer: std::sync::Mutex::new(()),
            changes: watch::channel(0).0,
        })
    }

    /// The flags with the dynamic overrides applied.
    pub fn effective(&self) -> Arc<BrokerConfig> {
        self.state
            .read()
            .expect("dynamic config lock")
            .effective
            .clone()
    }

    /// The current overrides.
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.state
            .read()
            .expect("dynamic config lock")
            .overrides
            .clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Sets and removes overrides, durably, then applies them.
    pub fn alter(
        &self,
        set: BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<(), AlterError> {
        let _writer = self.writer.lock().expect("dynamic config writer lock");
        let current = self.overrides();
        let mut overrides = current.clone();
        for name in delete {
            overrides.remove(name);
        }
        overrides.extend(set);
        validate(&overrides).map_err(AlterError::Invalid)?;
        if overrides == current {
            return Ok(());
        }
        write_atomically(&self.path, &overrides).map_err(AlterError::Storage)?;
        let effective = Arc::new(effective(&self.flags, &overrides));
        let mut state = self.state.write().expect("dynamic config lock");
        state.effective = effective;
        state.overrides = overrides;
        drop(state);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlterError {
    #[error(transparent)]
    Invalid(ConfigError),
    #[error("saving the dynamic configuration: {0:#}")]
    Storage(anyhow::Error),
}

fn effective(flags: &BrokerConfig, overrides: &BTreeMap<String, String>) -> BrokerConfig {
    let mut config = flags.clone();
    for key in KEYS {
        if let Some(value) = overrides.get(key.name).and_then(|v| v.parse::<i64>().ok()) {
            (key.apply)(&mut config, value);
        }
    }
    config
}

fn write_atomically(path: &Path, overrides: &BTreeMap<String, String>) -> anyhow::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(&serde_json::to_vec_pretty(overrides)?)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_take_precedence_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let flags = BrokerConfig::parse_from(["millrace-broker", "--log-retention-ms=5000"]);
        let dynamic = DynamicConfig::open(&flags, dir.path()).unwrap();
        assert_eq!(dynamic.effective().log_retention_ms, 5000);
        let changes = dynamic.subscribe();

        dynamic
            .alter(
                settings(&[("log.retention.ms", "1000"), ("message.max.bytes", "2048")]),
                &[],
            )
            .unwrap();
        assert!(changes.has_changed().unwrap());
        assert_eq!(dynamic.effective().log_retention_ms, 1000);
        assert_eq!(dynamic.effective().max_message_bytes, 2048);

        let reopened = DynamicConfig::open(&flags, dir.path()).unwrap();
        assert_eq!(reopened.effective().log_retention_ms, 1000);
        reopened
            .alter(BTreeMap::new(), &["log.retention.ms".to_string()])
            .unwrap();
        assert_eq!(
            reopened.effective().log_retention_ms,
            5000,
            "back to the flag"
        );
        assert_eq!(reopened.effective().max_message_bytes, 2048);
    }

    #[test]
    fn the_replication_throttle_is_dynamic_and_unlimited_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let flags = BrokerConfig::parse_from(["millrace-broker"]);
        let dynamic = DynamicConfig::open(&flags, dir.path()).unwrap();
        assert_eq!(
            dynamic.effective().leader_replication_throttled_rate,
            i64::MAX
        );
        for rate in ["1048576", "0"] {
            dynamic
                .alter(
                    settings(&[("leader.replication.throttled.rate", rate)]),
                    &[],
                )
                .unwrap();
            assert_eq!(
                dynamic
                    .effective()
                    .leader_replication_throttled_rate
                    .to_string(),
                rate
            );
        }
        dynamic
            .alter(
                BTreeMap::new(),
                &["leader.replication.throttled.rate".to_string()],
            )
            .unwrap();
        assert_eq!(
            dynamic.effective().leader_replication_throttled_rate,
            i64::MAX
        );
    }

    #[test]
    fn a_setting_this_version_does_not_know_is_ignored_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            r#"{"log.retention.ms": "1000", "log.future.setting": "1"}"#,
        )
        .unwrap();
        let flags = BrokerConfig::parse_from(["millrace-broker"]);
        let dynamic = DynamicConfig::open(&flags, dir.path()).unwrap();
        assert_eq!(dynamic.effective().log_retention_ms, 1000);
        assert_eq!(dynamic.overrides().len(), 1);
    }

    #[test]
    fn refuses_static_and_unknown_settings_and_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let flags = BrokerConfig::parse_from(["millrace-broker"]);
        let dynamic = DynamicConfig::open(&flags, dir.path()).unwrap();
        for (key, value) in [
            ("auto.create.topics.enable", "true"),
            ("no.such.setting", "1"),
            ("log.retention.ms", "soon"),
            ("log.segment.bytes", "1"),
            ("leader.replication.throttled.rate", "-1"),
            ("leader.replication.throttled.rate", "1MB"),
        ] {
            match dynamic.alter(settings(&[(key, value)]), &[]) {
                Err(AlterError::Invalid(error)) => assert_eq!(error.key, key),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        assert!(dynamic.overrides().is_empty(), "nothing half-applied");
        assert!(!dir.path().join(FILE_NAME).exists());
    }
}
