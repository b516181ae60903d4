//! The `millrace` command line: every flag also reads a `MILLRACE_*` environment variable.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::operator::WatchScope;

#[derive(Debug, Parser)]
#[command(
    name = "millrace",
    version,
    about = "Millrace: managed Kafka-compatible clusters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    Serve(ServeArgs),
    /// Print the OpenAPI document of the REST API.
    Openapi,
    /// Print the KafkaCluster CustomResourceDefinition as YAML (deploy/crd.yaml).
    Crd,
    /// Manage clusters through the REST API.
    Cluster {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        action: ClusterCommand,
    },
    /// Print a cluster's bootstrap broker string.
    Bootstrap {
        #[command(flatten)]
        client: ClientArgs,
        /// The cluster's id.
        cluster_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the embedded store (and the local platform's nodes) live.
    #[arg(long, env = "MILLRACE_DATA_DIR", default_value = "./millrace-data")]
    pub data_dir: PathBuf,
    /// Address the REST API listens on.
    #[arg(long, env = "MILLRACE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// `postgres://…` for PostgreSQL; default SQLite at <data-dir>/millrace.db.
    #[arg(long, env = "MILLRACE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Browser origins allowed to call the API (comma-separated); default any localhost origin.
    #[arg(long, env = "MILLRACE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Seconds before a request is answered 408.
    #[arg(long, env = "MILLRACE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Where `millrace-agent` and `millrace-broker` are (default: beside this executable).
    #[arg(long, env = "MILLRACE_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Ports the local platform hands to broker nodes, `first-last` (last excluded).
    #[arg(long, env = "MILLRACE_NODE_PORTS", default_value = "20000-32000", value_parser = parse_port_range)]
    pub node_ports: Range<u16>,
    /// Seconds a new cluster's brokers get to become ready before the create fails.
    #[arg(
        long,
        env = "MILLRACE_BROKER_READY_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub broker_ready_timeout_secs: u64,
    /// Seconds one step of a rolling change may wait (a broker's can-stop check, every
    /// partition back in sync) before the operation fails with what it waited for.
    #[arg(long, env = "MILLRACE_ROLL_STEP_TIMEOUT_SECS", default_value_t = 300)]
    pub roll_step_timeout_secs: u64,
    /// Seconds between two looks at how full the volumes are (storage auto-expansion).
    #[arg(long, env = "MILLRACE_STORAGE_CHECK_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub storage_check_interval_secs: u64,
    /// Bytes in a GiB of a local platform volume (the broker enforces the volume's size).
    /// Smaller than a GiB only for demos and tests: a volume then fills, and auto-expansion
    /// acts, in seconds.
    #[arg(long, env = "MILLRACE_LOCAL_VOLUME_GIB_BYTES", default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(1024..))]
    pub local_volume_gib_bytes: u64,
    /// Run the KafkaCluster controller: clusters declared with `kubectl apply` (needs the CRD
    /// from `millrace crd` and a Kubernetes API: in-cluster or KUBECONFIG).
    #[arg(long, env = "MILLRACE_WATCH_KAFKACLUSTERS", default_value_t = false)]
    pub watch_kafkaclusters: bool,
    /// Watch KafkaClusters in this namespace only (default: all namespaces).
    #[arg(
        long,
        env = "MILLRACE_KAFKACLUSTERS_NAMESPACE",
        requires = "watch_kafkaclusters"
    )]
    pub kafkaclusters_namespace: Option<String>,
    /// Where broker nodes run: `local` (agent processes on this machine) or `kubernetes`.
    #[arg(long, env = "MILLRACE_PLATFORM", value_enum, default_value_t = PlatformKind::Local)]
    pub platform: PlatformKind,
    /// URL the broker agents reach this control plane at (default: from --listen). On
    /// Kubernetes, the control plane's Service, e.g. http://millrace.millrace-system.svc:8080.
    #[arg(long, env = "MILLRACE_CONTROL_PLANE_URL")]
    pub control_plane_url: Option<String>,
    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
}

/// Where broker nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformKind {
    /// broker-agent processes on this machine (the embedded default).
    Local,
    /// broker-agent Pods in a Kubernetes cluster (in-cluster config or KUBECONFIG).
    Kubernetes,
}

