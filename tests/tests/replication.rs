//! Replicated clusters: three real broker processes forming one metadata quorum, with
//! partitions replicated three ways, and real clients.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, run_python, BrokerOptions, BrokerProcess};

/// Starts `count` brokers that form one cluster, and waits until all are ready.
fn cluster(count: i32, extra: &[&str]) -> Vec<BrokerProcess> {
    let voters = (1..=count)
        .map(|id| format!("{id}@127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers: Vec<BrokerProcess> = (1..=count)
        .map(|id| {
            let zone = format!("zone-{id}");
            let mut args = vec!["--voters", &voters, "--rack", &zone];
            args.extend_from_slice(extra);
            let mut options = BrokerOptions::with_args(&args);
            options.node_id = Some(id);
            BrokerProcess::launch(options)
        })
        .collect();
    for broker in &mut brokers {
        broker.wait_ready();
    }
    brokers
}

/// The bootstrap string for all of `brokers`.
fn bootstrap_of(brokers: &[BrokerProcess]) -> String {
    brokers
        .iter()
        .map(BrokerProcess::bootstrap)
        .collect::<Vec<_>>()
        .join(",")
}

fn create_topic(bootstrap: &str, topic: &str, partitions: &str, replication: &str) {
    run_python(
        "create_topic.py",
        &[bootstrap, topic, partitions, replication],
        Duration::from_secs(60),
    )
    .assert_success();
}

/// The active controller's broker id and the leader of each partition of `topic`.
fn controller_and_leaders(address: &str, topic: &str) -> (i32, Vec<i32>) {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let request =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
    let response: MetadataResponse = call(address, ApiKey::Metadata, 12, &request);
    let mut partitions = response.topics[0].partitions.clone();
    partitions.sort_by_key(|p| p.partition_index);
    (
        response.controller_id.0,
        partitions.iter().map(|p| p.leader_id.0).collect(),
    )
}

/// Kills (-9) the broker chosen by `pick(controller, leaders)` while an idempotent acks=all
/// producer runs, then checks every acknowledged record.
fn kill_during_produce(topic: &str, pick: impl Fn(i32, &[i32]) -> i32) {
    let brokers = cluster(3, &[]);
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, topic, "3", "3");
    let (controller, leaders) = controller_and_leaders(&brokers[0].bootstrap(), topic);
    let victim = pick(controller, &leaders);
    println!("controller {controller}, leaders {leaders:?}: killing broker {victim}");
    let result = run_python(
        "replicated_failover.py",
        &[
            &bootstrap,
            topic,
            &brokers[(victim - 1) as usize].pid().to_string(),
        ],
        Duration::from_secs(120),
    );
    println!("{}", result.stdout());
    result.assert_success();
}

#[test]
fn killing_a_partition_leader_loses_no_acknowledged_record() {
    // A leader that is not the active controller: only its partitions fail over.
    kill_during_produce("leader-killed", |controller, leaders| {
        *leaders
            .iter()
            .find(|&&leader| leader != controller)
            .expect("a leader other than the controller")
    });
}

#[test]
fn killing_the_active_controller_loses_no_acknowledged_record() {
    // The controller leads partitions too: the quorum elects a new controller, which fences
    // the dead broker and moves its leaderships.
    kill_during_produce("controller-killed", |controller, leaders| {
        assert!(
            leaders.contains(&controller),
            "the controller leads a partition"
        );
        controller
    });
}

#[test]
fn a_broker_with_a_wiped_volume_re_replicates_everything() {
    let mut brokers = cluster(3, &[]);
    let bootstrap = brokers[0].bootstrap();
    create_topic(&bootstrap, "rebuilt", "3", "3");
    run_python(
        "produce_count.py",
        &[&bootstrap, "rebuilt", "5000"],
        Duration::from_secs(60),
    )
    .assert_success();
    brokers[2].kill9();
    // An instance-store replacement: the whole volume is gone, quorum state included.
    std::fs::remove_dir_all(brokers[2].data_dir()).expect("wiping the broker's volume");
    brokers[2].restart();
    // Every partition gets its three in-sync replicas back, and the rebuilt broker holds
    // as many records as the others.
    run_python(
        "wait_in_sync.py",
        &[&bootstrap, "rebuilt", "3", "60"],
        Duration::from_secs(90),
    )
    .assert_success();
    let size = |broker: &BrokerProcess| -> u64 {
        (0..3)
            .map(|p| {
                let dir = broker.data_dir().join("logs").join(format!("rebuilt-{p}"));
                std::fs::read_dir(dir)
                    .map(|entries| {
                        entries
                            .filter_map(Result::ok)
                            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                            .sum::<u64>()
                    })
                    .unwrap_or(0)
            })
            .sum()
    };
    assert_eq!(
        size(&brokers[2]),
        size(&brokers[0]),
        "rebuilt replica holds the same log bytes"
    );
}

/// A follower that was down while the leader deleted the records it would fetch next restarts
/// its log at the leader's log start, rejoins the ISR, and deleted records stay deleted when it
/// becomes leader.
#[test]
fn a_follower_behind_the_leaders_log_start_restarts_there() {
    let mut brokers = cluster(3, &[]);
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, "trimmed", "1", "3");
    let produce = |count: &str| {
        run_python(
            "produce_count.py",
            &[&bootstrap, "trimmed", count],
            Duration::from_secs(90),
        )
        .assert_success()
    };
    produce("1000");
    let (_, leaders) = controller_and_leaders(&brokers[0].bootstrap(), "trimmed");
    let leader = leaders[0];
    let behind = (1..=3).find(|&id| id != leader).expect("a follower");
    brokers[(behind - 1) as usize].kill9();
    produce("1000");
    let log_start = |mode: &str, offset: &str| {
        run_python(
            "log_start.py",
            &[mode, &bootstrap, "trimmed", "0", offset],
            Duration::from_secs(90),
        )
        .assert_success()
    };
    log_start("delete", "1500");
    // DeleteRecords answers once the in-sync follower's log start moved too.
    let checkpoint_of = |broker: &BrokerProcess| {
        let checkpoint = broker
            .data_dir()
            .join("logs/trimmed-0/log-start-offset-checkpoint");
        std::fs::read_to_string(checkpoint).unwrap_or_default()
    };
    let starts_at_1500 = |text: &str| text.lines().any(|line| line.trim() == "1500");
    let in_sync = (1..=3)
        .find(|&id| id != leader && id != behind)
        .expect("a third broker");
    let text = checkpoint_of(&brokers[(in_sync - 1) as usize]);
    assert!(
        starts_at_1500(&text),
        "in-sync follower {in_sync}'s log start when DeleteRecords answered: {text:?}"
    );
    brokers[(behind - 1) as usize].restart();
    run_python(
        "wait_in_sync.py",
        &[&bootstrap, "trimmed", "3", "60"],
        Duration::from_secs(90),
    )
    .assert_success();
    // The follower that was down restarted its log at the leader's log start. Polled: the
    // ISR above may come from a broker whose metadata still shows the follower in sync from
    // before its kill (the restarted broker itself, while it catches up with the quorum).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = checkpoint_of(&brokers[(behind - 1) as usize]);
    while !starts_at_1500(&text) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        text = checkpoint_of(&brokers[(behind - 1) as usize]);
    }
    assert!(
        starts_at_1500(&text),
        "restarted follower {behind}'s log start: {text:?}"
    );
    // The old leader goes: whoever leads now must not serve the deleted records again.
    brokers[(leader - 1) as usize].kill9();
    log_start("expect", "1500");
}

