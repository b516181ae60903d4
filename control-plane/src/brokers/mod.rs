//! Talking to a cluster's brokers during a change: the checks and requests a safe roll needs.
//!
//! Two channels, both of which every broker version we run answers (an old and a new version run
//! side by side during an upgrade, so nothing here may depend on the newest broker):
//! - the broker's admin HTTP endpoint: `GET /admin/can-stop` (would stopping this broker take a
//!   partition below `min.insync.replicas`?) and `POST /admin/drain` (controlled shutdown: its
//!   leaderships move away);
//! - the Kafka protocol itself (the kafka-protocol crate's codecs): Metadata for the cluster's
//!   view of itself (active controller, registered brokers, every partition's replicas and
//!   in-sync replicas), ElectLeaders for the preferred-leader election after a restart, and
//!   IncrementalAlterConfigs for a broker's dynamic settings (an old broker refuses it, which
//!   is an answer, not an error).

mod kafka;
mod reassign;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

pub use kafka::{AlterOutcome, ClusterView, PartitionView};
pub use reassign::{Reassigning, Refused};

/// Kafka's dynamic broker setting for the rate at which a leader serves the replicas a
/// reassignment adds (bytes per second).
pub const REPLICATION_THROTTLE: &str = "leader.replication.throttled.rate";

/// How long a broker gets to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A controlled shutdown waits for the controller to move every leadership.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{address}: {message}")]
    Unreachable { address: String, message: String },
    #[error("{address}: {message}")]
    Protocol { address: String, message: String },
}

