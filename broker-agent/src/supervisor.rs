//! Owns the broker process: starts it, restarts it after a crash with backoff, stops it
//! gracefully (SIGTERM, controlled shutdown, SIGKILL after a timeout), and switches binaries for
//! an in-place upgrade. Every other part talks to it through [`Command`]s.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::process;
use crate::status::{BrokerState, NodeStatus};

/// A broker binary and the version it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerBinary {
    pub path: PathBuf,
    pub version: String,
}

pub enum Command {
    /// Stop the broker gracefully and start it again, with another binary if given. Starts a
    /// stopped broker.
    Restart {
        binary: Option<BrokerBinary>,
        done: oneshot::Sender<()>,
    },
    /// Stop the broker gracefully and keep it stopped.
    Stop { done: oneshot::Sender<()> },
    /// Stop the broker gracefully and end supervision (the agent is exiting).
    Shutdown { done: oneshot::Sender<()> },
}

pub struct Supervisor {
    config: Arc<AgentConfig>,
    binary: BrokerBinary,
    status: watch::Sender<NodeStatus>,
    http: reqwest::Client,
    backoff: Backoff,
    /// Each binary's `--help`, which says which flags it accepts (older versions refuse to
    /// start with a flag they do not know).
    help: Option<(PathBuf, String)>,
}

/// What ended one run of the broker.
enum RunEnd {
    Stopped,
    Restart,
    Shutdown(oneshot::Sender<()>),
}

impl Supervisor {
    pub fn new(
        config: Arc<AgentConfig>,
        binary: BrokerBinary,
        status: watch::Sender<NodeStatus>,
        http: reqwest::Client,
    ) -> Supervisor {
        Supervisor {
            config,
            binary,
            status,
            http,
            backoff: Backoff::default(),
            help: None,
        }
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        process::reap_leftover_broker(
            &self.config.broker_pid_file(),
            &self.config.broker_data_dir(),
            self.config.stop_timeout(),
        )
        .await;
        loop {
            let end = match self.start() {
                Ok(child) => self.supervise(child, &mut commands).await,
                Err(error) => {
                    let delay = self.backoff.delay_after_exit(Duration::ZERO);
                    error!(error = %format!("{error:#}"), ?delay, "cannot start the broker");
                    let message =
                        format!("cannot start the broker: {error:#}; retrying in {delay:?}");
                    self.set_state(BrokerState::Crashed, None, message);
                    self.wait_before_restart(delay, &mut commands).await
                }
            };
            match end {
                RunEnd::Restart => {}
                RunEnd::Stopped => {
                    if let Some(done) = self.wait_while_stopped(&mut commands).await {
                        return self.finish(done);
                    }
                }
                RunEnd::Shutdown(done) => return self.finish(done),
            }
        }
    }

    fn finish(&self, done: oneshot::Sender<()>) {
        self.set_state(BrokerState::Stopped, None, "agent shut down".into());
        let _ = done.send(());
    }

    /// Runs one broker process until it exits or a command ends it.
    async fn supervise(
        &mut self,
        mut child: Child,
        commands: &mut mpsc::Receiver<Command>,
    ) -> RunEnd {
        let started = Instant::now();
        let command = tokio::select! {
            exit = child.wait() => {
                let ran_for = started.elapsed();
                let description = describe_exit(exit);
                let _ = std::fs::remove_file(self.config.broker_pid_file());
                let delay = self.backoff.delay_after_exit(ran_for);
                warn!(%description, ?ran_for, ?delay, "broker exited unexpectedly; restarting after a delay");
                self.status.send_modify(|status| {
                    status.state = BrokerState::Crashed;
                    status.broker_pid = None;
                    status.message =
                        format!("broker {description} after {ran_for:.1?}; restarting in {delay:?}");
                });
                return self.wait_before_restart(delay, commands).await;
            }
            command = commands.recv() => command,
        };
        // Whatever was asked, the broker stops first, after moving its leaderships away.
        if command.is_some() {
            self.drain_before_stop().await;
        }
        self.stop(&mut child).await;
        match command {
            // Every sender is gone: nothing can ask for anything any more.
            None => RunEnd::Stopped,
            Some(Command::Restart { binary, done }) => {
                if let Some(binary) = binary {
                    info!(from = %self.binary.version, to = %binary.version, "switching broker binary");
                    self.binary = binary;
                }
                let _ = done.send(());
                RunEnd::Restart
            }
            Some(Command::Stop { done }) => {
                self.set_state(BrokerState::Stopped, None, "stopped on request".into());
                let _ = done.send(());
                RunEnd::Stopped
            }
            Some(Command::Shutdown { done }) => RunEnd::Shutdown(done),
        }
    }