/// Settings of `--platform kubernetes`.
#[derive(Debug, Clone, Default, Args)]
pub struct KubernetesArgs {
    /// Namespace of the clusters' objects (default: the control plane's own namespace).
    #[arg(long, env = "MILLRACE_KUBERNETES_NAMESPACE")]
    pub kubernetes_namespace: Option<String>,
    /// One namespace per cluster (`millrace-<cluster id>`) instead of a shared one.
    #[arg(
        long,
        env = "MILLRACE_NAMESPACE_PER_CLUSTER",
        conflicts_with = "kubernetes_namespace"
    )]
    pub namespace_per_cluster: bool,
    /// The broker-agent image, carrying the broker binaries (required on Kubernetes).
    #[arg(long, env = "MILLRACE_AGENT_IMAGE")]
    pub agent_image: Option<String>,
    /// Storage class of persistent volumes (default: the cluster's default class).
    #[arg(long, env = "MILLRACE_STORAGE_CLASS")]
    pub storage_class: Option<String>,
    /// Broker versions the agent image carries, comma-separated (default: this build's).
    #[arg(long, env = "MILLRACE_BROKER_VERSIONS", value_delimiter = ',')]
    pub broker_versions: Vec<String>,
    /// Where the agent image keeps `millrace-agent` and `<version>/millrace-broker`.
    #[arg(
        long,
        env = "MILLRACE_AGENT_BIN_DIR",
        default_value = "/opt/millrace/bin"
    )]
    pub agent_bin_dir: String,
}

fn parse_port_range(text: &str) -> Result<Range<u16>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("expected first-last, not {text:?}"))?;
    let first: u16 = first
        .trim()
        .parse()
        .map_err(|e| format!("{first:?}: {e}"))?;
    let last: u16 = last.trim().parse().map_err(|e| format!("{last:?}: {e}"))?;
    if last <= first {
        return Err(format!("{text:?} is an empty range"));
    }
    Ok(first..last)
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The control plane's URL.
    #[arg(
        long,
        env = "MILLRACE_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub endpoint: String,
    /// An admin token.
    #[arg(long, env = "MILLRACE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster.
    Create {
        #[arg(long)]
        name: String,
        /// Number of brokers (a multiple of the number of zones).
        #[arg(long, default_value_t = 3)]
        brokers: i64,
        /// GiB per broker of EBS-style (persistent) storage.
        #[arg(long, conflicts_with = "instance_store")]
        volume_size: Option<i64>,
        /// Use instance (ephemeral) storage instead of persistent volumes.
        #[arg(long)]
        instance_store: bool,
        #[arg(long, default_value = "kafka.m5.large")]
        instance_type: String,
        /// Default: the newest installed version.
        #[arg(long)]
        kafka_version: Option<String>,
        /// Zone labels, comma-separated (default zone-a,zone-b,zone-c).
        #[arg(long, value_delimiter = ',')]
        zones: Vec<String>,
        /// Makes a retried create safe.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List clusters.
    List {
        /// Only names starting with this.
        #[arg(long)]
        name_prefix: Option<String>,
        /// Only clusters in this state (e.g. ACTIVE).
        #[arg(long)]
        state: Option<String>,
    },
    /// Describe a cluster.
    Describe { cluster_id: String },
    /// Delete a cluster.
    Delete { cluster_id: String },
}

/// The server's configuration, resolved from [`ServeArgs`] and the environment.
#[derive(Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub cors_origins: Vec<String>,
    pub request_timeout: Duration,
    /// MILLRACE_ADMIN_TOKEN: an admin token to accept (for automation); never printed.
    pub admin_token: Option<String>,
    /// Where the agent and broker binaries are; None: beside the `millrace` executable.
    pub bin_dir: Option<PathBuf>,
    pub node_ports: Range<u16>,
    pub broker_ready_timeout: Duration,
    pub roll_step_timeout: Duration,
    pub storage_check_interval: Duration,
    pub local_volume_gib_bytes: u64,
    /// Where the KafkaCluster controller watches; None: it does not run.
    pub kafkaclusters: Option<WatchScope>,
    pub platform: PlatformKind,
    /// None: derived from the listen address.
    pub control_plane_url: Option<String>,
    pub kubernetes: KubernetesArgs,
}

impl ServeConfig {
    pub fn from_args(args: ServeArgs) -> Self {
        let database_url = args.database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                args.data_dir.join("millrace.db").display()
            )
        });
        Self {
            data_dir: args.data_dir,
            listen: args.listen,
            database_url,
            cors_origins: args.cors_origins,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            admin_token: std::env::var("MILLRACE_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            bin_dir: args.bin_dir,
            node_ports: args.node_ports,
            broker_ready_timeout: Duration::from_secs(args.broker_ready_timeout_secs),
            roll_step_timeout: Duration::from_secs(args.roll_step_timeout_secs),
            storage_check_interval: Duration::from_secs(args.storage_check_interval_secs),
            local_volume_gib_bytes: args.local_volume_gib_bytes,
            kafkaclusters: args.watch_kafkaclusters.then(|| {
                match args.kafkaclusters_namespace.filter(|n| !n.is_empty()) {
                    Some(namespace) => WatchScope::Namespace(namespace),
                    None => WatchScope::AllNamespaces,
                }
            }),
            platform: args.platform,
            control_plane_url: args.control_plane_url,
            kubernetes: args.kubernetes,
        }
    }
}

