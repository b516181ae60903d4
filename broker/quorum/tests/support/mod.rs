//! A cluster of `MetadataQuorum`s in one process, on loopback ports and temporary directories,
//! with short time-outs, and a watcher that records every (term, leader) any node reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use millrace_quorum::{BrokerRegistration, MetadataQuorum, QuorumConfig, Voter};
use openraft::ServerState;
use parking_lot::Mutex;
use tempfile::TempDir;
use uuid::Uuid;

pub const SESSION_TIMEOUT_MS: u64 = 1500;

pub struct TestCluster {
    pub voters: Vec<Voter>,
    _tmp: TempDir,
    root: PathBuf,
    nodes: BTreeMap<i32, Arc<MetadataQuorum>>,
    /// term -> the node ids that reported being leader in it.
    pub leaders_by_term: Arc<Mutex<BTreeMap<u64, BTreeSet<i32>>>>,
    /// For nodes started from now on.
    pub snapshot_every_entries: u64,
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,millrace_quorum=info".into()),
        )
        .with_test_writer()
        .try_init();
}

impl TestCluster {
    /// Voters 1..=n; starts those in `running`.
    pub async fn new(n: i32, running: &[i32]) -> TestCluster {
        Self::with_snapshots_every(n, running, 1000).await
    }

    pub async fn with_snapshots_every(n: i32, running: &[i32], entries: u64) -> TestCluster {
        init_tracing();
        let tmp = tempfile::tempdir().unwrap();
        let ports = free_ports(n as usize);
        let voters = (1..=n)
            .map(|id| Voter {
                id,
                host: "127.0.0.1".into(),
                port: ports[(id - 1) as usize],
            })
            .collect();
        let mut cluster = TestCluster {
            voters,
            root: tmp.path().to_path_buf(),
            _tmp: tmp,
            nodes: BTreeMap::new(),
            leaders_by_term: Arc::default(),
            snapshot_every_entries: entries,
        };
        for id in running {
            cluster.start(*id).await;
        }
        cluster
    }

    pub fn config(&self, id: i32) -> QuorumConfig {
        let voter = self.voters.iter().find(|v| v.id == id).unwrap();
        let mut config = QuorumConfig::new(
            id,
            self.voters.clone(),
            format!("127.0.0.1:{}", voter.port).parse().unwrap(),
            self.dir(id),
        );
        config.election_timeout_ms = (300, 600);
        config.heartbeat_interval_ms = 50;
        config.broker_session_timeout_ms = SESSION_TIMEOUT_MS;
        config.request_timeout_ms = 5000;
        config.snapshot_every_entries = self.snapshot_every_entries;
        config
    }

    pub fn dir(&self, id: i32) -> PathBuf {
        self.root.join(format!("broker-{id}")).join("quorum")
    }

    pub async fn start(&mut self, id: i32) -> Arc<MetadataQuorum> {
        let node = MetadataQuorum::start(self.config(id)).await.unwrap();
        let mut metrics = node.raft_metrics();
        let leaders = self.leaders_by_term.clone();
        tokio::spawn(async move {
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if m.state == ServerState::Leader {
                        leaders.lock().entry(m.current_term).or_default().insert(id);
                    }
                }
                if metrics.changed().await.is_err() {
                    break;
                }
            }
        });
        self.nodes.insert(id, node.clone());
        node
    }

    pub async fn stop(&mut self, id: i32) {
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await;
        }
    }

    pub fn wipe(&self, id: i32) {
        assert!(!self.nodes.contains_key(&id), "stop {id} before wiping it");
        std::fs::remove_dir_all(self.dir(id)).unwrap();
    }

    pub fn node(&self, id: i32) -> &Arc<MetadataQuorum> {
        &self.nodes[&id]
    }

    pub fn running(&self) -> impl Iterator<Item = &Arc<MetadataQuorum>> {
        self.nodes.values()
    }

    /// The leader every running node agrees on, within `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> i32 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let seen: BTreeSet<Option<i32>> = self.running().map(|n| n.leader_id()).collect();
            if let [Some(leader)] = seen.iter().copied().collect::<Vec<_>>()[..] {
                if self.nodes.get(&leader).is_some_and(|n| n.is_leader()) {
                    return leader;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader within {timeout:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// No term ever had two leaders.
    pub fn assert_one_leader_per_term(&self) {
        for (term, leaders) in self.leaders_by_term.lock().iter() {
            assert!(leaders.len() <= 1, "term {term} had leaders {leaders:?}");
        }
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
        self.assert_one_leader_per_term();
    }
}

pub fn registration(broker_id: i32) -> BrokerRegistration {
    BrokerRegistration {
        broker_id,
        incarnation_id: Uuid::new_v4(),
        rack: None,
        host: "127.0.0.1".into(),
        port: 19092 + broker_id as u16,
        wants_fenced: false,
        caught_up: true,
    }
}

/// A broker heartbeating through `node` every 200 ms until aborted.
pub fn spawn_heartbeats(
    node: Arc<MetadataQuorum>,
    registration: BrokerRegistration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let _ = node.broker_heartbeat(registration.clone()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