/// The broker's answer to `GET /admin/can-stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanStop {
    /// With the partitions that have no more replicas than `min.insync.replicas`: no wait keeps
    /// them writable, so they do not block the stop (as in Strimzi's KafkaRoller), but their
    /// acks=all writes stop while the broker restarts.
    Yes { unavoidable: Vec<String> },
    /// The partitions that would fall below `min.insync.replicas`.
    No(Vec<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CanStopBody {
    can_stop: bool,
    #[serde(default)]
    under_min_isr_if_stopped: Vec<String>,
    #[serde(default)]
    unavailable_while_stopped: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A client for the brokers' admin endpoints and Kafka listeners.
#[derive(Clone)]
pub struct Brokers {
    http: reqwest::Client,
}

impl Brokers {
    pub fn new() -> Result<Brokers, String> {
        crate::platform::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Brokers { http })
    }

    /// `GET /admin/can-stop` on the broker whose admin endpoint is `admin` (`host:port`).
    pub async fn can_stop(&self, admin: &str) -> Result<CanStop, BrokerError> {
        let url = format!("http://{admin}/admin/can-stop");
        let unreachable = |message: String| BrokerError::Unreachable {
            address: admin.to_owned(),
            message,
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable(format!("GET {url}: {e}")))?;
        let status = response.status();
        let body: CanStopBody = response.json().await.map_err(|e| BrokerError::Protocol {
            address: admin.to_owned(),
            message: format!("GET {url} answered {status} with an unreadable body: {e}"),
        })?;
        if body.can_stop {
            return Ok(CanStop::Yes {
                unavoidable: body.unavailable_while_stopped,
            });
        }
        let mut reasons = body.under_min_isr_if_stopped;
        reasons.extend(body.reason);
        Ok(CanStop::No(reasons))
    }

    /// `POST /admin/drain`: the broker's controlled shutdown (it keeps running, leading
    /// nothing it can hand over). Answers what the broker said.
    pub async fn drain(&self, admin: &str) -> Result<String, BrokerError> {
        let url = format!("http://{admin}/admin/drain");
        let response = self
            .http
            .post(&url)
            .timeout(DRAIN_TIMEOUT)
            .send()
            .await
            .map_err(|e| BrokerError::Unreachable {
                address: admin.to_owned(),
                message: format!("POST {url}: {e}"),
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(BrokerError::Protocol {
                address: admin.to_owned(),
                message: format!("POST {url} answered {status}: {}", text.trim()),
            });
        }
        Ok(text.trim().to_owned())
    }

    /// The cluster as the active controller's broker sees it: asked first of any of
    /// `bootstrap` (`host:port` Kafka listeners), then of the controller itself when another
    /// broker answered, since the controller's copy of the metadata is never behind.
    pub async fn cluster_view(&self, bootstrap: &[String]) -> Result<ClusterView, BrokerError> {
        let mut last_error = None;
        for address in bootstrap {
            match kafka::metadata(address, REQUEST_TIMEOUT).await {
                Ok(view) => {
                    let controller = view
                        .controller_id
                        .and_then(|id| view.broker_addresses.get(&id).cloned());
                    return match controller {
                        Some(controller) if controller != *address => {
                            kafka::metadata(&controller, REQUEST_TIMEOUT).await
                        }
                        _ => Ok(view),
                    };
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| BrokerError::Unreachable {
            address: String::new(),
            message: "no broker address to ask".into(),
        }))
    }

    /// A preferred-leader election for every partition, sent to the first of `bootstrap` that
    /// answers. Returns how many partitions changed leader.
    pub async fn elect_preferred_leaders(
        &self,
        bootstrap: &[String],
    ) -> Result<usize, BrokerError> {
        let mut last_error = None;
        for address in bootstrap {
            match kafka::elect_preferred_leaders(address, REQUEST_TIMEOUT).await {
                Ok(elected) => return Ok(elected),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| BrokerError::Unreachable {
            address: String::new(),
            message: "no broker address to ask".into(),
        }))
    }
}

impl Brokers {
    /// Gives broker `broker_id` (Kafka listener `address`) exactly the dynamic settings `set`:
    /// the dynamic settings in `all` that `set` lacks are removed, back to the broker's flags.
    /// With `validate_only` the broker only says whether it would.
    pub async fn set_dynamic_configs(
        &self,
        address: &str,
        broker_id: i32,
        set: &std::collections::BTreeMap<String, String>,
        all: &[&str],
        validate_only: bool,
    ) -> Result<AlterOutcome, BrokerError> {
        let delete: Vec<String> = all
            .iter()
            .filter(|name| !set.contains_key(**name))
            .map(|name| name.to_string())
            .collect();
        kafka::alter_broker_configs(
            address,
            broker_id,
            set,
            &delete,
            validate_only,
            REQUEST_TIMEOUT,
        )
        .await
    }
}

impl Brokers {
    /// The Kafka listener of the active controller's broker (asked of any of `bootstrap`).
    async fn controller(&self, bootstrap: &[String]) -> Result<String, BrokerError> {
        let view = self.cluster_view(bootstrap).await?;
        view.controller_id
            .and_then(|id| view.broker_addresses.get(&id).cloned())
            .ok_or_else(|| BrokerError::Unreachable {
                address: bootstrap.join(","),
                message: "the brokers name no active controller".into(),
            })
    }

    /// Every partition reassignment in progress, as the active controller sees it.
    pub async fn reassignments(
        &self,
        bootstrap: &[String],
    ) -> Result<Vec<Reassigning>, BrokerError> {
        let controller = self.controller(bootstrap).await?;
        reassign::list(&controller, REQUEST_TIMEOUT).await
    }

    /// Starts moving each `(topic, partition, replicas)`; answers the partitions refused.
    pub async fn reassign(
        &self,
        bootstrap: &[String],
        moves: &[(String, i32, Vec<i32>)],
    ) -> Result<Vec<Refused>, BrokerError> {
        let controller = self.controller(bootstrap).await?;
        reassign::alter(&controller, moves, REQUEST_TIMEOUT).await
    }

    /// Takes a removed broker out of the cluster metadata (Kafka's UnregisterBroker, to the
    /// active controller). Answers whether it was registered.
    pub async fn unregister(
        &self,
        bootstrap: &[String],
        broker_id: i32,
    ) -> Result<bool, BrokerError> {
        let controller = self.controller(bootstrap).await?;
        reassign::unregister(&controller, broker_id, REQUEST_TIMEOUT).await
    }

    /// Sets (Some) or removes (None) broker `broker_id`'s replication throttle, leaving its
    /// other dynamic settings as they are.
    pub async fn set_replication_throttle(
        &self,
        address: &str,
        broker_id: i32,
        bytes_per_second: Option<u64>,
    ) -> Result<AlterOutcome, BrokerError> {
        let (set, delete) = match bytes_per_second {
            Some(rate) => (
                std::collections::BTreeMap::from([(
                    REPLICATION_THROTTLE.to_owned(),
                    rate.to_string(),
                )]),
                Vec::new(),
            ),
            None => (
                std::collections::BTreeMap::new(),
                vec![REPLICATION_THROTTLE.to_owned()],
            ),
        };
        kafka::alter_broker_configs(address, broker_id, &set, &delete, false, REQUEST_TIMEOUT).await
    }
}

impl ClusterView {
    /// Partitions whose in-sync replicas are not all of their replicas.
    pub fn under_replicated(&self) -> Vec<&PartitionView> {
        self.partitions
            .iter()
            .filter(|p| {
                let isr: BTreeSet<i32> = p.isr.iter().copied().collect();
                p.replicas.iter().any(|r| !isr.contains(r))
            })
            .collect()
    }

    /// Why `broker_id` is not back in full yet, or None when it is registered and every
    /// partition is fully in sync.
    pub fn not_in_sync(&self, broker_id: Option<i32>) -> Option<String> {
        if let Some(id) = broker_id {
            if !self.broker_addresses.contains_key(&id) {
                return Some(format!(
                    "broker {id} is not registered with the controller yet"
                ));
            }
        }
        let lagging = self.under_replicated();
        if lagging.is_empty() {
            return None;
        }
        let sample: Vec<String> = lagging
            .iter()
            .take(5)
            .map(|p| {
                format!(
                    "{}-{} (replicas {:?}, in sync {:?})",
                    p.topic, p.partition, p.replicas, p.isr
                )
            })
            .collect();
        Some(format!(
            "{} of {} partitions are under-replicated: {}",
            lagging.len(),
            self.partitions.len(),
            sample.join(", ")
        ))
    }
}
