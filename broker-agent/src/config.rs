//! The agent's configuration: one typed struct, from flags and `MILLRACE_*` environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

/// Name of the broker executable inside a bin dir.
pub const BROKER_EXECUTABLE: &str = "millrace-broker";

/// Configuration of one `millrace-agent` process (one broker node).
#[derive(Clone, Parser)]
#[command(
    name = "millrace-agent",
    version,
    about = "Millrace's broker-agent: supervises one millrace-broker on this node"
)]
pub struct AgentConfig {
    /// The broker's id in its cluster (Kafka's node.id).
    #[arg(long, env = "MILLRACE_NODE_ID")]
    pub node_id: i32,

    /// The cluster this node belongs to (the control plane's cluster id).
    #[arg(long, env = "MILLRACE_CLUSTER_ID")]
    pub cluster_id: String,

    /// The node's volume. The broker keeps its data in the `broker` subdirectory.
    #[arg(long, env = "MILLRACE_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Path of the broker binary to run. Without it, the binary is looked up in --bin-dir.
    #[arg(long, env = "MILLRACE_BROKER_BIN")]
    pub broker_bin: Option<PathBuf>,

    /// Directory of installed brokers: `<bin-dir>/<version>/millrace-broker`, or
    /// `<bin-dir>/millrace-broker` when that one reports the requested version.
    #[arg(long, env = "MILLRACE_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// The broker version to run (e.g. `millrace-0.1.0`), looked up in --bin-dir.
    #[arg(long, env = "MILLRACE_BROKER_VERSION")]
    pub broker_version: Option<String>,

    /// Address the broker's Kafka listener binds to.
    #[arg(long, env = "MILLRACE_BROKER_LISTEN", default_value = "127.0.0.1:9092")]
    pub broker_listen: SocketAddr,

    /// Address of the broker's admin endpoint (/health, /ready, /metrics).
    #[arg(
        long,
        env = "MILLRACE_BROKER_ADMIN_LISTEN",
        default_value = "127.0.0.1:9644"
    )]
    pub broker_admin_listen: SocketAddr,

    /// host:port Kafka clients are told to connect to.
    #[arg(long, env = "MILLRACE_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,

    /// Rack (zone) of this broker.
    #[arg(long, env = "MILLRACE_RACK")]
    pub rack: Option<String>,

    /// Metadata quorum voters (`id@host:port,...`), passed to brokers that support them.
    #[arg(long, env = "MILLRACE_VOTERS")]
    pub voters: Option<String>,

    /// Address of the broker's controller (quorum) listener, passed to brokers that support it.
    #[arg(long, env = "MILLRACE_CONTROLLER_LISTEN")]
    pub controller_listen: Option<String>,

    /// Where the quorum reaches the broker's controller listener, when that listens on a
    /// wildcard address (an observer on Kubernetes); passed to brokers that support it.
    #[arg(long, env = "MILLRACE_CONTROLLER_ADVERTISED")]
    pub controller_advertised: Option<String>,

    /// Extra argument for the broker (repeatable), e.g. `--broker-arg=--auto-create-topics`.
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    pub broker_args: Vec<String>,

    /// Address of the agent's own HTTP API (/health, /status, /drain, /restart, /stop).
    #[arg(long, env = "MILLRACE_AGENT_LISTEN", default_value = "127.0.0.1:9700")]
    pub agent_listen: SocketAddr,

    /// Base URL of the control plane for heartbeats. Without it the agent runs standalone.
    #[arg(long, env = "MILLRACE_CONTROL_PLANE_URL")]
    pub control_plane_url: Option<String>,

    /// Bearer token of this node on the control plane's internal API.
    #[arg(long, env = "MILLRACE_AGENT_TOKEN")]
    pub agent_token: Option<String>,

    /// Time between heartbeats.
    #[arg(long, env = "MILLRACE_HEARTBEAT_INTERVAL_MS", default_value_t = 5_000)]
    pub heartbeat_interval_ms: u64,

    /// Time between polls of the broker's /ready and /metrics.
    #[arg(long, env = "MILLRACE_PROBE_INTERVAL_MS", default_value_t = 1_000)]
    pub probe_interval_ms: u64,

    /// How long a stopping broker may take for its controlled shutdown before SIGKILL.
    #[arg(long, env = "MILLRACE_STOP_TIMEOUT_MS", default_value_t = 30_000)]
    pub stop_timeout_ms: u64,

    /// Log output format of the agent and its broker: `text` or `json`.
    #[arg(long, env = "MILLRACE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl AgentConfig {
    /// Refuses settings the agent cannot run with, naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.node_id < 0 {
            anyhow::bail!("--node-id must not be negative");
        }
        if self.cluster_id.trim().is_empty() {
            anyhow::bail!("--cluster-id must not be empty");
        }
        if self.broker_bin.is_none() && self.bin_dir.is_none() {
            anyhow::bail!("give --broker-bin, or --bin-dir (with --broker-version)");
        }
        if self.broker_bin.is_none() && self.broker_version.is_some() && self.bin_dir.is_none() {
            anyhow::bail!("--broker-version needs --bin-dir");
        }
        match (&self.control_plane_url, &self.agent_token) {
            (Some(url), Some(_)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    anyhow::bail!(
                        "--control-plane-url {url:?} must start with http:// or https://"
                    );
                }
            }
            (Some(_), None) => anyhow::bail!("--control-plane-url needs --agent-token"),
            (None, Some(_)) => anyhow::bail!("--agent-token needs --control-plane-url"),
            (None, None) => {}
        }
        if self.heartbeat_interval_ms == 0 || self.probe_interval_ms == 0 {
            anyhow::bail!("--heartbeat-interval-ms and --probe-interval-ms must be positive");
        }
        if self.log_format != "text" && self.log_format != "json" {
            anyhow::bail!("--log-format must be text or json");
        }
        Ok(())
    }

    /// The broker's own data directory, inside the node's volume.
    pub fn broker_data_dir(&self) -> PathBuf {
        self.data_dir.join("broker")
    }

    /// Where the agent records the pid of the broker it runs, to find a broker left behind by
    /// a previous agent of this node.
    pub fn broker_pid_file(&self) -> PathBuf {
        self.data_dir.join("broker.pid")
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }

    pub fn stop_timeout(&self) -> Duration {
        Duration::from_millis(self.stop_timeout_ms)
    }

    /// Base URL of the broker's admin endpoint, reachable from this host.
    pub fn broker_admin_url(&self) -> String {
        format!("http://{}", reachable(self.broker_admin_listen))
    }
}

