//! The replicated run: 3 brokers on this machine forming one cluster, a topic with 3 replicas,
//! acks=all throughput and latency, then the time from kill -9 of a partition's leader to the
//! first successful produce on that partition.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::broker_process::BrokerProcess;
use crate::load::{create_topic, produce, LoadSpec};

pub fn run(binary: &Path, spec: &LoadSpec) -> anyhow::Result<()> {
    let mut brokers = BrokerProcess::start_cluster(binary, 3)?;
    let bootstrap = brokers
        .iter()
        .map(BrokerProcess::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    let topic = "bench-replicated";
    create_topic(&bootstrap, topic, spec.partitions, 3)?;
    println!(
        "# 3 brokers, {} partitions x 3 replicas (min.insync.replicas 2)",
        spec.partitions
    );
    let full = produce(&bootstrap, topic, spec, "all", None, "3 replicas acks=all")?;
    let half = LoadSpec {
        records: spec.records / 2,
        ..*spec
    };
    produce(
        &bootstrap,
        topic,
        &half,
        "all",
        Some(full.records_s / 2.0),
        "3 replicas acks=all @ half rate",
    )?;
    let leader = leader_of(&bootstrap, topic, 0)?;
    let seconds = failover_seconds(&bootstrap, topic, 0, &mut brokers[(leader - 1) as usize])?;
    println!(
        "kill -9 of the leader of partition 0 (broker {leader}) to the first successful produce on it: {seconds:.2} s (target < 5 s)"
    );
    Ok(())
}

/// `runs` failovers, each on a fresh 3-broker cluster: alternately the leader of a partition
/// that is not the active controller is killed, and the active controller (which leads a
/// partition too). Prints each time and the median and worst per case.
pub fn failover_runs(binary: &Path, runs: usize) -> anyhow::Result<()> {
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let cases = [
        "leader (not the controller)",
        "active controller (a leader too)",
    ];
    for run in 0..runs {
        let case = run % 2;
        let mut brokers = BrokerProcess::start_cluster(binary, 3)?;
        let bootstrap = brokers
            .iter()
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",");
        let topic = "failover";
        create_topic(&bootstrap, topic, 3, 3)?;
        let controller = wait_for_controller(&brokers)?;
        let leaders = (0..3)
            .map(|p| leader_of(&bootstrap, topic, p))
            .collect::<anyhow::Result<Vec<i32>>>()?;
        let wanted = |leader: i32| (leader == controller) == (case == 1);
        let Some(partition) = (0..3).find(|&p| wanted(leaders[p as usize])) else {
            println!("run {run}: no partition led by the wanted broker (leaders {leaders:?}, controller {controller}); skipped");
            continue;
        };
        let victim = leaders[partition as usize];
        let seconds = failover_seconds(
            &bootstrap,
            topic,
            partition,
            &mut brokers[(victim - 1) as usize],
        )?;
        println!(
            "run {run}: kill -9 of broker {victim}, {}, to the first produce acknowledged on partition {partition}: {seconds:.2} s",
            cases[case]
        );
        times[case].push(seconds);
    }
    for (case, mut seconds) in times.into_iter().enumerate() {
        if seconds.is_empty() {
            continue;
        }
        seconds.sort_by(f64::total_cmp);
        println!(
            "failover, {}: median {:.2} s, worst {:.2} s over {} runs (target < 5 s)",
            cases[case],
            seconds[seconds.len() / 2],
            seconds[seconds.len() - 1],
            seconds.len()
        );
    }
    Ok(())
}

/// The broker id of the active controller, once one is elected.
fn wait_for_controller(brokers: &[BrokerProcess]) -> anyhow::Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(index) = brokers.iter().position(BrokerProcess::is_active_controller) {
            return Ok(index as i32 + 1);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no active controller within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leader_of(bootstrap: &str, topic: &str, partition: i32) -> anyhow::Result<i32> {
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let leader = metadata
        .topics()
        .first()
        .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
        .map(|p| p.leader())
        .context("partition not in metadata")?;
    Ok(leader)
}

/// Records when the first record sent after `after` was acknowledged.
struct FirstSuccess {
    after: Instant,
    succeeded: AtomicBool,
    at: Mutex<Option<Instant>>,
}

impl ClientContext for FirstSuccess {}

impl ProducerContext for FirstSuccess {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        if result.is_ok() && *sent >= self.after {
            self.at.lock().expect("lock").get_or_insert(Instant::now());
            self.succeeded.store(true, Ordering::Release);
        }
    }
}

/// Kills `victim` and produces to `partition` every 5 ms until a record sent after the kill
/// is acknowledged (acks=all).
fn failover_seconds(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    victim: &mut BrokerProcess,
) -> anyhow::Result<f64> {
    let killed = Instant::now();
    let context = FirstSuccess {
        after: killed,
        succeeded: AtomicBool::new(false),
        at: Mutex::new(None),
    };
    let producer: Arc<ThreadedProducer<FirstSuccess>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "60000")
            .create_with_context(context)?,
    );
    victim.kill();
    let deadline = killed + Duration::from_secs(60);
    while !producer.context().succeeded.load(Ordering::Acquire) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no produce succeeded within 60 s of the kill"
        );
        let record: BaseRecord<'_, (), str, Box<Instant>> =
            BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
                .partition(partition)
                .payload("failover probe");
        let _ = producer.send(record);
        std::thread::sleep(Duration::from_millis(5));
    }
    producer.flush(Duration::from_secs(30))?;
    let at = producer
        .context()
        .at
        .lock()
        .expect("lock")
        .context("success time recorded")?;
    Ok((at - killed).as_secs_f64())
}
