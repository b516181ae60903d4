//! The broker's configuration: one typed struct, from flags and `MILLRACE_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Configuration of one `millrace-broker` process.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "millrace-broker",
    version,
    about = "Millrace's Kafka-compatible broker"
)]
pub struct BrokerConfig {
    /// This broker's id in the cluster (Kafka's node.id).
    #[arg(long, env = "MILLRACE_NODE_ID", default_value_t = 1)]
    pub node_id: i32,

    /// Directory holding the partition logs, topic metadata and group offsets.
    #[arg(
        long,
        env = "MILLRACE_DATA_DIR",
        default_value = "./millrace-broker-data"
    )]
    pub data_dir: PathBuf,

    /// Address the Kafka listener binds to.
    #[arg(long, env = "MILLRACE_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,

    /// host:port clients are told to connect to (defaults to the listen address).
    #[arg(long, env = "MILLRACE_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,

    /// Address of the HTTP admin endpoint (/health, /ready, /metrics).
    #[arg(long, env = "MILLRACE_ADMIN_LISTEN", default_value = "127.0.0.1:9644")]
    pub admin_listen: SocketAddr,

    /// Rack (zone) of this broker, Kafka's broker.rack.
    #[arg(long, env = "MILLRACE_RACK")]
    pub rack: Option<String>,

    /// The metadata quorum's voters, `id@host:port,...` (their controller listeners). Without
    /// it this broker is a single-node cluster and its own only voter.
    #[arg(long, env = "MILLRACE_VOTERS")]
    pub voters: Option<String>,

    /// Address of this broker's metadata-quorum listener. Defaults to its entry in --voters;
    /// a single-node broker without --voters picks a free loopback port.
    #[arg(long, env = "MILLRACE_CONTROLLER_LISTEN")]
    pub controller_listen: Option<SocketAddr>,

    /// `host:port` the quorum reaches this broker's controller listener at, for a broker that
    /// is not one of the --voters (an observer) and listens on a wildcard address. Defaults to
    /// --controller-listen.
    #[arg(long, env = "MILLRACE_CONTROLLER_ADVERTISED")]
    pub controller_advertised: Option<String>,

    /// How often the broker heartbeats to the active controller.
    #[arg(
        long,
        env = "MILLRACE_BROKER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 500
    )]
    pub broker_heartbeat_interval_ms: u64,

    /// A broker that has not heartbeated for this long is fenced and loses its leaderships
    /// (Kafka's 9 s default is traded for faster failover: five missed heartbeats).
    #[arg(
        long,
        env = "MILLRACE_BROKER_SESSION_TIMEOUT_MS",
        default_value_t = 2500
    )]
    pub broker_session_timeout_ms: u64,

    /// A follower that has not caught up for this long leaves the in-sync replicas
    /// (Kafka's replica.lag.time.max.ms).
    #[arg(
        long,
        env = "MILLRACE_REPLICA_LAG_TIME_MAX_MS",
        default_value_t = 10_000
    )]
    pub replica_lag_time_max_ms: i64,

    /// Bytes per second a leader sends, in all, to the replicas a partition reassignment is
    /// adding, until they join the ISR (Kafka's leader.replication.throttled.rate; dynamic).
    /// The default, Long.MAX (9223372036854775807), is unlimited.
    #[arg(
        long,
        env = "MILLRACE_LEADER_REPLICATION_THROTTLED_RATE",
        default_value_t = i64::MAX
    )]
    pub leader_replication_throttled_rate: i64,

    /// Cluster id reported to clients.
    #[arg(long, env = "MILLRACE_CLUSTER_ID", default_value = "millrace")]
    pub cluster_id: String,

    /// Create unknown topics when a client asks for their metadata or produces to them
    /// (Kafka's auto.create.topics.enable). Off by default: production clusters create topics
    /// explicitly.
    #[arg(long, env = "MILLRACE_AUTO_CREATE_TOPICS", default_value_t = false)]
    pub auto_create_topics: bool,

    /// Partitions of an auto-created topic, or of CreateTopics asking for the default (-1).
    #[arg(long, env = "MILLRACE_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,

    /// Largest request frame accepted, in bytes (Kafka's socket.request.max.bytes).
    #[arg(long, env = "MILLRACE_MAX_FRAME_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest record batch accepted, in bytes (Kafka's message.max.bytes); topics may
    /// override it with max.message.bytes.
    #[arg(long, env = "MILLRACE_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024 + 12)]
    pub max_message_bytes: usize,

    /// Most client connections served at once; further connections are closed on accept.
    #[arg(long, env = "MILLRACE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Default retention.ms of new topics (-1: keep forever).
    #[arg(long, env = "MILLRACE_LOG_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub log_retention_ms: i64,

    /// Default retention.bytes of new topics, per partition (-1: unlimited).
    #[arg(long, env = "MILLRACE_LOG_RETENTION_BYTES", default_value_t = -1)]
    pub log_retention_bytes: i64,

    /// Default segment.bytes of new topics.
    #[arg(long, env = "MILLRACE_LOG_SEGMENT_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub log_segment_bytes: i64,

    /// Default segment.ms of new topics.
    #[arg(long, env = "MILLRACE_LOG_SEGMENT_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub log_segment_ms: i64,

    /// Default flush.messages of new topics: fsync after this many records (-1: never by
    /// count).
    #[arg(long, env = "MILLRACE_LOG_FLUSH_MESSAGES", default_value_t = -1)]
    pub log_flush_messages: i64,

    /// Default flush.ms of new topics: fsync when the oldest unflushed record is this old.
    #[arg(long, env = "MILLRACE_LOG_FLUSH_MS", default_value_t = 1000)]
    pub log_flush_ms: i64,

    /// How often the retention task looks for segments to delete.
    #[arg(
        long,
        env = "MILLRACE_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 30_000
    )]
    pub retention_check_interval_ms: u64,

    /// Partitions of the internal __consumer_offsets topic (fixed once created).
    #[arg(long, env = "MILLRACE_OFFSETS_TOPIC_PARTITIONS", default_value_t = 8)]
    pub offsets_topic_partitions: i32,

    /// A __consumer_offsets partition this broker leads is compacted (its live offsets written
    /// again, the log start moved past the older records) once its log holds at least this
    /// many records and more than twice its live offsets. Checked every
    /// --retention-check-interval-ms.
    #[arg(
        long,
        env = "MILLRACE_OFFSETS_COMPACTION_MIN_RECORDS",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub offsets_compaction_min_records: u64,

    /// Most time a rebalance waits for members to rejoin before it completes without them
    /// is the group's own rebalance timeout; this delays the first rebalance of an empty group
    /// so that members starting together land in one generation
    /// (Kafka's group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "MILLRACE_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    pub group_initial_rebalance_delay_ms: u64,

    /// Smallest session timeout a group member may ask for.
    #[arg(
        long,
        env = "MILLRACE_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6000
    )]
    pub group_min_session_timeout_ms: i32,

    /// Largest session timeout a group member may ask for.
    #[arg(
        long,
        env = "MILLRACE_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    pub group_max_session_timeout_ms: i32,

    /// How long SIGTERM waits for in-flight requests before closing connections.
    #[arg(long, env = "MILLRACE_SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,

    /// Log output format: `text` or `json`.
    #[arg(long, env = "MILLRACE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl BrokerConfig {
    /// Refuses settings the broker cannot run with, naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(advertised) = &self.advertised_listener {
            parse_host_port(advertised).ok_or_else(|| {
                anyhow::anyhow!("--advertised-listener {advertised:?} is not HOST:PORT")
            })?;
        }
        if self.default_partitions < 1 {
            anyhow::bail!("--default-partitions must be at least 1");
        }
        if self.offsets_topic_partitions < 1 {
            anyhow::bail!("--offsets-topic-partitions must be at least 1");
        }
        if self.leader_replication_throttled_rate < 0 {
            anyhow::bail!("--leader-replication-throttled-rate must be at least 0");
        }
        if self.max_frame_bytes < 1024 {
            anyhow::bail!("--max-frame-bytes must be at least 1024");
        }
        if let Some(voters) = &self.voters {
            let voters = millrace_quorum::parse_voters(voters)
                .map_err(|e| anyhow::anyhow!("--voters: {e}"))?;
            if self.controller_listen.is_none() && !voters.iter().any(|v| v.id == self.node_id) {
                anyhow::bail!(
                    "--controller-listen is required: node {} is not one of the --voters",
                    self.node_id
                );
            }
        }
        if self.log_format != "text" && self.log_format != "json" {
            anyhow::bail!("--log-format must be text or json");
        }
        Ok(())
    }

    /// The host and port clients are told to use.
    pub fn advertised_host_port(&self) -> (String, i32) {
        self.advertised_listener
            .as_deref()
            .and_then(parse_host_port)
            .unwrap_or_else(|| (self.listen.ip().to_string(), self.listen.port() as i32))
    }
}