/// A wildcard listen address is reached through the loopback address.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    }
}

/// Printed at start-up: every field, the agent token redacted.
impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("node_id", &self.node_id)
            .field("cluster_id", &self.cluster_id)
            .field("data_dir", &self.data_dir)
            .field("broker_bin", &self.broker_bin)
            .field("bin_dir", &self.bin_dir)
            .field("broker_version", &self.broker_version)
            .field("broker_listen", &self.broker_listen)
            .field("broker_admin_listen", &self.broker_admin_listen)
            .field("advertised_listener", &self.advertised_listener)
            .field("rack", &self.rack)
            .field("voters", &self.voters)
            .field("controller_listen", &self.controller_listen)
            .field("controller_advertised", &self.controller_advertised)
            .field("broker_args", &self.broker_args)
            .field("agent_listen", &self.agent_listen)
            .field("control_plane_url", &self.control_plane_url)
            .field(
                "agent_token",
                &self.agent_token.as_ref().map(|_| "<redacted>"),
            )
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("probe_interval_ms", &self.probe_interval_ms)
            .field("stop_timeout_ms", &self.stop_timeout_ms)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// Finds the broker binary of `version` in `bin_dir`: `<bin-dir>/<version>/millrace-broker`
/// first, then `<bin-dir>/millrace-broker` if that binary reports `version`.
pub fn find_broker_binary(bin_dir: &Path, version: Option<&str>) -> anyhow::Result<PathBuf> {
    let flat = bin_dir.join(BROKER_EXECUTABLE);
    let Some(version) = version else {
        anyhow::ensure!(
            flat.is_file(),
            "no {BROKER_EXECUTABLE} in --bin-dir {}",
            bin_dir.display()
        );
        return Ok(flat);
    };
    anyhow::ensure!(
        !version.is_empty() && !version.contains(['/', '\\']) && version != ".." && version != ".",
        "broker version {version:?} is not a valid version name"
    );
    let versioned = bin_dir.join(version).join(BROKER_EXECUTABLE);
    if versioned.is_file() {
        return Ok(versioned);
    }
    if flat.is_file() && broker_version_of(&flat)? == version {
        return Ok(flat);
    }
    anyhow::bail!(
        "broker version {version:?} is not installed in {} (neither {} nor a {} of that version)",
        bin_dir.display(),
        versioned.display(),
        flat.display()
    )
}

