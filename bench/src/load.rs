//! The load: produce with librdkafka at full speed (acks=1, then acks=all), at half of the
//! measured rate (latency), then consume everything back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::{Statistics, Window};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::cpu;
use crate::stalls::StallMeter;

#[derive(Clone, Copy)]
pub struct LoadSpec {
    pub records: usize,
    pub size: usize,
    pub partitions: i32,
    /// MB/s of the rate-limited runs; `None`: half of the sustainable rate (below).
    pub limited_mb_s: Option<f64>,
    /// MB/s of this load the disk sustains (its sustained bandwidth divided by the copies
    /// written on this machine), if measured. A full-speed run of a gigabyte is absorbed by
    /// the page cache and can go at twice that; no broker keeps it up.
    pub sustainable_mb_s: Option<f64>,
    /// Consume everything produced after the produce runs.
    pub consume: bool,
}

impl LoadSpec {
    /// Records/s of a rate-limited run after a full-speed run that reached `full_records_s`,
    /// with how that rate was chosen: `--rate-mb-s`, or half of the lower of the full-speed
    /// rate and the disk's sustained bandwidth.
    pub fn limited_rate(&self, full_records_s: f64) -> (f64, String) {
        let per_mb = 1e6 / self.size as f64;
        if let Some(mb_s) = self.limited_mb_s {
            return (mb_s * per_mb, format!("--rate-mb-s {mb_s}"));
        }
        let full_mb_s = full_records_s / per_mb;
        match self.sustainable_mb_s {
            Some(disk) if disk < full_mb_s => (
                disk * per_mb / 2.0,
                format!("half of what the disk sustains, {disk:.0} MB/s (full speed: {full_mb_s:.0} MB/s)"),
            ),
            _ => (full_records_s / 2.0, format!("half of full speed, {full_mb_s:.0} MB/s")),
        }
    }
}

pub struct RunResult {
    pub name: String,
    pub records_s: f64,
    pub mb_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// CPU seconds per GB moved: the brokers' and this client's.
    pub broker_cpu_s_gb: f64,
    pub client_cpu_s_gb: f64,
}

impl RunResult {
    fn print(&self) {
        println!(
            "{:<28} {:>10.0} records/s {:>8.1} MB/s   p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms   CPU s/GB broker {:>5.2} client {:>5.2}",
            self.name,
            self.records_s,
            self.mb_s,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.broker_cpu_s_gb,
            self.client_cpu_s_gb
        );
    }
}

/// CPU time used by the brokers (all of them, for a cluster) and by this process between
/// `start` and `per_gb`.
struct CpuMeter {
    broker_pids: Vec<String>,
    brokers: f64,
    client: f64,
}

impl CpuMeter {
    fn start(broker_pids: &[u32]) -> anyhow::Result<CpuMeter> {
        let broker_pids: Vec<String> = broker_pids.iter().map(u32::to_string).collect();
        Ok(CpuMeter {
            brokers: Self::brokers_seconds(&broker_pids)?,
            client: cpu::seconds("self")?,
            broker_pids,
        })
    }

    fn brokers_seconds(pids: &[String]) -> anyhow::Result<f64> {
        pids.iter().map(|pid| cpu::seconds(pid)).sum()
    }

    /// (brokers, client) CPU seconds per GB for `bytes` moved since `start`.
    fn per_gb(&self, bytes: usize) -> anyhow::Result<(f64, f64)> {
        let gb = bytes as f64 / 1e9;
        Ok((
            (Self::brokers_seconds(&self.broker_pids)? - self.brokers) / gb,
            (cpu::seconds("self")? - self.client) / gb,
        ))
    }
}

/// A record slower than this is "slow" in the report of where a run's tail lies.
const SLOW: Duration = Duration::from_millis(10);

/// How often librdkafka reports its own latency windows in the rate-limited runs.
const STATISTICS_INTERVAL: &str = "100";

struct LatencyContext {
    created: Instant,
    latencies_us: Mutex<Vec<u32>>,
    /// When each slow record was sent, in milliseconds since `created`.
    slow_sent_ms: Mutex<Vec<u32>>,
    /// librdkafka's worst waits per statistics interval (rate-limited runs only).
    client_waits: Mutex<Vec<ClientWaits>>,
    failures: AtomicU64,
}

/// The longest waits librdkafka saw in one statistics interval, over all brokers, in
/// microseconds: a record in the producer's queue until it went into a request (linger
/// included), a request in the output buffer until written to the socket, and a request's
/// round trip from the socket write to the broker's response.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ClientWaits {
    /// Milliseconds since the context was created.
    at_ms: u32,
    queue_us: i64,
    outbuf_us: i64,
    rtt_us: i64,
}

