//! server.properties-style settings (Kafka's names, as users know them from MSK configurations)
//! translated to `millrace-broker` flags. A key the broker does not implement is refused, never
//! dropped: a configuration that silently does nothing is worse than an error.
//!
//! Some settings are also dynamic: a running broker takes them through IncrementalAlterConfigs
//! on its own BROKER resource (Kafka's dynamic broker configuration: the log defaults and
//! message.max.bytes), so a configuration change that touches only those restarts nothing.

use std::collections::BTreeMap;

use super::PlatformError;
use crate::domain::SettingsChange;

/// How a setting's value becomes a flag.
#[derive(Clone, Copy)]
enum Kind {
    /// An integer, passed as `--flag=N`.
    Integer(&'static str),
    /// An integer of hours, passed as milliseconds.
    HoursAsMillis(&'static str),
    /// `true` adds the flag, `false` leaves it out (the broker's default is off).
    Switch(&'static str),
}

const SETTINGS: &[(&str, Kind)] = &[
    (
        "auto.create.topics.enable",
        Kind::Switch("--auto-create-topics"),
    ),
    ("num.partitions", Kind::Integer("--default-partitions")),
    (
        "socket.request.max.bytes",
        Kind::Integer("--max-frame-bytes"),
    ),
    ("message.max.bytes", Kind::Integer("--max-message-bytes")),
    ("max.connections", Kind::Integer("--max-connections")),
    ("log.retention.ms", Kind::Integer("--log-retention-ms")),
    (
        "log.retention.hours",
        Kind::HoursAsMillis("--log-retention-ms"),
    ),
    (
        "log.retention.bytes",
        Kind::Integer("--log-retention-bytes"),
    ),
    ("log.segment.bytes", Kind::Integer("--log-segment-bytes")),
    ("log.roll.ms", Kind::Integer("--log-segment-ms")),
    (
        "log.flush.interval.messages",
        Kind::Integer("--log-flush-messages"),
    ),
    ("log.flush.interval.ms", Kind::Integer("--log-flush-ms")),
    (
        "log.retention.check.interval.ms",
        Kind::Integer("--retention-check-interval-ms"),
    ),
    (
        "offsets.topic.num.partitions",
        Kind::Integer("--offsets-topic-partitions"),
    ),
    (
        "group.initial.rebalance.delay.ms",
        Kind::Integer("--group-initial-rebalance-delay-ms"),
    ),
    (
        "group.min.session.timeout.ms",
        Kind::Integer("--group-min-session-timeout-ms"),
    ),
    (
        "group.max.session.timeout.ms",
        Kind::Integer("--group-max-session-timeout-ms"),
    ),
];

/// The setting a running broker takes under its own name, for the settings that are dynamic.
fn dynamic_name(key: &str) -> Option<&'static str> {
    Some(match key {
        "log.retention.ms" => "log.retention.ms",
        "log.retention.hours" => "log.retention.ms",
        "log.retention.bytes" => "log.retention.bytes",
        "log.segment.bytes" => "log.segment.bytes",
        "log.roll.ms" => "log.roll.ms",
        "log.flush.interval.messages" => "log.flush.interval.messages",
        "log.flush.interval.ms" => "log.flush.interval.ms",
        "message.max.bytes" => "message.max.bytes",
        _ => return None,
    })
}

/// The smallest value a broker accepts for a dynamic setting (as its topic-level rules say).
fn dynamic_minimum(name: &str) -> i64 {
    match name {
        "log.segment.bytes" => 14,
        "log.roll.ms" => 1,
        "log.flush.interval.ms" | "message.max.bytes" => 0,
        _ => -1,
    }
}

/// Every dynamic setting as brokers name it (what a broker is told to forget when a
/// configuration no longer sets it).
pub const DYNAMIC_BROKER_SETTINGS: &[&str] = &[
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "message.max.bytes",
];

/// The dynamic settings of `config`, as brokers name them, with the values their flags would
/// get (hours become milliseconds; of two keys for one setting the later flag wins, as on the
/// command line).
pub fn dynamic_settings(
    config: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, PlatformError> {
    let mut dynamic = BTreeMap::new();
    for (key, value) in config {
        let Some(name) = dynamic_name(key) else {
            continue;
        };
        let flags = broker_flags(&BTreeMap::from([(key.clone(), value.clone())]))?;
        if let Some((_, value)) = flags.first().and_then(|flag| flag.split_once('=')) {
            let minimum = dynamic_minimum(name);
            if value.parse::<i64>().is_ok_and(|v| v < minimum) {
                return Err(PlatformError::InvalidSpec {
                    field: format!("brokerConfig.{key}"),
                    reason: format!("{value} is below the minimum {minimum}"),
                });
            }
            dynamic.insert(name.to_string(), value.to_string());
        }
    }
    Ok(dynamic)
}

/// What going from the settings `from` to `to` changes, and whether a restart is needed.
pub fn settings_change(
    from: &BTreeMap<String, String>,
    to: &BTreeMap<String, String>,
) -> Result<SettingsChange, PlatformError> {
    let changed: Vec<String> = from
        .keys()
        .chain(to.keys())
        .filter(|key| from.get(*key) != to.get(*key))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    // A removed setting restarts too, even a dynamic one: brokers may hold it as a flag from
    // their last start, and only a start without it returns it to the broker's default.
    let needs_restart = changed
        .iter()
        .filter(|key| dynamic_name(key).is_none() || !to.contains_key(*key))
        .cloned()
        .collect();
    let dynamic = dynamic_settings(to)?;
    Ok(SettingsChange {
        dynamic_changed: dynamic_settings(from).ok().as_ref() != Some(&dynamic),
        changed,
        needs_restart,
        dynamic,
    })
}

/// The keys a configuration may set, for validating user input early.
pub fn supported_keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|(key, _)| *key)
}

/// The broker flags for `config`, or the first key that is unknown or has a bad value.
pub fn broker_flags(config: &BTreeMap<String, String>) -> Result<Vec<String>, PlatformError> {
    let mut flags = Vec::new();
    for (key, value) in config {
        let invalid = |reason: String| PlatformError::InvalidSpec {
            field: format!("brokerConfig.{key}"),
            reason,
        };
        let Some((_, kind)) = SETTINGS.iter().find(|(known, _)| known == key) else {
            return Err(invalid(
                "not a setting millrace brokers support".to_string(),
            ));
        };
        let value = value.trim();
        let integer = || {
            value
                .parse::<i64>()
                .map_err(|_| invalid(format!("{value:?} is not an integer")))
        };
        match *kind {
            Kind::Integer(flag) => flags.push(format!("{flag}={}", integer()?)),
            Kind::HoursAsMillis(flag) => {
                let hours = integer()?;
                let millis = if hours < 0 {
                    -1
                } else {
                    hours
                        .checked_mul(3_600_000)
                        .ok_or_else(|| invalid(format!("{hours} hours is too long")))?
                };
                flags.push(format!("{flag}={millis}"));
            }
            Kind::Switch(flag) => match value {
                "true" => flags.push(flag.to_string()),
                "false" => {}
                other => return Err(invalid(format!("{other:?} is not true or false"))),
            },
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn translates_known_settings() {
        let flags = broker_flags(&config(&[
            ("auto.create.topics.enable", "true"),
            ("num.partitions", "3"),
            ("log.retention.hours", "24"),
        ]))
        .unwrap();
        assert_eq!(
            flags,
            [
                "--auto-create-topics",
                "--log-retention-ms=86400000",
                "--default-partitions=3"
            ]
        );
        assert!(
            broker_flags(&config(&[("auto.create.topics.enable", "false")]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values_naming_the_key() {
        let error = broker_flags(&config(&[("unclean.leader.election.enable", "true")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("brokerConfig.unclean.leader.election.enable"),
            "{error}"
        );
        let error = broker_flags(&config(&[("num.partitions", "many")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("brokerConfig.num.partitions"), "{error}");
        assert!(broker_flags(&config(&[("auto.create.topics.enable", "yes")])).is_err());
    }

    #[test]
    fn a_change_of_dynamic_settings_needs_no_restart() {
        let from = config(&[("log.retention.hours", "1"), ("num.partitions", "3")]);
        let to = config(&[
            ("log.retention.hours", "2"),
            ("message.max.bytes", "2000000"),
            ("num.partitions", "3"),
        ]);
        let change = settings_change(&from, &to).unwrap();
        assert_eq!(change.changed, ["log.retention.hours", "message.max.bytes"]);
        assert!(!change.restarts(), "{change:?}");
        assert!(change.dynamic_changed);
        assert_eq!(
            change.dynamic,
            config(&[
                ("log.retention.ms", "7200000"),
                ("message.max.bytes", "2000000")
            ])
        );
        assert!(
            change.describe(false).contains("without a restart"),
            "{}",
            change.describe(false)
        );
    }

    #[test]
    fn a_change_of_a_static_setting_restarts_and_says_which() {
        let from = config(&[
            ("auto.create.topics.enable", "false"),
            ("log.roll.ms", "1000"),
        ]);
        let to = config(&[("auto.create.topics.enable", "true")]);
        let change = settings_change(&from, &to).unwrap();
        assert_eq!(
            change.needs_restart,
            ["auto.create.topics.enable", "log.roll.ms"],
            "a removed dynamic setting needs a start without its flag"
        );
        assert!(change.dynamic_changed);
        assert!(change.dynamic.is_empty());
        let text = change.describe(false);
        assert!(
            text.contains("rolling restart for auto.create.topics.enable"),
            "{text}"
        );
        let same_dynamic =
            settings_change(&to, &config(&[("auto.create.topics.enable", "false")])).unwrap();
        assert!(!same_dynamic.dynamic_changed);
    }

    #[test]
    fn a_dynamic_value_the_brokers_would_refuse_is_refused_first() {
        let error = dynamic_settings(&config(&[("log.segment.bytes", "1")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("brokerConfig.log.segment.bytes"), "{error}");
    }

    #[test]
    fn every_dynamic_setting_is_a_broker_name() {
        for key in supported_keys() {
            if let Some(name) = dynamic_name(key) {
                assert!(DYNAMIC_BROKER_SETTINGS.contains(&name), "{key}");
            }
        }
    }

    #[test]
    fn every_supported_key_is_listed() {
        assert!(supported_keys().any(|key| key == "log.segment.bytes"));
    }
}