fn parse_host_port(value: &str) -> Option<(String, i32)> {
    let (host, port) = value.rsplit_once(':')?;
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then(|| (host.to_string(), port as i32))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_flag_has_a_millrace_environment_variable_and_help() {
        let command = BrokerConfig::command();
        let flags: Vec<_> = command
            .get_arguments()
            .filter(|arg| {
                arg.get_long()
                    .is_some_and(|long| long != "help" && long != "version")
            })
            .collect();
        assert!(flags.len() > 20, "{} flags", flags.len());
        for arg in flags {
            let long = arg.get_long().unwrap();
            let expected = format!("MILLRACE_{}", long.to_uppercase().replace('-', "_"));
            let env = arg.get_env().map(|env| env.to_string_lossy().into_owned());
            assert_eq!(env.as_deref(), Some(expected.as_str()), "--{long}");
            assert!(arg.get_help().is_some(), "--{long} has no help text");
        }
    }

    #[test]
    fn advertised_listener_must_be_host_and_port() {
        let mut config = BrokerConfig::parse_from(["millrace-broker"]);
        assert_eq!(config.advertised_host_port(), ("127.0.0.1".into(), 9092));
        config.advertised_listener = Some("broker-1.example:19092".into());
        assert!(config.validate().is_ok());
        assert_eq!(
            config.advertised_host_port(),
            ("broker-1.example".into(), 19092)
        );
        for bad in ["nohost", ":9092", "host:", "host:99999"] {
            config.advertised_listener = Some(bad.into());
            assert!(config.validate().is_err(), "{bad}");
        }
    }
}