impl ClientWaits {
    fn of(statistics: &Statistics, at_ms: u32) -> ClientWaits {
        let max = |window: &Option<Window>| window.as_ref().map_or(0, |w| w.max);
        // Brokers with node id -1 are the bootstrap entries and librdkafka's internal one.
        statistics
            .brokers
            .values()
            .filter(|broker| broker.nodeid >= 0)
            .fold(
                ClientWaits {
                    at_ms,
                    ..ClientWaits::default()
                },
                |waits, broker| ClientWaits {
                    at_ms,
                    queue_us: waits.queue_us.max(max(&broker.int_latency)),
                    outbuf_us: waits.outbuf_us.max(max(&broker.outbuf_latency)),
                    rtt_us: waits.rtt_us.max(max(&broker.rtt)),
                },
            )
    }

    /// The worst of each wait over `intervals`, with the time of the worst round trip.
    fn report(intervals: &[ClientWaits], offset_ms: u32) -> Option<String> {
        let worst_rtt = intervals.iter().max_by_key(|w| w.rtt_us)?;
        let max_ms =
            |f: fn(&ClientWaits) -> i64| intervals.iter().map(f).max().unwrap_or(0) as f64 / 1000.0;
        Some(format!(
            "librdkafka's worst per 100 ms: {:.2} ms in the producer queue (linger included), {:.2} ms before a request was written, {:.2} ms round trip to the broker (at {:.2} s)",
            max_ms(|w| w.queue_us),
            max_ms(|w| w.outbuf_us),
            worst_rtt.rtt_us as f64 / 1000.0,
            worst_rtt.at_ms.saturating_sub(offset_ms) as f64 / 1000.0
        ))
    }
}

impl LatencyContext {
    fn new(records: usize) -> LatencyContext {
        LatencyContext {
            created: Instant::now(),
            latencies_us: Mutex::new(Vec::with_capacity(records)),
            slow_sent_ms: Mutex::new(Vec::new()),
            client_waits: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
        }
    }

    fn clear(&self) {
        self.latencies_us.lock().expect("latency list").clear();
        self.slow_sent_ms.lock().expect("slow list").clear();
        self.client_waits.lock().expect("client waits").clear();
    }

    fn since_created_ms(&self, at: Instant) -> u32 {
        at.duration_since(self.created)
            .as_millis()
            .min(u32::MAX as u128) as u32
    }

    /// [`ClientWaits::report`] for the run started at `started`.
    fn client_waits_report(&self, started: Instant) -> Option<String> {
        let offset = self.since_created_ms(started);
        let waits = self.client_waits.lock().expect("client waits");
        let during: Vec<ClientWaits> = waits
            .iter()
            .filter(|w| w.at_ms >= offset)
            .copied()
            .collect();
        ClientWaits::report(&during, offset)
    }

    /// Whether the slow records were sent together (a stall) or spread over the run started
    /// at `started`: their count, the 100 ms windows of send time they fall in, the first and
    /// the last (seconds into the run).
    fn slow_report(&self, started: Instant) -> Option<String> {
        let offset = self.since_created_ms(started);
        let sent: Vec<u32> = self
            .slow_sent_ms
            .lock()
            .expect("slow list")
            .iter()
            .map(|ms| ms.saturating_sub(offset))
            .collect();
        let (first, last) = (sent.iter().min()?, sent.iter().max()?);
        let windows: std::collections::BTreeSet<u32> = sent.iter().map(|ms| ms / 100).collect();
        Some(format!(
            "{} records slower than {} ms, sent in {} distinct 100 ms windows between {:.2} s and {:.2} s",
            sent.len(),
            SLOW.as_millis(),
            windows.len(),
            *first as f64 / 1000.0,
            *last as f64 / 1000.0
        ))
    }
}

