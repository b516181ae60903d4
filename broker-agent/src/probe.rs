//! Polls the broker's admin endpoint (`/ready`, `/metrics`) and measures the node's disk use.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::debug;

use crate::config::AgentConfig;
use crate::status::{BrokerState, NodeStatus};

/// The gauge the broker exposes once it replicates.
const UNDER_REPLICATED_GAUGE: &str = "millrace_under_replicated_partitions";
/// Walking the data dir is cheap but not free: at most this often.
const DISK_WALK_INTERVAL: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn run(
    config: Arc<AgentConfig>,
    http: reqwest::Client,
    status: watch::Sender<NodeStatus>,
) {
    let admin = config.broker_admin_url();
    let mut ticker = tokio::time::interval(config.probe_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_disk_walk: Option<Instant> = None;
    loop {
        ticker.tick().await;
        let pid = status.borrow().broker_pid;
        if let Some(pid) = pid {
            let ready = get_ok(&http, &format!("{admin}/ready")).await.is_some();
            let under_replicated = if ready {
                get_ok(&http, &format!("{admin}/metrics"))
                    .await
                    .map(|body| under_replicated_partitions(&body))
            } else {
                None
            };
            status.send_if_modified(|status| {
                // A probe of a broker that has since been replaced says nothing about the new one.
                if status.broker_pid != Some(pid) {
                    return false;
                }
                let mut changed = false;
                let next = match (status.state, ready) {
                    (BrokerState::Starting, true) => BrokerState::Running,
                    (BrokerState::Running, false) => BrokerState::Starting,
                    (state, _) => state,
                };
                if next != status.state {
                    debug!(
                        from = status.state.as_str(),
                        to = next.as_str(),
                        "broker state"
                    );
                    status.state = next;
                    changed = true;
                }
                if let Some(count) = under_replicated {
                    changed |= status.under_replicated_partitions != count;
                    status.under_replicated_partitions = count;
                }
                changed
            });
        }
        if last_disk_walk.is_none_or(|at| at.elapsed() >= DISK_WALK_INTERVAL) {
            last_disk_walk = Some(Instant::now());
            let dir = config.data_dir.clone();
            if let Ok(used) = tokio::task::spawn_blocking(move || disk_used_bytes(&dir)).await {
                status.send_if_modified(|status| {
                    let changed = status.disk_used_bytes != used;
                    status.disk_used_bytes = used;
                    changed
                });
            }
        }
    }
}

/// The body of a 2xx answer, or `None`.
async fn get_ok(http: &reqwest::Client, url: &str) -> Option<String> {
    let response = http.get(url).timeout(PROBE_TIMEOUT).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// Sum of the `millrace_under_replicated_partitions` samples in a Prometheus/OpenMetrics text
/// body; 0 when the broker does not export the gauge (before replication).
pub fn under_replicated_partitions(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(UNDER_REPLICATED_GAUGE)?;
            // The name must end here: a label set or the value follows.
            let rest = match rest.chars().next()? {
                '{' => &rest[rest.find('}')? + 1..],
                ' ' => rest,
                _ => return None,
            };
            let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
            (value.is_finite() && value > 0.0).then_some(value as u64)
        })
        .sum()
}

/// Bytes allocated under `dir` (files that vanish during the walk are skipped).
pub fn disk_used_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            // st_blocks counts 512-byte units whatever the file system's block size.
            total += metadata.blocks() * 512;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_under_replicated_gauge() {
        let metrics = "# HELP millrace_under_replicated_partitions Partitions below their replication factor.\n\
                       # TYPE millrace_under_replicated_partitions gauge\n\
                       millrace_under_replicated_partitions 3\n\
                       millrace_under_replicated_partitions_total 99\n\
                       millrace_partitions 12\n";
        assert_eq!(under_replicated_partitions(metrics), 3);
    }

    #[test]
    fn sums_labelled_samples_and_defaults_to_zero() {
        let metrics = "millrace_under_replicated_partitions{topic=\"a\"} 2\n\
                       millrace_under_replicated_partitions{topic=\"b\"} 1.0\n";
        assert_eq!(under_replicated_partitions(metrics), 3);
        assert_eq!(under_replicated_partitions("millrace_partitions 4\n"), 0);
        assert_eq!(
            under_replicated_partitions("millrace_under_replicated_partitions NaN\n"),
            0
        );
    }

    #[test]
    fn disk_use_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/segment"), vec![1u8; 64 * 1024]).unwrap();
        assert!(disk_used_bytes(dir.path()) >= 64 * 1024);
        assert_eq!(disk_used_bytes(&dir.path().join("missing")), 0);
    }
}