    /// Waits out a restart delay, still obeying commands.
    async fn wait_before_restart(
        &mut self,
        delay: Duration,
        commands: &mut mpsc::Receiver<Command>,
    ) -> RunEnd {
        let command = tokio::select! {
            _ = tokio::time::sleep(delay) => {
                self.status.send_modify(|status| status.restarts += 1);
                return RunEnd::Restart;
            }
            command = commands.recv() => command,
        };
        match command {
            None => RunEnd::Stopped,
            Some(Command::Restart { binary, done }) => {
                if let Some(binary) = binary {
                    self.binary = binary;
                }
                let _ = done.send(());
                RunEnd::Restart
            }
            Some(Command::Stop { done }) => {
                self.set_state(BrokerState::Stopped, None, "stopped on request".into());
                let _ = done.send(());
                RunEnd::Stopped
            }
            Some(Command::Shutdown { done }) => RunEnd::Shutdown(done),
        }
    }

    /// Stopped on request: waits for a restart (`Some` means shut down).
    async fn wait_while_stopped(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Option<oneshot::Sender<()>> {
        loop {
            match commands.recv().await {
                None => std::future::pending::<()>().await,
                Some(Command::Restart { binary, done }) => {
                    if let Some(binary) = binary {
                        self.binary = binary;
                    }
                    let _ = done.send(());
                    return None;
                }
                Some(Command::Stop { done }) => {
                    let _ = done.send(());
                }
                Some(Command::Shutdown { done }) => return Some(done),
            }
        }
    }

    fn start(&mut self) -> anyhow::Result<Child> {
        let args = self.broker_args()?;
        std::fs::create_dir_all(self.config.broker_data_dir())?;
        let child = process::spawn_broker(&self.binary.path, &args)
            .map_err(|error| anyhow::anyhow!("starting {}: {error}", self.binary.path.display()))?;
        let pid = child.id();
        if let Some(pid) = pid {
            if let Err(error) = std::fs::write(self.config.broker_pid_file(), format!("{pid}\n")) {
                warn!(%error, "cannot record the broker's pid");
            }
        }
        info!(pid, binary = %self.binary.path.display(), version = %self.binary.version, "broker started");
        let version = self.binary.version.clone();
        let path = self.binary.path.display().to_string();
        self.status.send_modify(|status| {
            status.state = BrokerState::Starting;
            status.broker_pid = pid;
            status.version = version;
            status.broker_binary = path;
            status.drain = None;
        });
        Ok(child)
    }

    /// The broker's command line, from the agent's configuration.
    fn broker_args(&mut self) -> anyhow::Result<Vec<String>> {
        let config = self.config.clone();
        let mut args = vec![
            "--node-id".to_string(),
            config.node_id.to_string(),
            "--cluster-id".into(),
            config.cluster_id.clone(),
            "--data-dir".into(),
            config.broker_data_dir().to_string_lossy().into_owned(),
            "--listen".into(),
            config.broker_listen.to_string(),
            "--admin-listen".into(),
            config.broker_admin_listen.to_string(),
            "--log-format".into(),
            config.log_format.clone(),
        ];
        if let Some(advertised) = &config.advertised_listener {
            args.extend(["--advertised-listener".into(), advertised.clone()]);
        }
        if let Some(rack) = &config.rack {
            args.extend(["--rack".into(), rack.clone()]);
        }
        let quorum: Vec<(&str, &String)> = [
            ("--voters", config.voters.as_ref()),
            ("--controller-listen", config.controller_listen.as_ref()),
            (
                "--controller-advertised",
                config.controller_advertised.as_ref(),
            ),
        ]
        .into_iter()
        .filter_map(|(flag, value)| value.map(|value| (flag, value)))
        .collect();
        if !quorum.is_empty() {
            // Brokers gain `--voters` with replication; `--controller-advertised` came later.
            if self.broker_accepts("--voters") {
                for (flag, value) in quorum {
                    if self.broker_accepts(flag) {
                        args.extend([flag.to_string(), value.clone()]);
                    } else {
                        warn!(version = %self.binary.version, flag, "this broker version does not take the flag; not passed");
                    }
                }
            } else {
                warn!(
                    version = %self.binary.version,
                    "this broker version has no metadata quorum flags; --voters and --controller-listen are not passed"
                );
            }
        }
        args.extend(self.config.broker_args.iter().cloned());
        Ok(args)
    }

    /// Whether the broker binary takes `flag` (its `--help` lists it); older binaries would
    /// refuse to start with a flag they do not know.
    fn broker_accepts(&mut self, flag: &str) -> bool {
        if self
            .help
            .as_ref()
            .is_none_or(|(path, _)| *path != self.binary.path)
        {
            let help = std::process::Command::new(&self.binary.path)
                .arg("--help")
                .env_clear()
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
                .unwrap_or_default();
            self.help = Some((self.binary.path.clone(), help));
        }
        self.help
            .as_ref()
            .is_some_and(|(_, help)| help.split_whitespace().any(|word| word == flag))
    }

    /// Asks the broker to move its leaderships away before it is stopped; brokers without
    /// replication have no drain endpoint, and stopping them needs none.
    async fn drain_before_stop(&self) {
        match crate::drain::request_drain(&self.http, &self.config).await {
            Ok(drain) if drain.supported => info!(message = %drain.message, "drain before stop"),
            Ok(_) => {}
            Err(error) => warn!(%error, "could not ask the broker to drain before stopping"),
        }
    }

    /// SIGTERM, up to the stop timeout for the controlled shutdown, then SIGKILL.
    async fn stop(&self, child: &mut Child) {
        let Some(pid) = child.id() else {
            return;
        };
        self.status
            .send_modify(|status| status.state = BrokerState::Stopping);
        info!(pid, "stopping the broker (SIGTERM)");
        if let Err(error) = process::signal(pid, libc::SIGTERM) {
            warn!(%error, pid, "cannot send SIGTERM to the broker");
        }
        let timeout = self.config.stop_timeout();
        let description = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(exit) => describe_exit(exit),
            Err(_) => {
                warn!(pid, ?timeout, "the broker did not stop in time; killing it");
                let _ = child.start_kill();
                format!(
                    "{} (killed after {timeout:?})",
                    describe_exit(child.wait().await)
                )
            }
        };
        info!(pid, %description, "broker stopped");
        let _ = std::fs::remove_file(self.config.broker_pid_file());
        self.status.send_modify(|status| {
            status.broker_pid = None;
            status.message = format!("broker {description}");
        });
    }

    fn set_state(&self, state: BrokerState, pid: Option<u32>, message: String) {
        self.status.send_modify(|status| {
            status.state = state;
            status.broker_pid = pid;
            status.message = message;
        });
    }
}

fn describe_exit(exit: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match exit {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => format!("exited ({status})"),
        },
        Err(error) => format!("could not be waited for ({error})"),
    }
}