#[test]
fn restarting_each_broker_in_turn_with_sigterm_loses_no_produce() {
    let mut brokers = cluster(3, &[]);
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, "rolling", "3", "3");
    let producer = std::process::Command::new("python3")
        .arg(common::python_dir().join("produce_steadily.py"))
        .args([&bootstrap, "rolling", "45", "500"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the producer");
    std::thread::sleep(Duration::from_secs(2));
    for broker in brokers.iter_mut() {
        // SIGTERM runs a controlled shutdown: leaderships move before the broker stops.
        let status = broker.sigterm_and_wait();
        assert!(status.success(), "broker exited with {status}");
        broker.restart();
        run_python(
            "wait_in_sync.py",
            &[&bootstrap, "rolling", "3", "60"],
            Duration::from_secs(90),
        )
        .assert_success();
    }
    let output = producer
        .wait_with_output()
        .expect("waiting for the producer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "producer saw errors or lost records:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET /admin/can-stop` on `broker`: the status and the JSON answer.
fn can_stop(broker: &BrokerProcess) -> (u16, serde_json::Value) {
    let (status, body) = broker.admin_get("/admin/can-stop");
    let answer = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/admin/can-stop answered {status} {body:?}: {e}"));
    (status, answer)
}

fn names(answer: &serde_json::Value, key: &str) -> Vec<String> {
    answer[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list in {answer}"))
        .iter()
        .map(|name| name.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn can_stop_waits_only_for_partitions_that_can_stay_writable() {
    let mut brokers = cluster(3, &["--replica-lag-time-max-ms", "2000"]);
    let bootstrap = bootstrap_of(&brokers);
    // Three replicas over min.insync.replicas 2 stay writable with one broker down; two
    // replicas over 2 cannot, whatever a roll waits for.
    let min_insync_2 = "min.insync.replicas=2";
    run_python(
        "create_topic.py",
        &[&bootstrap, "wide", "1", "3", min_insync_2],
        Duration::from_secs(60),
    )
    .assert_success();
    run_python(
        "create_topic.py",
        &[&bootstrap, "narrow", "3", "2", min_insync_2],
        Duration::from_secs(60),
    )
    .assert_success();
    run_python(
        "wait_in_sync.py",
        &[&bootstrap, "wide", "3", "60"],
        Duration::from_secs(90),
    )
    .assert_success();
    run_python(
        "wait_in_sync.py",
        &[&bootstrap, "narrow", "2", "60"],
        Duration::from_secs(90),
    )
    .assert_success();
    let mut unavoidable = 0;
    for broker in &brokers {
        let (status, answer) = can_stop(broker);
        assert_eq!(
            (status, &answer["canStop"]),
            (200, &true.into()),
            "{answer}"
        );
        assert!(
            names(&answer, "underMinIsrIfStopped").is_empty(),
            "{answer}"
        );
        let narrow = names(&answer, "unavailableWhileStopped");
        assert!(
            narrow.iter().all(|name| name.starts_with("narrow-")),
            "{answer}"
        );
        unavoidable += narrow.len();
    }
    // Three partitions of two replicas: each broker names the ones it holds, six in all.
    assert_eq!(
        unavoidable, 6,
        "every replica of a narrow partition is named once"
    );

    // With broker 3 gone (and out of the ISR), stopping broker 1 would leave `wide` one
    // in-sync replica: it must wait.
    brokers[2].kill9();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, answer) = can_stop(&brokers[0]);
        let blocking = names(&answer, "underMinIsrIfStopped");
        if status == 409 && answer["canStop"] == false && !blocking.is_empty() {
            assert!(
                blocking.iter().all(|name| name.starts_with("wide-0")),
                "only wide-0 blocks: {answer}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker 1 still may stop with broker 3 out of the ISR: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A record above the default 1 MB limit, once every broker's `message.max.bytes` was raised
/// dynamically: acknowledged with acks=all, copied by both followers and read back whole.
#[test]
fn a_record_above_the_default_limit_replicates_after_a_dynamic_raise() {
    let brokers = cluster(3, &[]);
    let output = run_python(
        "large_batch.py",
        &[&bootstrap_of(&brokers)],
        Duration::from_secs(240),
    )
    .assert_success();
    println!("{}", output.stdout());
}

/// One record batch of `value`, without a producer id.
fn one_record(value: &[u8]) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(bytes::Bytes::copy_from_slice(value)),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [record].iter(), &options).expect("encoding a batch");
    buf.freeze()
}

/// KIP-951: a produce sent to a broker that does not lead the partition names the leader and
/// its listener (Produce v10), so that clients retry there without a metadata round trip.
#[test]
fn a_produce_to_a_follower_names_the_current_leader() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::ResponseError;

    let brokers = cluster(3, &[]);
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, "discovery", "1", "3");
    let (_, leaders) = controller_and_leaders(&brokers[0].bootstrap(), "discovery");
    let leader = leaders[0];
    // Broker i (from 0) has node id i + 1.
    let follower = &brokers[(leader % 3) as usize];
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("discovery")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(one_record(b"misrouted")))])]);
    let answer: ProduceResponse = call(&follower.bootstrap(), ApiKey::Produce, 10, &request);
    let partition = &answer.responses[0].partition_responses[0];
    assert_eq!(
        partition.error_code,
        ResponseError::NotLeaderOrFollower.code(),
        "{answer:?}"
    );
    assert_eq!(partition.current_leader.leader_id.0, leader, "{answer:?}");
    assert!(partition.current_leader.leader_epoch >= 0, "{answer:?}");
    let endpoint = answer
        .node_endpoints
        .iter()
        .find(|e| e.node_id.0 == leader)
        .unwrap_or_else(|| panic!("no endpoint for the leader: {answer:?}"));
    let leader_broker = &brokers[(leader - 1) as usize];
    assert_eq!(
        format!("{}:{}", endpoint.host, endpoint.port),
        leader_broker.bootstrap(),
        "the leader's listener"
    );
    assert_eq!(
        endpoint.rack.as_deref(),
        Some(format!("zone-{leader}").as_str())
    );

    // Older versions carry no tagged fields: the error alone.
    let answer: ProduceResponse = call(&follower.bootstrap(), ApiKey::Produce, 9, &request);
    assert_eq!(
        answer.responses[0].partition_responses[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
}

/// Sends one request to `address` with the broker's own Kafka client.
fn call<Req, Resp>(
    address: &str,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    request: &Req,
) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable + kafka_protocol::protocol::HeaderVersion,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let timeout = Duration::from_secs(30);
        let mut connection = millrace_broker::replication::client::BrokerConnection::connect(
            address,
            "millrace-e2e".into(),
            timeout,
        )
        .await
        .expect("connecting");
        connection
            .call(key, version, request, timeout)
            .await
            .expect("request answered")
    })
}

/// Replicas and in-sync replicas of a topic's partition 0, from Metadata.
fn replicas_of(address: &str, topic: &str) -> (Vec<i32>, Vec<i32>) {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let request =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]));
    let response: MetadataResponse = call(address, ApiKey::Metadata, 12, &request);
    let partition = &response.topics[0].partitions[0];
    let ids = |ids: &[kafka_protocol::messages::BrokerId]| {
        let mut ids: Vec<i32> = ids.iter().map(|id| id.0).collect();
        ids.sort_unstable();
        ids
    };
    (ids(&partition.replica_nodes), ids(&partition.isr_nodes))
}

#[test]
fn reassigning_a_partition_to_other_brokers_while_producing_loses_nothing() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
        TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let brokers = cluster(4, &[]);
    let address = brokers[0].bootstrap();
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, "moving", "1", "3");
    let (before, _) = replicas_of(&address, "moving");
    let outside = (1..=4)
        .find(|id| !before.contains(id))
        .expect("a fourth broker");
    // Swap the first replica for the broker that has none: {a,b,c} -> {b,c,d}.
    let mut target: Vec<i32> = before[1..].to_vec();
    target.push(outside);
    target.sort_unstable();
    let producer = std::process::Command::new("python3")
        .arg(common::python_dir().join("produce_steadily.py"))
        .args([&bootstrap, "moving", "25", "300"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the producer");
    std::thread::sleep(Duration::from_secs(3));
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("moving")))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(target.iter().map(|&id| BrokerId(id)).collect()))]),
    ]);
    let response: AlterPartitionReassignmentsResponse =
        call(&address, ApiKey::AlterPartitionReassignments, 0, &request);
    let code = response.responses[0].partitions[0].error_code;
    assert_eq!(code, 0, "reassignment refused: {response:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (replicas, isr) = replicas_of(&address, "moving");
        if replicas == target && isr == target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reassignment {before:?} -> {target:?} did not finish: replicas {replicas:?}, isr {isr:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = producer
        .wait_with_output()
        .expect("waiting for the producer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("moved {before:?} -> {target:?}\n{stdout}");
    assert!(
        output.status.success(),
        "producer saw errors or lost records:\n{stdout}"
    );
    let removed = before[0];
    let leftover = brokers[(removed - 1) as usize]
        .data_dir()
        .join("logs")
        .join("moving-0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftover.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!leftover.exists(), "the removed replica deleted its data");
}

#[test]
fn a_consumer_group_survives_its_coordinators_death_without_rereading_commits() {
    let brokers = cluster(3, &[]);
    let bootstrap = bootstrap_of(&brokers);
    create_topic(&bootstrap, "grouped", "3", "3");
    let pids = brokers
        .iter()
        .enumerate()
        .map(|(index, broker)| format!("{}:{}", index + 1, broker.pid()))
        .collect::<Vec<_>>()
        .join(",");
    let result = run_python(
        "group_coordinator_failover.py",
        &[&bootstrap, "grouped", "6000", &pids],
        Duration::from_secs(150),
    );
    println!("{}", result.stdout());
    result.assert_success();
}
