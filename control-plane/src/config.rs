//! The `millrace` command line: every flag also reads a `MILLRACE_*` environment variable.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
    /// Where the KafkaCluster controller watches; None: it does not run.
    pub kafkaclusters: Option<WatchScope>,
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
            kafkaclusters: args.watch_kafkaclusters.then(|| {
                match args.kafkaclusters_namespace.filter(|n| !n.is_empty()) {
                    Some(namespace) => WatchScope::Namespace(namespace),
                    None => WatchScope::AllNamespaces,
                }
            }),
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
            .field("kafkaclusters", &self.kafkaclusters)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            kafkaclusters: None,
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
