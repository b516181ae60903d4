//! server.properties-style settings (Kafka's names, as users know them from MSK configurations)
//! translated to `millrace-broker` flags. A key the broker does not implement is refused, never
//! dropped: a configuration that silently does nothing is worse than an error.

use std::collections::BTreeMap;

use super::PlatformError;

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
    fn every_supported_key_is_listed() {
        assert!(supported_keys().any(|key| key == "log.segment.bytes"));
    }
}
