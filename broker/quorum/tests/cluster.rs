//! Multi-node tests: real `MetadataQuorum`s talking over loopback HTTP.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use millrace_quorum::{
    Command, CommandOutcome, ElectionKind, MetadataQuorum, QuorumError, Rejection, NO_LEADER,
};
use support::{registration, spawn_heartbeats, TestCluster, SESSION_TIMEOUT_MS};

// Generous: the multi-node tests run in parallel on small CI machines.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
const CATCH_UP: Duration = Duration::from_secs(20);

async fn register_brokers(node: &MetadataQuorum, ids: &[i32]) {
    for id in ids {
        let outcome = node.broker_heartbeat(registration(*id)).await.unwrap();
        assert!(!outcome.fenced, "heartbeat unfences broker {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_voter_forms_a_cluster_and_keeps_it_across_restarts() {
    let mut cluster = TestCluster::new(1, &[1]).await;
    assert_eq!(cluster.wait_for_leader(LEADER_TIMEOUT).await, 1);
    let node = cluster.node(1).clone();
    register_brokers(&node, &[1]).await;
    let topic = node
        .create_topic("events", 2, None, BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(topic.partitions.len(), 2);
    assert_eq!(topic.partitions[0].replicas, vec![1]);
    assert!(
        node.wait_for_metadata(CATCH_UP, |m| !m.cluster_id.is_empty())
            .await
    );
    let cluster_id = node.metadata().borrow().cluster_id.clone();

    cluster.stop(1).await;
    let node = cluster.start(1).await;
    assert!(!node.diagnostics().fresh_directory);
    assert_eq!(cluster.wait_for_leader(LEADER_TIMEOUT).await, 1);
    assert!(
        node.wait_for_metadata(CATCH_UP, |m| m.topic("events").is_some())
            .await
    );
    assert_eq!(node.metadata().borrow().cluster_id, cluster_id);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_replicate_topics_and_forward_from_followers() {
    let cluster = TestCluster::new(3, &[1, 2, 3]).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let via_follower = cluster.node(follower).clone();
    assert!(!via_follower.is_leader());
    register_brokers(&via_follower, &[1, 2, 3]).await;

    let topic = via_follower
        .create_topic("orders", 3, None, BTreeMap::new())
        .await
        .unwrap();
    for p in &topic.partitions {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr.len(), 3);
    }
    let leaders: Vec<i32> = topic.partitions.iter().map(|p| p.leader).collect();
    assert_eq!(
        leaders
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "{leaders:?}"
    );
    assert_eq!(topic.configs["min.insync.replicas"], "2");
    for node in cluster.running() {
        assert!(
            node.wait_for_metadata(CATCH_UP, |m| m.topic("orders").is_some())
                .await
        );
        assert_eq!(node.leader_id(), Some(leader));
    }
    assert_eq!(
        via_follower
            .create_topic("orders", 1, None, BTreeMap::new())
            .await,
        Err(QuorumError::Rejected(Rejection::TopicAlreadyExists))
    );

    // AlterPartition from the partition leader: epochs are checked.
    let p0 = topic.partitions[0].clone();
    let leader_node = cluster.node(p0.leader).clone();
    let follower_in_isr = p0.isr.iter().copied().find(|r| *r != p0.leader).unwrap();
    let shrunk: Vec<i32> = p0
        .isr
        .iter()
        .copied()
        .filter(|r| *r != follower_in_isr)
        .collect();
    let altered = leader_node
        .alter_partition(
            "orders",
            0,
            p0.leader_epoch,
            p0.partition_epoch,
            shrunk.clone(),
        )
        .await
        .unwrap();
    assert_eq!(altered.isr, shrunk);
    assert_eq!(
        leader_node
            .alter_partition(
                "orders",
                0,
                p0.leader_epoch,
                p0.partition_epoch,
                p0.isr.clone()
            )
            .await,
        Err(QuorumError::Rejected(Rejection::InvalidUpdateVersion))
    );
    let block = via_follower
        .submit(Command::AllocateProducerIdBlock {
            broker_id: 1,
            block_size: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        block,
        CommandOutcome::ProducerIdBlock { start: 0, len: 100 }
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_keeps_metadata_writable_and_a_restarted_node_catches_up() {
    let mut cluster = TestCluster::new(3, &[1, 2, 3]).await;
    let first_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let any = cluster.node(first_leader).clone();
    register_brokers(&any, &[1, 2, 3]).await;
    any.create_topic("before", 1, Some(3), BTreeMap::new())
        .await
        .unwrap();

    cluster.stop(first_leader).await;
    let second_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    assert_ne!(second_leader, first_leader);
    let node = cluster.node(second_leader).clone();
    assert!(node.metadata().borrow().topic("before").is_some());
    node.create_topic("after", 1, Some(2), BTreeMap::new())
        .await
        .unwrap();

    let restarted = cluster.start(first_leader).await;
    assert!(!restarted.diagnostics().fresh_directory);
    assert!(
        restarted
            .wait_for_metadata(CATCH_UP, |m| m.topic("after").is_some()
                && m.topic("before").is_some())
            .await
    );
    assert_eq!(cluster.wait_for_leader(LEADER_TIMEOUT).await, second_leader);
    cluster.shutdown().await;
}

/// The lowest voter id (the one that forms clusters) loses its volume and comes back: it must
/// join the existing cluster under a new directory id, catch up before voting, and replace its
/// old key in the voter set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_voter_rejoins_under_a_new_directory_id() {
    let mut cluster = TestCluster::new(3, &[1, 2, 3]).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let old_key = cluster.node(1).key();
    let node = cluster.node(2).clone();
    register_brokers(&node, &[1, 2, 3]).await;
    node.create_topic("kept", 2, None, BTreeMap::new())
        .await
        .unwrap();
    assert!(
        node.wait_for_metadata(CATCH_UP, |m| !m.cluster_id.is_empty())
            .await
    );
    let cluster_id = node.metadata().borrow().cluster_id.clone();

    cluster.stop(1).await;
    cluster.wipe(1);
    let wiped = cluster.start(1).await;
    assert!(wiped.diagnostics().fresh_directory);
    assert_ne!(wiped.key(), old_key);

    // The cluster id may be written after the topic: wait for both.
    assert!(
        wiped
            .wait_for_metadata(CATCH_UP, |m| m.topic("kept").is_some()
                && !m.cluster_id.is_empty())
            .await,
        "the wiped voter catches up"
    );
    assert_eq!(
        wiped.metadata().borrow().cluster_id,
        cluster_id,
        "no second cluster"
    );
    let new_key = wiped.key();
    // Every running node has applied the final configuration (not the joint one): stopping
    // the leader in the middle of the change would leave no majority of the old voters.
    let promoted = tokio::time::timeout(CATCH_UP, async {
        for node in cluster.running() {
            let mut metrics = node.raft_metrics();
            metrics
                .wait_for(|m| {
                    let membership = m.membership_config.membership();
                    let voters: Vec<_> = membership.voter_ids().collect();
                    let applied = m.last_applied.map(|id| id.index);
                    let changed_at = m.membership_config.log_id().map(|id| id.index);
                    voters.contains(&new_key)
                        && !voters.contains(&old_key)
                        && voters.len() == 3
                        && membership.get_joint_config().len() == 1
                        && applied >= changed_at
                })
                .await
                .map(|_| ())?;
        }
        Ok::<(), tokio::sync::watch::error::RecvError>(())
    })
    .await;
    assert!(
        matches!(promoted, Ok(Ok(()))),
        "the new directory replaced the old one as voter"
    );

    // It is a full voter again: take the leader down and the other two still make a quorum.
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    cluster.stop(leader).await;
    let next = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    cluster
        .node(next)
        .create_topic("later", 1, Some(2), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        cluster.node(1).diagnostics().votes_granted_before_joining,
        0
    );
    cluster.shutdown().await;
}

/// A wiped voter must not stand in for the member it was: with the leader down too, the one
/// intact voter and the wiped one must NOT elect anybody (the old key's promises are lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_voter_does_not_count_toward_a_quorum_until_re_added() {
    let mut cluster = TestCluster::new(3, &[1, 2, 3]).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    cluster
        .node(leader)
        .create_topic("x", 1, None, BTreeMap::new())
        .await
        .ok();
    let followers: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let (wiped_id, intact_id) = (followers[0], followers[1]);

    cluster.stop(wiped_id).await;
    cluster.wipe(wiped_id);
    cluster.stop(leader).await;
    let wiped = cluster.start(wiped_id).await;

    tokio::time::sleep(Duration::from_millis(3000)).await;
    for node in cluster.running() {
        assert!(
            !node.is_leader(),
            "{} became leader without a real quorum",
            node.key()
        );
    }
    assert_eq!(cluster.node(intact_id).leader_id(), None);
    let diagnostics = wiped.diagnostics();
    assert!(
        diagnostics.refused_rpcs > 0,
        "the intact voter asked the old key for votes"
    );
    assert_eq!(diagnostics.votes_granted, 0);

    // The old leader comes back: a real quorum again, and the wiped node is re-added.
    cluster.start(leader).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let new_key = wiped.key();
    let mut metrics = cluster.node(intact_id).raft_metrics();
    tokio::time::timeout(
        CATCH_UP,
        metrics.wait_for(|m| {
            m.membership_config
                .membership()
                .voter_ids()
                .any(|k| k == new_key)
        }),
    )
    .await
    .expect("re-added as voter")
    .unwrap();
    assert_eq!(wiped.diagnostics().votes_granted_before_joining, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_waits_until_every_voter_confirms_it_is_empty() {
    let mut cluster = TestCluster::new(3, &[1, 2]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for node in cluster.running() {
        assert_eq!(
            node.leader_id(),
            None,
            "formed a cluster without hearing from voter 3"
        );
    }
    cluster.start(3).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_broker_is_fenced_and_its_partitions_fail_over_within_the_isr() {
    let cluster = TestCluster::new(3, &[1, 2, 3]).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let node = cluster.node(1).clone();
    let mut heartbeats: BTreeMap<i32, _> = (1..=3)
        .map(|id| {
            (
                id,
                spawn_heartbeats(cluster.node(id).clone(), registration(id)),
            )
        })
        .collect();
    assert!(
        node.wait_for_metadata(CATCH_UP, |m| m.eligible_brokers().count() == 3)
            .await,
        "three brokers registered and unfenced"
    );
    let topic = node
        .create_topic("pay", 6, None, BTreeMap::new())
        .await
        .unwrap();
    let silent = 2;
    let led: Vec<i32> = topic
        .partitions
        .iter()
        .filter(|p| p.leader == silent)
        .map(|p| p.partition)
        .collect();
    assert!(!led.is_empty());

    heartbeats.remove(&silent).unwrap().abort();
    let fenced_in_time = node
        .wait_for_metadata(Duration::from_millis(SESSION_TIMEOUT_MS * 3), |m| {
            m.broker(silent).is_some_and(|b| b.fenced)
        })
        .await;
    assert!(
        fenced_in_time,
        "fenced within the session timeout (plus slack)"
    );
    let cluster_view = node.metadata().borrow().clone();
    for (_, p) in cluster_view.partitions() {
        assert_ne!(p.leader, silent);
        assert_ne!(p.leader, NO_LEADER);
        assert!(p.isr.contains(&p.leader));
        assert!(!p.isr.contains(&silent), "{p:?}");
    }
    for partition in led {
        let p = cluster_view.partition("pay", partition).unwrap();
        assert_eq!(p.leader_epoch, 1, "one election for partition {partition}");
    }

    // It comes back: unfenced by its next heartbeat, then preferred leadership is restored.
    heartbeats.insert(
        silent,
        spawn_heartbeats(cluster.node(silent).clone(), registration(silent)),
    );
    assert!(
        node.wait_for_metadata(CATCH_UP, |m| m.broker(silent).is_some_and(|b| !b.fenced))
            .await
    );
    let p = node
        .metadata()
        .borrow()
        .topic("pay")
        .unwrap()
        .partitions
        .iter()
        .find(|p| p.replicas[0] == silent)
        .cloned()
        .unwrap();
    let p_leader = cluster.node(p.leader).clone();
    let expanded: Vec<i32> = p.isr.iter().copied().chain([silent]).collect();
    p_leader
        .alter_partition(
            "pay",
            p.partition,
            p.leader_epoch,
            p.partition_epoch,
            expanded,
        )
        .await
        .unwrap();
    node.submit(Command::ElectLeader {
        topic: "pay".into(),
        partition: p.partition,
        kind: ElectionKind::Preferred,
    })
    .await
    .unwrap();
    assert!(
        node.wait_for_metadata(CATCH_UP, |m| m
            .partition("pay", p.partition)
            .unwrap()
            .leader
            == silent)
            .await
    );

    // Controlled shutdown of broker 3: it leads nothing afterwards, and stays unfenced.
    node.controlled_shutdown(3).await.unwrap();
    let view = node.metadata().borrow().clone();
    assert_eq!(view.led_by(3).count(), 0);
    assert!(view.broker(3).unwrap().in_controlled_shutdown);
    for (_, p) in view.partitions() {
        assert!(!p.isr.contains(&3));
    }
    for (_, task) in heartbeats {
        task.abort();
    }
    cluster.shutdown().await;
}

/// A node that missed more than the retained log (here: wiped, so it missed everything) is
/// brought up to date by an InstallSnapshot over the RPC layer, then re-added as voter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_behind_the_purged_log_catches_up_from_a_snapshot() {
    let mut cluster = TestCluster::with_snapshots_every(3, &[1, 2, 3], 20).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await;
    let lagging = (1..=3).find(|id| *id != leader).unwrap();
    let node = cluster.node(leader).clone();
    register_brokers(&node, &[1, 2, 3]).await;
    cluster.stop(lagging).await;
    cluster.wipe(lagging);
    for _ in 0..60 {
        node.submit(Command::AllocateProducerIdBlock {
            broker_id: 1,
            block_size: 10,
        })
        .await
        .unwrap();
    }
    let mut metrics = node.raft_metrics();
    tokio::time::timeout(
        CATCH_UP,
        metrics.wait_for(|m| m.snapshot.is_some() && m.purged.is_some()),
    )
    .await
    .expect("the leader snapshots and purges its log")
    .unwrap();

    let restarted = cluster.start(lagging).await;
    assert!(
        restarted
            .wait_for_metadata(CATCH_UP, |m| m.next_producer_id == 600)
            .await
    );
    assert!(
        restarted.raft_metrics().borrow().snapshot.is_some(),
        "installed a snapshot"
    );
    let key = restarted.key();
    let mut leader_metrics = node.raft_metrics();
    tokio::time::timeout(
        CATCH_UP,
        leader_metrics.wait_for(|m| {
            m.membership_config
                .membership()
                .voter_ids()
                .any(|k| k == key)
        }),
    )
    .await
    .expect("promoted after the snapshot")
    .unwrap();

    // The leader restarts from its own snapshot file plus the log after it.
    cluster.stop(leader).await;
    assert!(cluster.dir(leader).join("snapshot.json").exists());
    let reopened = cluster.start(leader).await;
    assert!(
        reopened.metadata().borrow().next_producer_id > 0,
        "loaded from the snapshot"
    );
    let mut reopened_metrics = reopened.raft_metrics();
    tokio::time::timeout(
        CATCH_UP,
        reopened_metrics.wait_for(|m| m.snapshot.is_some()),
    )
    .await
    .expect("knows its snapshot")
    .unwrap();
    assert!(
        reopened
            .wait_for_metadata(CATCH_UP, |m| m.next_producer_id == 600)
            .await
    );
    cluster.shutdown().await;
}
