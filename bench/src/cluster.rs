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
use crate::load::{create_topic, limited_rate, produce, LoadSpec};

pub fn run(binary: &Path, spec: &LoadSpec) -> anyhow::Result<()> {
    let mut brokers = BrokerProcess::start_cluster(binary, 3)?;
    let bootstrap = brokers
        .iter()
        .map(BrokerProcess::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    let pids: Vec<u32> = brokers.iter().map(BrokerProcess::pid).collect();
    let topic = "bench-replicated";
    create_topic(&bootstrap, topic, spec.partitions, 3)?;
    println!(
        "# 3 brokers, {} partitions x 3 replicas (min.insync.replicas 2)",
        spec.partitions
    );
    let full = produce(
        &bootstrap,
        topic,
        spec,
        "all",
        None,
        "3 replicas acks=all",
        &pids,
    )?;
    let half = LoadSpec {
        records: spec.records / 2,
        ..*spec
    };
    // The three brokers write every byte to this machine's one disk.
    let copies = LoadSpec {
        sustainable_mb_s: spec.sustainable_mb_s.map(|disk| disk / 3.0),
        ..*spec
    };
    produce(
        &bootstrap,
        topic,
        &half,
        "all",
        Some(limited_rate(&copies, &full)),
        "3 replicas acks=all @ half rate",
        &pids,
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
    let mut moved_at: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
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
        let measured = failover(
            &bootstrap,
            topic,
            partition,
            &mut brokers[(victim - 1) as usize],
            Some(victim),
        )?;
        let moved = measured
            .metadata_s
            .map_or("not seen".to_string(), |s| format!("{s:.2} s"));
        println!(
            "run {run}: kill -9 of broker {victim}, {}: new leader of partition {partition} in the metadata after {moved}, first produce acknowledged after {:.2} s",
            cases[case], measured.produce_s
        );
        times[case].push(measured.produce_s);
        if let Some(seconds) = measured.metadata_s {
            moved_at[case].push(seconds);
        }
    }
    for (case, (produced, moved)) in times.into_iter().zip(moved_at).enumerate() {
        let (Some(produced), moved) = (summary(produced), summary(moved)) else {
            continue;
        };
        println!(
            "failover, {}: first produce acknowledged {produced}; new leader in the metadata {} (target < 5 s)",
            cases[case],
            moved.as_deref().unwrap_or("not seen"),
        );
    }
    Ok(())
}

/// "median X s, worst Y s over N runs", or None without runs.
fn summary(mut seconds: Vec<f64>) -> Option<String> {
    if seconds.is_empty() {
        return None;
    }
    seconds.sort_by(f64::total_cmp);
    Some(format!(
        "median {:.2} s, worst {:.2} s over {} runs",
        seconds[seconds.len() / 2],
        seconds[seconds.len() - 1],
        seconds.len()
    ))
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

/// Seconds from the kill to a new leader: as the surviving brokers' metadata shows it, and to
/// the first acknowledged produce (what a librdkafka producer sees).
struct Failover {
    metadata_s: Option<f64>,
    produce_s: f64,
}

/// Polls the surviving brokers' metadata every 20 ms until `partition` has a leader other than
/// `victim_id`; the seconds since `killed`, or None after 60 s.
fn watch_leader_change(
    survivors: String,
    topic: String,
    partition: i32,
    victim_id: i32,
    killed: Instant,
) -> std::thread::JoinHandle<Option<f64>> {
    std::thread::spawn(move || {
        let client: ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
            ClientConfig::new()
                .set("bootstrap.servers", &survivors)
                .create()
                .ok()?;
        while killed.elapsed() < Duration::from_secs(60) {
            let leader = client
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(1))
                .ok()
                .and_then(|m| {
                    m.topics()
                        .first()
                        .and_then(|t| t.partitions().iter().find(|p| p.id() == partition))
                        .map(|p| p.leader())
                });
            if leader.is_some_and(|leader| leader >= 0 && leader != victim_id) {
                return Some(killed.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    })
}

/// Kills `victim` and produces to `partition` every 5 ms until a record sent after the kill
/// is acknowledged (acks=all).
fn failover_seconds(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    victim: &mut BrokerProcess,
) -> anyhow::Result<f64> {
    failover(bootstrap, topic, partition, victim, None).map(|f| f.produce_s)
}

fn failover(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    victim: &mut BrokerProcess,
    victim_id: Option<i32>,
) -> anyhow::Result<Failover> {
    let victim_address = victim.bootstrap();
    let survivors = bootstrap
        .split(',')
        .filter(|address| *address != victim_address)
        .collect::<Vec<_>>()
        .join(",");
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
    let watcher = victim_id
        .map(|id| watch_leader_change(survivors, topic.to_string(), partition, id, killed));
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
    let metadata_s = watcher.and_then(|w| w.join().ok().flatten());
    Ok(Failover {
        metadata_s,
        produce_s: (at - killed).as_secs_f64(),
    })
}
