use std::collections::BTreeMap;

use uuid::Uuid;

use super::apply::apply_command;
use crate::command::{BrokerRegistration, Command, CommandOutcome, ElectionKind, Rejection};
use crate::metadata::{ClusterMetadata, NO_LEADER};

fn registration(id: i32) -> BrokerRegistration {
    BrokerRegistration {
        broker_id: id,
        incarnation_id: Uuid::new_v4(),
        rack: None,
        host: "127.0.0.1".into(),
        port: 9092,
        wants_fenced: false,
        caught_up: true,
    }
}

/// Applies commands at consecutive indexes from 1.
struct Log {
    cluster: ClusterMetadata,
    index: u64,
}

impl Log {
    fn new() -> Self {
        Log {
            cluster: ClusterMetadata::default(),
            index: 0,
        }
    }

    fn apply(&mut self, command: Command) -> Result<CommandOutcome, Rejection> {
        self.index += 1;
        apply_command(&mut self.cluster, &command, self.index)
    }

    fn live_broker(&mut self, id: i32) -> u64 {
        let CommandOutcome::Broker { epoch, fenced, .. } = self
            .apply(Command::RegisterBroker(registration(id)))
            .unwrap()
        else {
            panic!("broker outcome")
        };
        assert!(fenced, "a new registration starts fenced");
        self.apply(Command::UnfenceBroker {
            broker_id: id,
            broker_epoch: epoch,
        })
        .unwrap();
        epoch
    }

    fn create(
        &mut self,
        name: &str,
        assignments: Vec<Vec<i32>>,
    ) -> Result<CommandOutcome, Rejection> {
        self.apply(Command::CreateTopic {
            name: name.into(),
            topic_id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            assignments,
        })
    }
}

#[test]
fn the_broker_epoch_is_the_registration_index_and_guards_fencing() {
    let mut log = Log::new();
    let epoch = log.live_broker(1);
    assert_eq!(epoch, 1);
    assert_eq!(
        log.apply(Command::FenceBroker {
            broker_id: 1,
            broker_epoch: 99
        }),
        Err(Rejection::StaleBrokerEpoch)
    );
    assert!(!log.cluster.brokers[&1].fenced);
    log.apply(Command::FenceBroker {
        broker_id: 1,
        broker_epoch: epoch,
    })
    .unwrap();
    assert!(log.cluster.brokers[&1].fenced);
    assert_eq!(
        log.apply(Command::UnfenceBroker {
            broker_id: 7,
            broker_epoch: 1
        }),
        Err(Rejection::UnknownBroker(7))
    );
}

#[test]
fn create_topic_and_fail_over_on_fence() {
    let mut log = Log::new();
    let epochs: Vec<u64> = (1..=3).map(|id| log.live_broker(id)).collect();
    log.create("orders", vec![vec![1, 2, 3], vec![2, 3, 1]])
        .unwrap();
    assert_eq!(
        log.create("orders", vec![vec![1]]),
        Err(Rejection::TopicAlreadyExists)
    );
    let topic = log.cluster.topic("orders").unwrap().clone();
    assert_eq!(topic.partitions[0].leader, 1);
    assert_eq!(topic.partitions[1].isr, vec![2, 3, 1]);

    log.apply(Command::FenceBroker {
        broker_id: 1,
        broker_epoch: epochs[0],
    })
    .unwrap();
    let p0 = log.cluster.partition("orders", 0).unwrap();
    assert_eq!(
        (p0.leader, p0.isr.clone(), p0.leader_epoch),
        (2, vec![2, 3], 1)
    );
    let p1 = log.cluster.partition("orders", 1).unwrap();
    assert_eq!(
        (p1.leader, p1.isr.clone(), p1.leader_epoch),
        (2, vec![2, 3], 0)
    );
}

