//! Prometheus metrics of the broker, served by the admin endpoint at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use kafka_protocol::messages::ApiKey;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    pub api: String,
}

pub struct Metrics {
    registry: Registry,
    bytes_in: Family<TopicLabel, Counter>,
    records_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    records_out: Family<TopicLabel, Counter>,
    request_seconds: Family<ApiLabel, Histogram>,
    rejected_frames: Counter,
    throttled_replication_bytes: Counter,
    throttled_fetches: Counter,
    partitions: Gauge,
    active_controller: Gauge,
    log_size_bytes: Family<TopicLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("millrace");
        let bytes_in = Family::<TopicLabel, Counter>::default();
        let records_in = Family::<TopicLabel, Counter>::default();
        let bytes_out = Family::<TopicLabel, Counter>::default();
        let records_out = Family::<TopicLabel, Counter>::default();
        let request_seconds = Family::<ApiLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        let rejected_frames = Counter::default();
        let throttled_replication_bytes = Counter::default();
        let throttled_fetches = Counter::default();
        let partitions = Gauge::default();
        let active_controller = Gauge::default();
        let log_size_bytes = Family::<TopicLabel, Gauge>::default();
        registry.register(
            "bytes_in",
            "Record bytes appended, per topic",
            bytes_in.clone(),
        );
        registry.register(
            "records_in",
            "Records appended, per topic",
            records_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Record bytes sent to consumers, per topic",
            bytes_out.clone(),
        );
        registry.register(
            "records_out",
            "Records sent to consumers, per topic",
            records_out.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to handle a request, per API",
            request_seconds.clone(),
        );
        registry.register(
            "rejected_requests",
            "Connections closed for an oversized or undecodable request",
            rejected_frames.clone(),
        );
        registry.register(
            "replication_throttled_bytes",
            "Record bytes sent, as leader, under leader.replication.throttled.rate to replicas \
             a reassignment is adding",
            throttled_replication_bytes.clone(),
        );
        registry.register(
            "replication_throttled_fetches",
            "Follower fetches answered without a reassignment replica's partitions because \
             the replication throttle's bucket was empty",
            throttled_fetches.clone(),
        );
        registry.register(
            "partitions",
            "Partitions hosted by this broker",
            partitions.clone(),
        );
        registry.register(
            "active_controller",
            "1 on the broker that is the active controller (the metadata quorum's leader)",
            active_controller.clone(),
        );
        registry.register(
            "log_size_bytes",
            "Size of the partition logs, per topic",
            log_size_bytes.clone(),
        );
        Metrics {
            registry,
            bytes_in,
            records_in,
            bytes_out,
            records_out,
            request_seconds,
            rejected_frames,
            throttled_replication_bytes,
            throttled_fetches,
            partitions,
            active_controller,
            log_size_bytes,
        }
    }

    fn topic(topic: &str) -> TopicLabel {
        TopicLabel {
            topic: topic.to_string(),
        }
    }

    pub fn appended(&self, topic: &str, records: i64, bytes: usize) {
        let label = Self::topic(topic);
        self.bytes_in.get_or_create(&label).inc_by(bytes as u64);
        self.records_in
            .get_or_create(&label)
            .inc_by(records.max(0) as u64);
    }

    pub fn fetched(&self, topic: &str, records: i64, bytes: usize) {
        let label = Self::topic(topic);
        self.bytes_out.get_or_create(&label).inc_by(bytes as u64);
        self.records_out
            .get_or_create(&label)
            .inc_by(records.max(0) as u64);
    }

    pub fn observe_request(&self, api: ApiKey, seconds: f64) {
        self.request_seconds
            .get_or_create(&ApiLabel {
                api: format!("{api:?}"),
            })
            .observe(seconds);
    }

    pub fn rejected_frame(&self) {
        self.rejected_frames.inc();
    }

    /// A follower fetch answered under the replication throttle: the bytes its throttled
    /// partitions were sent, and whether the empty bucket held one back.
    pub fn throttled_fetch(&self, bytes: usize, held_back: bool) {
        self.throttled_replication_bytes.inc_by(bytes as u64);
        if held_back {
            self.throttled_fetches.inc();
        }
    }

    /// Renders the Prometheus text format, after refreshing the gauges that are read on demand.
    pub fn render(
        &self,
        partitions: usize,
        active_controller: bool,
        log_sizes: &[(String, u64)],
    ) -> String {
        self.partitions.set(partitions as i64);
        self.active_controller.set(i64::from(active_controller));
        self.log_size_bytes.clear();
        for (topic, size) in log_sizes {
            self.log_size_bytes
                .get_or_create(&Self::topic(topic))
                .set(*size as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