/// The version a broker binary reports: `millrace-broker 0.1.0` becomes `millrace-0.1.0`.
pub fn broker_version_of(binary: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new(binary)
        .arg("--version")
        .env_clear()
        .output()
        .map_err(|e| anyhow::anyhow!("running {} --version: {e}", binary.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} --version failed ({})",
        binary.display(),
        output.status
    );
    parse_version_output(&String::from_utf8_lossy(&output.stdout)).ok_or_else(|| {
        anyhow::anyhow!(
            "{} --version printed no version: {:?}",
            binary.display(),
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `millrace-broker 0.1.0\n` -> `millrace-0.1.0`.
pub fn parse_version_output(output: &str) -> Option<String> {
    let semver = output.split_whitespace().nth(1)?;
    semver
        .chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| format!("millrace-{semver}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> AgentConfig {
        let mut full = vec!["millrace-agent"];
        full.extend_from_slice(args);
        AgentConfig::try_parse_from(full).expect("parsing the flags")
    }

    const MINIMAL: [&str; 8] = [
        "--node-id",
        "2",
        "--cluster-id",
        "c1",
        "--data-dir",
        "/vol",
        "--broker-bin",
        "/bin/millrace-broker",
    ];

    #[test]
    fn minimal_flags_run_standalone() {
        let config = parse(&MINIMAL);
        config.validate().unwrap();
        assert_eq!(config.broker_data_dir(), PathBuf::from("/vol/broker"));
        assert_eq!(config.broker_admin_url(), "http://127.0.0.1:9644");
        assert!(config.control_plane_url.is_none());
    }

    #[test]
    fn broker_args_repeat_and_keep_their_dashes() {
        let mut args = MINIMAL.to_vec();
        args.extend([
            "--broker-arg=--auto-create-topics",
            "--broker-arg",
            "--default-partitions=3",
        ]);
        let config = parse(&args);
        assert_eq!(
            config.broker_args,
            ["--auto-create-topics", "--default-partitions=3"]
        );
    }

    #[test]
    fn heartbeats_need_url_and_token_together() {
        let mut args = MINIMAL.to_vec();
        args.extend(["--control-plane-url", "http://cp:8080"]);
        assert!(parse(&args).validate().is_err());
        args.extend(["--agent-token", "s3cret"]);
        parse(&args).validate().unwrap();
        let mut bad = MINIMAL.to_vec();
        bad.extend(["--control-plane-url", "cp:8080", "--agent-token", "t"]);
        assert!(parse(&bad).validate().is_err());
    }

    #[test]
    fn token_is_redacted_when_printed() {
        let mut args = MINIMAL.to_vec();
        args.extend([
            "--control-plane-url",
            "http://cp:8080",
            "--agent-token",
            "s3cret-token",
        ]);
        let printed = format!("{:?}", parse(&args));
        assert!(!printed.contains("s3cret-token"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn a_binary_or_a_bin_dir_is_required() {
        let config = parse(&["--node-id", "1", "--cluster-id", "c", "--data-dir", "/v"]);
        assert!(config.validate().is_err());
        let config = parse(&[
            "--node-id",
            "1",
            "--cluster-id",
            "c",
            "--data-dir",
            "/v",
            "--bin-dir",
            "/opt/millrace",
            "--broker-version",
            "millrace-0.1.0",
        ]);
        config.validate().unwrap();
    }

    #[test]
    fn wildcard_admin_address_is_reached_on_loopback() {
        let mut args = MINIMAL.to_vec();
        args.extend(["--broker-admin-listen", "0.0.0.0:19644"]);
        assert_eq!(parse(&args).broker_admin_url(), "http://127.0.0.1:19644");
    }

    #[test]
    fn version_output_is_named_millrace_semver() {
        assert_eq!(
            parse_version_output("millrace-broker 0.1.0\n").as_deref(),
            Some("millrace-0.1.0")
        );
        assert_eq!(parse_version_output("millrace-broker\n"), None);
        assert_eq!(parse_version_output("millrace-broker dev\n"), None);
    }

    #[test]
    fn versions_are_found_in_the_bin_dir() {
        let dir = tempfile::tempdir().unwrap();
        let versioned = dir.path().join("millrace-9.9.9");
        std::fs::create_dir(&versioned).unwrap();
        std::fs::write(versioned.join(BROKER_EXECUTABLE), "").unwrap();
        assert_eq!(
            find_broker_binary(dir.path(), Some("millrace-9.9.9")).unwrap(),
            versioned.join(BROKER_EXECUTABLE)
        );
        assert!(find_broker_binary(dir.path(), Some("millrace-1.0.0")).is_err());
        assert!(find_broker_binary(dir.path(), Some("../etc")).is_err());
        assert!(find_broker_binary(dir.path(), None).is_err());
    }
}
