//! Heartbeats to the control plane's internal API. The control plane being away changes nothing
//! for the broker (static stability): failures are logged and the next beat tries again.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::AgentConfig;
use crate::status::NodeStatus;

const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat<'a> {
    pub version: &'a str,
    pub state: &'a str,
    pub disk_used_bytes: u64,
    pub under_replicated_partitions: u64,
    pub broker_pid: Option<u32>,
    pub message: &'a str,
}

impl<'a> Heartbeat<'a> {
    pub fn from_status(status: &'a NodeStatus) -> Heartbeat<'a> {
        Heartbeat {
            version: &status.version,
            state: status.state.as_str(),
            disk_used_bytes: status.disk_used_bytes,
            under_replicated_partitions: status.under_replicated_partitions,
            broker_pid: status.broker_pid,
            message: &status.message,
        }
    }
}

pub fn heartbeat_url(control_plane_url: &str, cluster_id: &str, node_id: i32) -> String {
    format!(
        "{}/internal/v1/clusters/{cluster_id}/nodes/{node_id}/heartbeat",
        control_plane_url.trim_end_matches('/')
    )
}

/// Beats every interval, and at once when the broker's state changes.
pub async fn run(
    config: Arc<AgentConfig>,
    http: reqwest::Client,
    mut status: watch::Receiver<NodeStatus>,
) {
    let (Some(base), Some(token)) = (&config.control_plane_url, &config.agent_token) else {
        info!("no --control-plane-url: running standalone, without heartbeats");
        return;
    };
    let url = heartbeat_url(base, &config.cluster_id, config.node_id);
    let mut ticker = tokio::time::interval(config.heartbeat_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_state = status.borrow().state;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = status.changed() => {
                if changed.is_err() {
                    return;
                }
                let state = status.borrow().state;
                if state == last_state {
                    continue;
                }
            }
        }
        let body = {
            let current = status.borrow_and_update();
            last_state = current.state;
            serde_json::to_vec(&Heartbeat::from_status(&current)).expect("a heartbeat serialises")
        };
        let result = http
            .post(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(HEARTBEAT_TIMEOUT)
            .send()
            .await
            .map_err(|error| error.to_string())
            .and_then(|response| {
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("answered {status}"))
                }
            });
        match result {
            Ok(()) if failing => {
                info!(%url, "heartbeats reach the control plane again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) => {
                // One warning per outage, not one per beat.
                if !failing {
                    warn!(%url, %error, "heartbeat failed; the broker keeps running, retrying");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::BrokerState;

    #[test]
    fn heartbeat_body_uses_the_internal_api_names() {
        let status = NodeStatus {
            cluster_id: "c".into(),
            node_id: 3,
            state: BrokerState::Running,
            broker_pid: Some(42),
            version: "millrace-0.1.0".into(),
            broker_binary: "/bin/millrace-broker".into(),
            disk_used_bytes: 4096,
            restarts: 1,
            under_replicated_partitions: 0,
            message: "ok".into(),
            drain: None,
        };
        let json = serde_json::to_value(Heartbeat::from_status(&status)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "millrace-0.1.0",
                "state": "running",
                "diskUsedBytes": 4096,
                "underReplicatedPartitions": 0,
                "brokerPid": 42,
                "message": "ok"
            })
        );
        assert_eq!(
            heartbeat_url("http://cp:8080/", "c", 3),
            "http://cp:8080/internal/v1/clusters/c/nodes/3/heartbeat"
        );
    }
}