/// A URL with its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("cors_origins", &self.cors_origins)
            .field("request_timeout", &self.request_timeout)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "(set, redacted)"),
            )
            .field("bin_dir", &self.bin_dir)
            .field("node_ports", &self.node_ports)
            .field("broker_ready_timeout", &self.broker_ready_timeout)
            .field("roll_step_timeout", &self.roll_step_timeout)
            .field("storage_check_interval", &self.storage_check_interval)
            .field("local_volume_gib_bytes", &self.local_volume_gib_bytes)
            .field("kafkaclusters", &self.kafkaclusters)
            .field("platform", &self.platform)
            .field("control_plane_url", &self.control_plane_url)
            .field("kubernetes", &self.kubernetes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut full = vec!["millrace", "serve"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full)?.command {
            Command::Serve(args) => Ok(args),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn the_local_platform_stays_the_default() {
        let args = serve_args(&[]).unwrap();
        assert_eq!(args.platform, PlatformKind::Local);
        assert!(!args.kubernetes.namespace_per_cluster);
        assert_eq!(args.kubernetes.agent_bin_dir, "/opt/millrace/bin");
    }

    #[test]
    fn kubernetes_flags_parse() {
        let args = serve_args(&[
            "--platform",
            "kubernetes",
            "--kubernetes-namespace",
            "kafka",
            "--agent-image",
            "registry.example/millrace-agent:0.1.0",
            "--storage-class",
            "gp3",
            "--broker-versions",
            "millrace-0.1.0,millrace-0.2.0",
            "--control-plane-url",
            "http://millrace.millrace-system.svc:8080",
        ])
        .unwrap();
        assert_eq!(args.platform, PlatformKind::Kubernetes);
        assert_eq!(
            args.kubernetes.kubernetes_namespace.as_deref(),
            Some("kafka")
        );
        assert_eq!(args.kubernetes.storage_class.as_deref(), Some("gp3"));
        assert_eq!(
            args.kubernetes.broker_versions,
            ["millrace-0.1.0", "millrace-0.2.0"]
        );
        assert!(
            serve_args(&["--kubernetes-namespace", "kafka", "--namespace-per-cluster"]).is_err()
        );
        assert!(serve_args(&["--platform", "nomad"]).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://millrace:s3cret@db:5432/millrace"),
            "postgres://millrace:***@db:5432/millrace"
        );
        assert_eq!(
            redact_url("postgres://db/millrace"),
            "postgres://db/millrace"
        );
        assert_eq!(
            redact_url("sqlite://./x.db?mode=rwc"),
            "sqlite://./x.db?mode=rwc"
        );
    }

    #[test]
    fn admin_token_never_shows_in_debug_output() {
        let config = ServeConfig {
            data_dir: "d".into(),
            listen: "127.0.0.1:1".parse().unwrap(),
            database_url: "postgres://u:pw@h/db".into(),
            cors_origins: vec![],
            request_timeout: Duration::from_secs(1),
            admin_token: Some("mr_topsecret".into()),
            bin_dir: None,
            node_ports: 20_000..32_000,
            broker_ready_timeout: Duration::from_secs(120),
            roll_step_timeout: Duration::from_secs(300),
            storage_check_interval: Duration::from_secs(60),
            local_volume_gib_bytes: 1 << 30,
            kafkaclusters: None,
            platform: PlatformKind::Local,
            control_plane_url: None,
            kubernetes: KubernetesArgs::default(),
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("pw@"),
            "{shown}"
        );
    }

    #[test]
    fn kafkacluster_controller_is_off_unless_asked() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("valid flags");
            match cli.command {
                Command::Serve(serve) => ServeConfig::from_args(serve).kafkaclusters,
                other => panic!("not serve: {other:?}"),
            }
        };
        assert_eq!(parse(&["millrace", "serve"]), None);
        assert_eq!(
            parse(&["millrace", "serve", "--watch-kafkaclusters"]),
            Some(WatchScope::AllNamespaces)
        );
        assert_eq!(
            parse(&[
                "millrace",
                "serve",
                "--watch-kafkaclusters",
                "--kafkaclusters-namespace",
                "kafka"
            ]),
            Some(WatchScope::Namespace("kafka".into()))
        );
        assert!(
            Cli::try_parse_from(["millrace", "serve", "--kafkaclusters-namespace", "x"]).is_err()
        );
    }
}