impl ClientContext for LatencyContext {
    fn stats(&self, statistics: Statistics) {
        let waits = ClientWaits::of(&statistics, self.since_created_ms(Instant::now()));
        self.client_waits.lock().expect("client waits").push(waits);
    }
}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        match result {
            Ok(_) => {
                let latency = sent.elapsed();
                if latency > SLOW {
                    let at = self.since_created_ms(*sent);
                    self.slow_sent_ms.lock().expect("slow list").push(at);
                }
                self.latencies_us
                    .lock()
                    .expect("latency list")
                    .push(latency.as_micros().min(u32::MAX as u128) as u32)
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Creates the topic, retrying for up to 30 s: a peer broker may listen before it can create
/// topics (millrace-broker is started only once its `/ready` answers).
pub fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_create_topic(bootstrap, name, partitions, replication) {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() < deadline => {
                eprintln!("creating {name} failed, retrying: {error:#}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
}

fn try_create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    // A broker asked before it knows its controller answers without one, and librdkafka then
    // waits for one until the request times out: a short timeout and a new client retry sooner.
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = runtime().block_on(admin.create_topics([&topic], &options))?;
    for result in results {
        if let Err((topic, code)) = result {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                bail!("creating {topic}: {code}");
            }
        }
    }
    Ok(())
}

pub fn create_idle_partitions(bootstrap: &str, partitions: i32) -> anyhow::Result<()> {
    let per_topic = 100.min(partitions.max(1));
    let mut created = 0;
    let mut index = 0;
    while created < partitions {
        let count = per_topic.min(partitions - created);
        create_topic(bootstrap, &format!("idle-{index}"), count, 1)?;
        created += count;
        index += 1;
    }
    Ok(())
}

/// Waits until every dirty page on the machine is on the disk (`sync(2)`), so that a run does
/// not start while the disk is still writing the previous run's data (which the broker flushes
/// within `flush.ms` of the run's end): each run's latency is that of its own load. Prints how
/// long that took when it was noticeable.
fn settle_disk() {
    let started = Instant::now();
    rustix::fs::sync();
    let took = started.elapsed();
    if took > Duration::from_millis(100) {
        println!(
            "  (the disk took {:.2} s to write out earlier data before the next run)",
            took.as_secs_f64()
        );
    }
}

pub(crate) fn produce(
    bootstrap: &str,
    topic: &str,
    spec: &LoadSpec,
    acks: &str,
    rate: Option<f64>,
    name: &str,
    broker_pids: &[u32],
) -> anyhow::Result<RunResult> {
    let context = LatencyContext::new(spec.records);
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576");
    if rate.is_some() {
        config.set("statistics.interval.ms", STATISTICS_INTERVAL);
    }
    let producer: ThreadedProducer<LatencyContext> = config.create_with_context(context)?;
    let value = vec![b'x'; spec.size];
    warm_up(&producer, topic, spec, &value)?;
    settle_disk();
    let cpu = CpuMeter::start(broker_pids)?;
    let stalls = rate.map(|_| StallMeter::start());
    let started = Instant::now();
    for i in 0..spec.records {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let key = (i as u64).to_be_bytes();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(Instant::now()))
            .key(&key[..])
            .payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => bail!("produce failed: {error}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let seconds = started.elapsed().as_secs_f64();
    let oversleep = stalls.map(StallMeter::stop);
    let context = producer.context();
    let failures = context.failures.load(Ordering::Relaxed);
    if failures > 0 {
        bail!("{failures} records were not acknowledged");
    }
    let mut latencies = std::mem::take(&mut *context.latencies_us.lock().expect("latency list"));
    latencies.sort_unstable();
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    let (broker_cpu_s_gb, client_cpu_s_gb) = cpu.per_gb(spec.records * spec.size)?;
    let result = RunResult {
        name: name.to_string(),
        records_s: spec.records as f64 / seconds,
        mb_s: (spec.records * spec.size) as f64 / 1e6 / seconds,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        p999_ms: quantile(0.999),
        broker_cpu_s_gb,
        client_cpu_s_gb,
    };
    result.print();
    if let Some(oversleep) = oversleep {
        let reports = [
            context.slow_report(started),
            context.client_waits_report(started),
            Some(oversleep.to_string()),
        ];
        for report in reports.into_iter().flatten() {
            println!("  {report}");
        }
    }
    Ok(result)
}

/// Before the clock starts, one acknowledged record per partition: the producer has fetched the
/// topic's metadata and connected to the leaders, so the first timed records do not wait for
/// the client's start-up (tens of milliseconds, which is the p99 of a run lasting a second or
/// two). The warm-up records are not counted in the figures.
fn warm_up(
    producer: &ThreadedProducer<LatencyContext>,
    topic: &str,
    spec: &LoadSpec,
    value: &[u8],
) -> anyhow::Result<()> {
    for partition in 0..spec.partitions {
        let record = BaseRecord::<(), [u8], _>::with_opaque_to(topic, Box::new(Instant::now()))
            .partition(partition)
            .payload(value);
        producer
            .send(record)
            .map_err(|(error, _)| anyhow::anyhow!("warm-up produce failed: {error}"))?;
    }
    producer.flush(Duration::from_secs(60))?;
    let context = producer.context();
    if context.failures.load(Ordering::Relaxed) > 0 {
        bail!("warm-up records were not acknowledged");
    }
    context.clear();
    Ok(())
}

/// Records the four produce runs of [`run_suite`] write besides the timed ones.
fn warm_up_records(spec: &LoadSpec) -> usize {
    4 * spec.partitions.max(0) as usize
}

fn consume(
    bootstrap: &str,
    topic: &str,
    spec: &LoadSpec,
    expected: usize,
    broker_pids: &[u32],
) -> anyhow::Result<RunResult> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "millrace-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..spec.partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let cpu = CpuMeter::start(broker_pids)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut seen = 0usize;
    let mut bytes = 0usize;
    while seen < expected {
        if Instant::now() > deadline {
            bail!("consumed only {seen} of {expected} records in 300 s");
        }
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.context("consume")?;
            bytes += message.payload().map_or(0, |p| p.len());
            seen += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (broker_cpu_s_gb, client_cpu_s_gb) = cpu.per_gb(bytes)?;
    let result = RunResult {
        name: "consume".into(),
        records_s: seen as f64 / seconds,
        mb_s: bytes as f64 / 1e6 / seconds,
        p50_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        broker_cpu_s_gb,
        client_cpu_s_gb,
    };
    result.print();
    Ok(result)
}

/// The runs, in order: acks=1 full speed, acks=all full speed, both at half their rate, then
/// one consume of everything produced.
/// The rate of the rate-limited run that follows the full-speed run `full`, announced.
pub(crate) fn limited_rate(spec: &LoadSpec, full: &RunResult) -> f64 {
    let (records_s, why) = spec.limited_rate(full.records_s);
    println!(
        "next: {} @ half rate, {:.1} MB/s: {why}",
        full.name,
        records_s * spec.size as f64 / 1e6
    );
    records_s
}

pub fn run_suite(
    bootstrap: &str,
    spec: &LoadSpec,
    broker_pid: u32,
) -> anyhow::Result<Vec<RunResult>> {
    let topic = format!("bench-{broker_pid}");
    create_topic(bootstrap, &topic, spec.partitions, 1)?;
    let acks1 = produce(
        bootstrap,
        &topic,
        spec,
        "1",
        None,
        "produce acks=1",
        &[broker_pid],
    )?;
    let acks_all = produce(
        bootstrap,
        &topic,
        spec,
        "all",
        None,
        "produce acks=all",
        &[broker_pid],
    )?;
    let half = LoadSpec {
        records: spec.records / 2,
        ..*spec
    };
    let half1 = produce(
        bootstrap,
        &topic,
        &half,
        "1",
        Some(limited_rate(spec, &acks1)),
        "produce acks=1 @ half rate",
        &[broker_pid],
    )?;
    let half_all = produce(
        bootstrap,
        &topic,
        &half,
        "all",
        Some(limited_rate(spec, &acks_all)),
        "produce acks=all @ half rate",
        &[broker_pid],
    )?;
    let mut results = vec![acks1, acks_all, half1, half_all];
    if spec.consume {
        let expected = spec.records * 3 + warm_up_records(spec);
        results.push(consume(bootstrap, &topic, spec, expected, &[broker_pid])?);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limited_mb_s: Option<f64>, sustainable_mb_s: Option<f64>) -> LoadSpec {
        LoadSpec {
            records: 1000,
            size: 1000,
            partitions: 1,
            limited_mb_s,
            sustainable_mb_s,
            consume: true,
        }
    }

    #[test]
    fn the_limited_rate_is_half_of_full_speed_or_of_the_disk_whichever_is_lower() {
        // 1000-byte records: 1 MB/s is 1000 records/s.
        assert_eq!(spec(None, Some(400.0)).limited_rate(300_000.0).0, 150_000.0);
        let (records_s, why) = spec(None, Some(400.0)).limited_rate(700_000.0);
        assert_eq!(records_s, 200_000.0);
        assert!(why.contains("disk sustains, 400 MB/s"), "{why}");
        assert_eq!(spec(None, None).limited_rate(700_000.0).0, 350_000.0);
        assert_eq!(
            spec(Some(250.0), Some(400.0)).limited_rate(700_000.0).0,
            250_000.0
        );
    }

    #[test]
    fn the_client_waits_report_takes_each_worst_and_the_time_of_the_worst_round_trip() {
        let interval = |at_ms, queue_us, outbuf_us, rtt_us| ClientWaits {
            at_ms,
            queue_us,
            outbuf_us,
            rtt_us,
        };
        let intervals = [
            interval(1_100, 5_200, 40, 900),
            interval(1_200, 48_000, 10, 51_500),
            interval(1_300, 6_000, 300, 1_200),
        ];
        assert_eq!(
            ClientWaits::report(&intervals, 1_000).unwrap(),
            "librdkafka's worst per 100 ms: 48.00 ms in the producer queue (linger included), 0.30 ms before a request was written, 51.50 ms round trip to the broker (at 0.20 s)"
        );
        assert_eq!(ClientWaits::report(&[], 0), None);
    }
}
