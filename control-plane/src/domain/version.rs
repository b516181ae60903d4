//! Broker software versions: the catalog of versions installed on this control plane's platform.

use serde::{Deserialize, Serialize};

/// A broker version name from the catalog (e.g. `millrace-0.1.0`). Parsed against the catalog
/// at the edge; read back from the store as is, since a version in use may since have been
/// uninstalled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KafkaVersion(String);

impl KafkaVersion {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KafkaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The installed versions, newest last. The platform supplies it (the local platform lists
/// the broker binaries it finds); [`VersionCatalog::builtin`] is the version built with this
/// control plane.
#[derive(Debug, Clone)]
pub struct VersionCatalog {
    versions: Vec<String>,
}

impl VersionCatalog {
    pub const BUILTIN_VERSION: &'static str = "millrace-0.1.0";

    pub fn new(versions: Vec<String>) -> Self {
        Self { versions }
    }

    pub fn builtin() -> Self {
        Self::new(vec![Self::BUILTIN_VERSION.to_owned()])
    }

    pub fn versions(&self) -> &[String] {
        &self.versions
    }

    /// The newest version, the default for a new cluster.
    pub fn latest(&self) -> Option<KafkaVersion> {
        self.versions.last().cloned().map(KafkaVersion)
    }

    pub fn parse(&self, version: &str) -> Result<KafkaVersion, String> {
        if self.versions.iter().any(|v| v == version) {
            Ok(KafkaVersion(version.to_owned()))
        } else {
            Err(format!(
                "version {version:?} is not installed; installed: {}",
                self.versions.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_installed_versions_parse() {
        let catalog = VersionCatalog::builtin();
        assert!(catalog.parse("millrace-0.1.0").is_ok());
        assert!(catalog.parse("3.6.0").is_err());
        assert_eq!(catalog.latest().unwrap().as_str(), "millrace-0.1.0");
    }
}
