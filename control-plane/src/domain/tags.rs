//! Resource tags, with MSK's limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const MAX_TAGS: usize = 50;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 256;

/// At most 50 tags; keys 1 to 128 characters not starting with `aws:`, values up to 256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    pub fn parse(tags: BTreeMap<String, String>) -> Result<Self, String> {
        if tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags, not {}", tags.len()));
        }
        for (key, value) in &tags {
            let key_len = key.chars().count();
            if key_len == 0 || key_len > MAX_KEY {
                return Err(format!("tag key {key:?} must be 1 to {MAX_KEY} characters"));
            }
            if key.starts_with("aws:") {
                return Err(format!("tag key {key:?} uses the reserved prefix aws:"));
            }
            if value.chars().count() > MAX_VALUE {
                return Err(format!(
                    "tag {key:?} has a value over {MAX_VALUE} characters"
                ));
            }
        }
        Ok(Self(tags))
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// These tags with `other` added (replacing equal keys); fails past the limit.
    pub fn merged(&self, other: &Tags) -> Result<Tags, String> {
        let mut all = self.0.clone();
        all.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        Tags::parse(all)
    }

    pub fn without(&self, keys: &[String]) -> Tags {
        let mut all = self.0.clone();
        for key in keys {
            all.remove(key);
        }
        Tags(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_limits() {
        let many: BTreeMap<_, _> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(Tags::parse(many).is_err());
        assert!(Tags::parse([("".into(), "v".into())].into()).is_err());
        assert!(Tags::parse([("aws:x".into(), "v".into())].into()).is_err());
        assert!(Tags::parse([("team".into(), "data".into())].into()).is_ok());
    }
}