#[test]
fn a_rejected_command_changes_nothing() {
    let mut log = Log::new();
    log.live_broker(1);
    let before = log.cluster.clone();
    assert!(matches!(
        log.create("bad name!", vec![vec![1]]),
        Err(Rejection::InvalidRequest(_))
    ));
    assert_eq!(
        log.create("t", vec![vec![1], vec![1, 1]]).unwrap_err(),
        Rejection::InvalidReplicaAssignment("broker 1 listed twice".into())
    );
    assert_eq!(
        log.create("t", vec![vec![2]]),
        Err(Rejection::UnknownBroker(2))
    );
    assert_eq!(log.cluster, before);
}

#[test]
fn re_registration_fences_the_old_incarnation() {
    let mut log = Log::new();
    log.live_broker(1);
    log.live_broker(2);
    log.create("t", vec![vec![1, 2]]).unwrap();
    let CommandOutcome::Broker { epoch, fenced, .. } =
        log.apply(Command::RegisterBroker(registration(1))).unwrap()
    else {
        panic!()
    };
    assert!(fenced);
    assert_eq!(log.cluster.brokers[&1].epoch, epoch);
    let p = log.cluster.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    // The same registration again is idempotent.
    let same = log.cluster.brokers[&1].clone();
    let again = BrokerRegistration {
        incarnation_id: same.incarnation_id,
        ..registration(1)
    };
    log.apply(Command::RegisterBroker(again)).unwrap();
    assert_eq!(log.cluster.brokers[&1].epoch, epoch);
}

#[test]
fn unfencing_the_last_isr_member_restores_a_leader() {
    let mut log = Log::new();
    let epoch = log.live_broker(1);
    log.live_broker(2);
    log.create("t", vec![vec![1, 2]]).unwrap();
    log.apply(Command::FenceBroker {
        broker_id: 2,
        broker_epoch: log.cluster.brokers[&2].epoch,
    })
    .unwrap();
    log.apply(Command::FenceBroker {
        broker_id: 1,
        broker_epoch: epoch,
    })
    .unwrap();
    let p = log.cluster.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![1]));
    // 2 comes back first: not in the ISR, so no unclean election.
    log.apply(Command::UnfenceBroker {
        broker_id: 2,
        broker_epoch: log.cluster.brokers[&2].epoch,
    })
    .unwrap();
    assert_eq!(log.cluster.partition("t", 0).unwrap().leader, NO_LEADER);
    log.apply(Command::UnfenceBroker {
        broker_id: 1,
        broker_epoch: epoch,
    })
    .unwrap();
    assert_eq!(log.cluster.partition("t", 0).unwrap().leader, 1);
}

#[test]
fn controlled_shutdown_then_preferred_election_after_return() {
    let mut log = Log::new();
    for id in 1..=3 {
        log.live_broker(id);
    }
    log.create("t", vec![vec![1, 2, 3]]).unwrap();
    log.apply(Command::BeginControlledShutdown { broker_id: 1 })
        .unwrap();
    let p = log.cluster.partition("t", 0).unwrap().clone();
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2, 3]));
    assert_eq!(
        log.apply(Command::UnfenceBroker {
            broker_id: 1,
            broker_epoch: log.cluster.brokers[&1].epoch
        }),
        Err(Rejection::InvalidRequest(
            "broker is in controlled shutdown".into()
        ))
    );
    // Restarted: a new registration, unfenced, caught up (leader expands the ISR), then preferred.
    let epoch = match log.apply(Command::RegisterBroker(registration(1))).unwrap() {
        CommandOutcome::Broker { epoch, .. } => epoch,
        other => panic!("{other:?}"),
    };
    log.apply(Command::UnfenceBroker {
        broker_id: 1,
        broker_epoch: epoch,
    })
    .unwrap();
    log.apply(Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader_id: 2,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![2, 3, 1],
    })
    .unwrap();
    log.apply(Command::ElectLeader {
        topic: "t".into(),
        partition: 0,
        kind: ElectionKind::Preferred,
    })
    .unwrap();
    assert_eq!(log.cluster.partition("t", 0).unwrap().leader, 1);
}

