//! The broker as an operating-system process: how it is started (tied to the agent's life), how
//! signals reach it, and how a broker left behind by a previous agent is recognised.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Starts the broker so that it receives SIGTERM when the agent dies, even by SIGKILL: the
/// broker must not outlive its supervisor (a new agent would start a second broker on the same
/// data dir).
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the process: the agent runs
/// a current-thread runtime, so the forking thread is the main thread, which lives as long as
/// the agent.
pub fn spawn_broker(binary: &Path, args: &[String]) -> io::Result<Child> {
    let mut command = Command::new(binary);
    command.args(args).stdin(Stdio::null()).kill_on_drop(false);
    // The broker is configured by flags only: the agent's own MILLRACE_* variables share names
    // with the broker's (MILLRACE_DATA_DIR means the volume here, the log dir there) and carry
    // the agent token.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MILLRACE_") {
            command.env_remove(name);
        }
    }
    let agent_pid = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The agent may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() != agent_pid {
                return Err(io::Error::other(
                    "the agent exited while starting the broker",
                ));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(error)
    }
}

/// The command line of a live (not zombie) process.
pub fn live_cmdline(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name, which may itself contain ')'.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// Whether `cmdline` is a broker serving `data_dir`.
pub fn is_broker_of(cmdline: &[String], data_dir: &Path) -> bool {
    let Some(program) = cmdline.first() else {
        return false;
    };
    let data_dir = data_dir.to_string_lossy();
    program.ends_with(crate::config::BROKER_EXECUTABLE)
        && cmdline
            .windows(2)
            .any(|pair| pair[0] == "--data-dir" && pair[1] == data_dir)
}

/// A broker of this node left running by a previous agent (whose death sent it SIGTERM) is
/// given the time of a controlled shutdown before the new one starts on the same data dir.
pub async fn reap_leftover_broker(pid_file: &PathBuf, data_dir: &Path, timeout: Duration) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
    else {
        return;
    };
    let is_ours = |pid| live_cmdline(pid).is_some_and(|cmd| is_broker_of(&cmd, data_dir));
    if !is_ours(pid) {
        return;
    }
    tracing::warn!(
        pid,
        "a broker of this node is still running; stopping it first"
    );
    let _ = signal(pid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + timeout;
    while is_ours(pid) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(pid, "the leftover broker ignored SIGTERM; killing it");
            let _ = signal(pid, libc::SIGKILL);
            deadline_wait(pid, is_ours).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deadline_wait(pid: u32, alive: impl Fn(u32) -> bool) {
    for _ in 0..50 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_broker_of_a_data_dir() {
        let cmd: Vec<String> = [
            "/opt/bin/millrace-broker",
            "--node-id",
            "1",
            "--data-dir",
            "/vol/broker",
        ]
        .map(String::from)
        .to_vec();
        assert!(is_broker_of(&cmd, Path::new("/vol/broker")));
        assert!(!is_broker_of(&cmd, Path::new("/other/broker")));
        let mut other = cmd.clone();
        other[0] = "/usr/bin/sleep".into();
        assert!(!is_broker_of(&other, Path::new("/vol/broker")));
    }

    #[test]
    fn sees_its_own_command_line() {
        let me = live_cmdline(std::process::id()).expect("this process is alive");
        assert!(!me.is_empty());
        assert!(live_cmdline(u32::MAX - 1).is_none());
    }
}
