//! broker-agent processes on this machine: started in a session of their own so they outlive
//! the control plane (static stability), recognised again through /proc after a control-plane
//! restart, and stopped by signals.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use uuid::Uuid;

use crate::platform::{PlatformError, Result};

pub const AGENT_EXECUTABLE: &str = "millrace-agent";

/// How to start one agent.
pub struct AgentLaunch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Secrets go here rather than on the command line, which any local user can read.
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
    pub working_dir: PathBuf,
}

/// Starts the agent in a new session (setsid): no controlling terminal, its own process group,
/// so a Ctrl-C or the end of the control plane's session does not reach it, and the whole node
/// (agent and broker) can be signalled as one group. Output goes to the node's log file.
///
/// Returns the pid. The child is reaped by a background task while the control plane runs;
/// after that, init adopts it.
pub fn spawn_agent(launch: &AgentLaunch) -> Result<u32> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log_path)
        .map_err(PlatformError::io(format!(
            "opening {}",
            launch.log_path.display()
        )))?;
    let stderr = log
        .try_clone()
        .map_err(PlatformError::io("duplicating the log handle"))?;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .current_dir(&launch.working_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .kill_on_drop(false);
    // The control plane's own MILLRACE_* settings (its data dir, its tokens) are not the
    // agent's: it is configured by flags and the variables given here only.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MILLRACE_") {
            command.env_remove(name);
        }
    }
    command.envs(launch.env.iter().map(|(k, v)| (k, v)));
    // SAFETY: setsid is async-signal-safe; the closure runs in the child between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(PlatformError::io(format!(
        "starting {}",
        launch.program.display()
    )))?;
    let pid = child
        .id()
        .ok_or_else(|| PlatformError::Process("the agent exited at once".into()))?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(pid)
}

/// Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ... (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may itself contain ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether the process exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|fields| fields.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// The process's start time (clock ticks since boot): with the pid, an identity that survives
/// pid reuse.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn process_group(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

fn flag_value<'a>(cmdline: &'a [String], flag: &str) -> Option<&'a str> {
    cmdline
        .windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1].as_str())
}

/// The broker id of an agent of `cluster_id`, if `pid` is one.
fn agent_of_cluster(pid: u32, cluster_id: Uuid) -> Option<i32> {
    let cmdline = cmdline(pid)?;
    let program = Path::new(cmdline.first()?).file_name()?;
    if program != AGENT_EXECUTABLE {
        return None;
    }
    if flag_value(&cmdline, "--cluster-id")? != cluster_id.to_string() {
        return None;
    }
    flag_value(&cmdline, "--node-id")?.parse().ok()
}

/// Whether `pid` is, right now, the live agent of this node started at `started` (if known).
pub fn is_node_agent(pid: u32, started: Option<u64>, cluster_id: Uuid, broker_id: i32) -> bool {
    is_alive(pid)
        && started.is_none_or(|ticks| start_ticks(pid) == Some(ticks))
        && agent_of_cluster(pid, cluster_id) == Some(broker_id)
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live agents of the cluster (or of one broker), recorded or not: finds an agent whose start
/// was interrupted before its pid was written down.
pub fn find_agents(cluster_id: Uuid, broker_id: Option<i32>) -> Vec<(u32, i32)> {
    all_pids()
        .into_iter()
        .filter(|&pid| is_alive(pid))
        .filter_map(|pid| Some((pid, agent_of_cluster(pid, cluster_id)?)))
        .filter(|(_, id)| broker_id.is_none_or(|wanted| wanted == *id))
        .collect()
}

/// Live processes of a process group (an agent and the broker it started).
pub fn group_members(pgid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| is_alive(pid) && process_group(pid) == Some(pgid))
        .collect()
}

/// Sends `signal` to a process (or, with a negative id, a process group); gone is fine.
pub fn signal(target: i32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(target, signal);
    }
}

/// Polls until `done` or the timeout; whether `done` became true.
pub async fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops a node's agent: SIGTERM (the agent stops its broker with a controlled shutdown and
/// exits), then, after `timeout`, SIGKILL to the agent's whole process group. Returns when no
/// process of the group is left.
pub async fn stop_agent(pid: u32, timeout: Duration) -> Result<()> {
    signal(pid as i32, libc::SIGTERM);
    if !wait_until(timeout, || !is_alive(pid)).await {
        tracing::warn!(
            pid,
            ?timeout,
            "the agent did not stop in time; killing its node"
        );
    }
    // The session leader's pid is its group id. A broker whose agent died on SIGKILL gets
    // SIGTERM through PR_SET_PDEATHSIG; anything still there now is killed.
    if !wait_until(Duration::from_secs(2), || group_members(pid).is_empty()).await {
        signal(-(pid as i32), libc::SIGKILL);
    }
    if wait_until(Duration::from_secs(10), || {
        !is_alive(pid) && group_members(pid).is_empty()
    })
    .await
    {
        Ok(())
    } else {
        Err(PlatformError::Process(format!(
            "processes of the node (group {pid}) survived SIGKILL: {:?}",
            group_members(pid)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(start_ticks(me).is_some());
        assert!(!is_alive(u32::MAX - 1));
        assert_eq!(agent_of_cluster(me, Uuid::new_v4()), None);
    }

    #[test]
    fn flag_values_are_read_from_the_command_line() {
        let cmdline: Vec<String> = ["/x/millrace-agent", "--node-id", "3", "--cluster-id", "c"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag_value(&cmdline, "--node-id"), Some("3"));
        assert_eq!(flag_value(&cmdline, "--rack"), None);
    }
}
