//! Configurations: named, revisioned server.properties documents.

use std::collections::BTreeMap;

use uuid::Uuid;

const MAX_NAME: usize = 64;
const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

/// 1 to 64 characters of `[A-Za-z0-9-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationName(String);

impl ConfigurationName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "must be 1 to {MAX_NAME} characters of A-Z, a-z, 0-9 and -, starting with a letter \
                 or digit (got {name:?})"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn configuration_arn(name: &ConfigurationName, id: Uuid) -> String {
    format!(
        "arn:millrace:kafka:local:configuration/{}/{id}",
        name.as_str()
    )
}

/// A server.properties document: `key=value` lines, blank lines and `#` or `!` comments.
/// Keys are `[a-z0-9._-]+`; at most 32 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProperties(String);

impl ServerProperties {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_PROPERTIES_BYTES {
            return Err(format!("must be at most {MAX_PROPERTIES_BYTES} bytes"));
        }
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, _value)) = line.split_once('=') else {
                return Err(format!("line {}: expected key=value", number + 1));
            };
            let key = key.trim();
            let key_ok = !key.is_empty()
                && key.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                });
            if !key_ok {
                return Err(format!(
                    "line {}: {key:?} is not a property name (a-z, 0-9, ., _ and -)",
                    number + 1
                ));
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `key=value` lines of a (validated) server.properties document.
pub fn properties_pairs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_become_pairs() {
        let pairs =
            properties_pairs("# comment\nauto.create.topics.enable = true\n\nnum.partitions=3");
        assert_eq!(pairs["auto.create.topics.enable"], "true");
        assert_eq!(pairs["num.partitions"], "3");
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn server_properties_are_key_value_lines() {
        assert!(ServerProperties::parse(
            "# c\nauto.create.topics.enable=true\n\nlog.retention.hours=1"
        )
        .is_ok());
        let err = ServerProperties::parse("a=1\nnot a property").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        assert!(ServerProperties::parse("Bad Key=1").is_err());
    }
}
