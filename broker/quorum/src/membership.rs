//! Forming the cluster and (re)joining it.
//!
//! Bootstrap: when every configured voter starts empty, exactly one of them — the lowest id —
//! writes the initial membership, and only after every other voter has answered, over RPC, that
//! it has none. A voter that cannot confirm this (a peer down, or already in a cluster) never
//! initializes, so a restarted-and-wiped voter cannot start a second cluster over an existing one.
//!
//! Rejoining: a node whose key is not (or no longer) in the membership asks the active
//! controller to add it. The controller adds it as a learner, waits until it has replicated up to
//! the leader's commit index, and only then — for a configured voter — swaps it for the stale key
//! of the same broker id with a joint-consensus membership change. Observers (brokers that are
//! not voters) stay learners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};

use crate::error::QuorumError;
use crate::quorum::MetadataQuorum;
use crate::raft::NodeKey;
use crate::rpc::{ControllerRequest, ControllerResponse, NodeStatus, PATH_CONTROLLER, PATH_STATUS};

impl MetadataQuorum {
    /// This node's quorum address as the others reach it: a voter's entry in the voters, an
    /// observer's advertised address, else where it listens.
    pub(crate) fn advertised_address(&self) -> String {
        self.config
            .voter(self.config.node_id)
            .map(|v| v.address())
            .or_else(|| self.config.advertised.clone())
            .unwrap_or_else(|| self.config.listen.to_string())
    }

    fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.config.election_timeout_ms.1)
    }

    /// Until this node is a voter (or, for an observer, a member), forms the cluster or asks to
    /// be added to it.
    pub(crate) async fn run_membership_loop(self: Arc<Self>) {
        let pause = Duration::from_millis((self.config.heartbeat_interval_ms * 4).max(100));
        while !self.stopped.load(Ordering::Relaxed) {
            if !self.membership_complete() {
                if let Err(e) = self.form_or_join().await {
                    tracing::debug!(error = %e, "membership: will retry");
                }
            }
            tokio::time::sleep(pause).await;
        }
    }

    fn membership_complete(&self) -> bool {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        if self.config.is_voter() {
            membership.voter_ids().any(|k| k == self.key())
        } else {
            membership.get_node(&self.key()).is_some()
        }
    }

    async fn form_or_join(&self) -> anyhow::Result<()> {
        let initialized = self.raft().is_initialized().await?;
        let lowest_voter = self.config.voters.iter().map(|v| v.id).min();
        if !initialized
            && lowest_voter == Some(self.config.node_id)
            && self.try_form_cluster().await?
        {
            return Ok(());
        }
        self.announce_join().await
    }

    /// Initializes the membership with every configured voter, if every peer confirms it is not
    /// in a cluster yet. Returns whether it did.
    async fn try_form_cluster(&self) -> anyhow::Result<bool> {
        let mut members = BTreeMap::from([(self.key(), BasicNode::new(self.advertised_address()))]);
        for voter in self
            .config
            .voters
            .iter()
            .filter(|v| v.id != self.config.node_id)
        {
            let status: NodeStatus = self
                .rpc
                .post(&voter.address(), PATH_STATUS, &(), self.rpc_timeout())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot confirm that voter {voter} has no cluster yet: {e}")
                })?;
            anyhow::ensure!(
                status.key.node_id == voter.id,
                "voter {voter} answers as node {}",
                status.key.node_id
            );
            if status.initialized {
                tracing::info!(%voter, "a peer is already in a cluster: joining it instead of forming one");
                return Ok(false);
            }
            members.insert(status.key, BasicNode::new(voter.address()));
        }
        tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "forming the metadata quorum");
        match self.raft().initialize(members).await {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::info!(error = %e, "not initializing");
                Ok(false)
            }
        }
    }

    /// Asks the active controller (found through any voter) to add this node's key.
    async fn announce_join(&self) -> anyhow::Result<()> {
        let request = ControllerRequest::Join {
            key: self.key(),
            address: self.advertised_address(),
        };
        let mut targets: Vec<String> = self
            .config
            .voters
            .iter()
            .filter(|v| v.id != self.config.node_id)
            .map(|v| v.address())
            .collect();
        let mut tried = BTreeSet::new();
        while let Some(address) = targets.pop() {
            if !tried.insert(address.clone()) {
                continue;
            }
            let answer: Result<ControllerResponse, QuorumError> = match self
                .rpc
                .post(&address, PATH_CONTROLLER, &request, self.rpc_timeout())
                .await
            {
                Ok(answer) => answer,
                Err(_) => continue,
            };
            match answer {
                Ok(_) => return Ok(()),
                Err(QuorumError::NotLeader {
                    leader_id: Some(id),
                }) => {
                    if let Some(leader) = self.config.voter(id) {
                        targets.push(leader.address());
                    }
                }
                Err(_) => {}
            }
        }
        anyhow::bail!("no active controller accepted the join request yet")
    }

    /// On the leader: makes `key` a member; for a configured voter id, the voter of that id.
    pub(crate) async fn reconcile_member(self: Arc<Self>, key: NodeKey, address: String) {
        let Ok(_guard) = self.active.membership_change.try_lock() else {
            return; // another change is running; the node asks again
        };
        if let Err(e) = self.reconcile_member_locked(key, address).await {
            tracing::warn!(%key, error = %e, "adding a member failed; it will ask again");
        }
    }

    async fn reconcile_member_locked(&self, key: NodeKey, address: String) -> anyhow::Result<()> {
        if !self.is_leader() || key.node_id == self.config.node_id {
            return Ok(());
        }
        let membership = self.current_membership();
        if membership.get_node(&key).is_none() {
            tracing::info!(%key, %address, "adding a learner");
            self.raft()
                .add_learner(key, BasicNode::new(address), false)
                .await?;
        }
        self.wait_caught_up(key).await?;

        let membership = self.current_membership();
        let stale: BTreeSet<NodeKey> = membership
            .nodes()
            .map(|(k, _)| *k)
            .filter(|k| k.node_id == key.node_id && *k != key)
            .collect();
        let voters: BTreeSet<NodeKey> = membership.voter_ids().collect();
        if self.config.voter(key.node_id).is_some() {
            let wanted: BTreeSet<NodeKey> = voters
                .iter()
                .copied()
                .filter(|k| !stale.contains(k))
                .chain([key])
                .collect();
            if wanted != voters {
                tracing::info!(%key, replaced = ?stale, "promoting a caught-up learner to voter");
                self.raft()
                    .change_membership(ChangeMembers::ReplaceAllVoters(wanted), false)
                    .await?;
            }
        }
        let membership = self.current_membership();
        let leftover: BTreeSet<NodeKey> = stale
            .into_iter()
            .filter(|k| {
                membership.get_node(k).is_some() && !membership.voter_ids().any(|v| v == *k)
            })
            .collect();
        if !leftover.is_empty() {
            self.raft()
                .change_membership(ChangeMembers::RemoveNodes(leftover), false)
                .await?;
        }
        Ok(())
    }

    /// On the leader: removes the learners of `broker_id`, unless it is a configured voter
    /// (a voter leaves the quorum only by a membership change of the voters).
    pub(crate) async fn remove_observer(&self, broker_id: i32) -> anyhow::Result<()> {
        if self.config.voter(broker_id).is_some() {
            return Ok(());
        }
        let _guard = self.active.membership_change.lock().await;
        let membership = self.current_membership();
        let learners: BTreeSet<NodeKey> = membership
            .nodes()
            .map(|(k, _)| *k)
            .filter(|k| k.node_id == broker_id && !membership.voter_ids().any(|v| v == *k))
            .collect();
        if !learners.is_empty() {
            tracing::info!(
                broker_id,
                ?learners,
                "removing an unregistered observer from the membership"
            );
            self.raft()
                .change_membership(ChangeMembers::RemoveNodes(learners), false)
                .await?;
        }
        Ok(())
    }

    /// The membership as this node last applied it.
    fn current_membership(&self) -> openraft::Membership<NodeKey, BasicNode> {
        self.raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    /// Waits until the learner `key` has replicated the leader's log up to its commit index.
    async fn wait_caught_up(&self, key: NodeKey) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + self.request_timeout() * 3;
        let mut metrics = self.raft().metrics();
        loop {
            {
                let m = metrics.borrow_and_update();
                anyhow::ensure!(m.current_leader == Some(self.key()), "no longer the leader");
                let committed = m.last_applied.map(|id| id.index);
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&key).cloned().flatten())
                    .map(|id| id.index);
                if matched.is_some() && matched >= committed {
                    return Ok(());
                }
            }
            tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .map_err(|_| anyhow::anyhow!("{key} did not catch up in time"))??;
        }
    }
}
