//! Settings of the Kubernetes platform.

use std::time::Duration;

use super::NamespaceMode;
use crate::platform::{PlatformError, Result};

/// Settings of the Kubernetes platform (from `millrace serve`'s flags).
#[derive(Debug, Clone)]
pub struct KubernetesPlatformConfig {
    pub namespace: NamespaceMode,
    /// The broker-agent image; it carries the broker binaries of [`Self::installed_versions`].
    pub agent_image: String,
    /// `Always`, `IfNotPresent` or `Never`; None: Kubernetes' default for the tag.
    pub image_pull_policy: Option<String>,
    /// Where the image keeps `millrace-agent` and `<version>/millrace-broker`.
    pub agent_bin_dir: String,
    /// Storage class of the claims; None: the cluster's default class.
    pub storage_class: Option<String>,
    /// The broker versions the agent image carries.
    pub installed_versions: Vec<String>,
    /// How long a broker gets for its controlled shutdown (the agent's --stop-timeout-ms).
    pub broker_stop_timeout: Duration,
    /// The agents' heartbeat interval.
    pub heartbeat_interval: Duration,
    /// The pod's fsGroup, so that the image's user can write to a fresh volume.
    pub fs_group: Option<i64>,
    /// How often `delete_node` looks whether the pod is gone.
    pub delete_poll_interval: Duration,
    /// How long `observe` waits for the pod watch's first list before it fails.
    pub watch_sync_timeout: Duration,
}

impl KubernetesPlatformConfig {
    pub fn new(namespace: NamespaceMode, agent_image: impl Into<String>) -> Self {
        Self {
            namespace,
            agent_image: agent_image.into(),
            image_pull_policy: None,
            agent_bin_dir: "/opt/millrace/bin".into(),
            storage_class: None,
            installed_versions: crate::domain::VersionCatalog::builtin().versions().to_vec(),
            broker_stop_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            fs_group: Some(1000),
            delete_poll_interval: Duration::from_secs(1),
            watch_sync_timeout: Duration::from_secs(30),
        }
    }

    /// The pod's termination grace: the agent's controlled shutdown of its broker, plus time
    /// for the agent itself to stop.
    pub fn termination_grace(&self) -> Duration {
        self.broker_stop_timeout + Duration::from_secs(30)
    }

    pub(super) fn validate(&self) -> Result<()> {
        let invalid = |field: &str, reason: &str| {
            Err(PlatformError::InvalidSpec {
                field: field.into(),
                reason: reason.into(),
            })
        };
        if self.agent_image.trim().is_empty() {
            return invalid("agentImage", "must name the broker-agent image");
        }
        if let NamespaceMode::Shared(namespace) = &self.namespace {
            if namespace.is_empty() || namespace.len() > 63 {
                return invalid("namespace", "must be 1 to 63 characters");
            }
        }
        if !self.agent_bin_dir.starts_with('/') {
            return invalid("agentBinDir", "must be an absolute path in the image");
        }
        Ok(())
    }
}