#[test]
fn partitions_configs_deletion_and_producer_ids() {
    let mut log = Log::new();
    log.live_broker(1);
    log.live_broker(2);
    log.create("t", vec![vec![1, 2]]).unwrap();
    assert_eq!(
        log.apply(Command::CreatePartitions {
            name: "t".into(),
            assignments: vec![vec![1]]
        }),
        Err(Rejection::InvalidReplicaAssignment(
            "every partition needs the same number of replicas".into()
        ))
    );
    log.apply(Command::CreatePartitions {
        name: "t".into(),
        assignments: vec![vec![2, 1]],
    })
    .unwrap();
    assert_eq!(log.cluster.partition("t", 1).unwrap().leader, 2);
    log.apply(Command::AlterTopicConfigs {
        name: "t".into(),
        set: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        delete: vec![],
    })
    .unwrap();
    assert_eq!(
        log.cluster.topic("t").unwrap().configs["retention.ms"],
        "1000"
    );
    let first = log
        .apply(Command::AllocateProducerIdBlock {
            broker_id: 1,
            block_size: 1000,
        })
        .unwrap();
    let second = log
        .apply(Command::AllocateProducerIdBlock {
            broker_id: 2,
            block_size: 1000,
        })
        .unwrap();
    assert_eq!(
        first,
        CommandOutcome::ProducerIdBlock {
            start: 0,
            len: 1000
        }
    );
    assert_eq!(
        second,
        CommandOutcome::ProducerIdBlock {
            start: 1000,
            len: 1000
        }
    );
    log.apply(Command::DeleteTopic { name: "t".into() })
        .unwrap();
    assert!(log.cluster.topic("t").is_none());
    assert_eq!(
        log.apply(Command::DeleteTopic { name: "t".into() }),
        Err(Rejection::UnknownTopicOrPartition)
    );
}

#[test]
fn explicit_reassignment_completion_waits_for_the_isr() {
    let mut log = Log::new();
    for id in 1..=4 {
        log.live_broker(id);
    }
    log.create("t", vec![vec![1, 2, 3]]).unwrap();
    let reassign = |target: Vec<i32>| Command::BeginReassignment {
        topic: "t".into(),
        partition: 0,
        target_replicas: target,
    };
    log.apply(reassign(vec![2, 3, 4])).unwrap();
    let complete = Command::CompleteReassignment {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(
        log.apply(complete.clone()),
        Err(Rejection::ReassignmentInProgress)
    );
    let p = log.cluster.partition("t", 0).unwrap().clone();
    log.apply(Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader_id: 1,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![1, 2, 3, 4],
    })
    .unwrap();
    let p = log.cluster.partition("t", 0).unwrap();
    assert_eq!((p.replicas.clone(), p.leader), (vec![2, 3, 4], 2));
    assert_eq!(
        log.apply(complete),
        Err(Rejection::NoReassignmentInProgress)
    );
}

#[test]
fn a_broker_leaves_the_metadata_once_no_partition_lists_it() {
    let mut log = Log::new();
    for id in 1..=4 {
        log.live_broker(id);
    }
    log.create("orders", vec![vec![1, 2, 4]]).unwrap();
    let unregister = |broker_id| Command::UnregisterBroker { broker_id };
    assert!(matches!(
        log.apply(unregister(4)),
        Err(Rejection::BrokerHoldsReplicas(4, held)) if held.contains("orders-0")
    ));
    assert!(log.cluster.broker(4).is_some(), "refused: still registered");
    assert_eq!(log.apply(unregister(3)), Ok(CommandOutcome::Done));
    assert!(log.cluster.broker(3).is_none());
    assert_eq!(log.apply(unregister(3)), Err(Rejection::UnknownBroker(3)));
    // Registered again by its next heartbeat, should it still run.
    log.live_broker(3);
    assert!(log.cluster.broker(3).is_some());
}
