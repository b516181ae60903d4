//! The quorum's configuration: `--voters 1@127.0.0.1:9093,2@127.0.0.1:9193` and friends.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One member of the configured voter set: a broker id and its controller (quorum) address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    /// `host:port`, as given (a name or an IP literal, brackets kept for IPv6).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Voter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.id, self.host, self.port)
    }
}

/// Parses `id@host:port[,id@host:port...]`. Ids are non-negative and unique, ports non-zero;
/// an IPv6 host is written in brackets (`1@[::1]:9093`).
pub fn parse_voters(s: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("empty voter in {s:?}: expected id@host:port"));
        }
        let (id, address) = item
            .split_once('@')
            .ok_or_else(|| format!("voter {item:?}: expected id@host:port"))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("voter {item:?}: the id must be a non-negative integer"))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("voter {item:?}: expected id@host:port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("voter {item:?}: the port must be 1..=65535"))?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty() || (host.contains(':') && !bracketed) || host.contains('@') {
            return Err(format!("voter {item:?}: invalid host {host:?}"));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(format!("voter id {id} is listed twice"));
        }
        voters.push(Voter {
            id,
            host: host.to_string(),
            port,
        });
    }
    Ok(voters)
}

/// Everything the quorum needs; the broker builds it from its flags.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This broker's id. A broker not among the voters joins as an observer (a Raft learner).
    pub node_id: i32,
    pub voters: Vec<Voter>,
    /// Where this node's quorum RPC server listens (`--controller-listen`).
    pub listen: SocketAddr,
    /// The address the other nodes reach this one's quorum listener at, for a node that is
    /// not among the voters (a voter is reached at its entry in the voters): needed when it
    /// listens on a wildcard address (`--controller-advertised`). Defaults to `listen`.
    pub advertised: Option<String>,
    /// `<data-dir>/quorum/`: Raft log, vote, snapshot and the directory id.
    pub dir: PathBuf,
    /// A broker silent for longer is fenced.
    pub broker_session_timeout_ms: u64,
    /// Raft election timeout range (min, max).
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_interval_ms: u64,
    /// Upper bound for one client request (submit, create_topic, ...) including forwarding
    /// and waiting for a leader; every RPC has its own shorter time-out too.
    pub request_timeout_ms: u64,
    /// Take a snapshot (and purge the log before it) every this many applied entries.
    pub snapshot_every_entries: u64,
}

impl QuorumConfig {
    /// The defaults: session 9 s (the broker passes its own, shorter), elections 0.6-1.2 s,
    /// Raft heartbeats every 150 ms, requests 10 s, a snapshot every 1000 entries.
    pub fn new(node_id: i32, voters: Vec<Voter>, listen: SocketAddr, dir: PathBuf) -> Self {
        QuorumConfig {
            node_id,
            voters,
            listen,
            advertised: None,
            dir,
            broker_session_timeout_ms: 9000,
            election_timeout_ms: (600, 1200),
            heartbeat_interval_ms: 150,
            request_timeout_ms: 10_000,
            snapshot_every_entries: 1000,
        }
    }

    pub fn is_voter(&self) -> bool {
        self.voters.iter().any(|v| v.id == self.node_id)
    }

    pub fn voter(&self, id: i32) -> Option<&Voter> {
        self.voters.iter().find(|v| v.id == id)
    }

    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.voters.is_empty(), "--voters lists no voter");
        let (min, max) = self.election_timeout_ms;
        anyhow::ensure!(
            self.heartbeat_interval_ms > 0 && min > self.heartbeat_interval_ms && max > min,
            "need 0 < heartbeat interval < election timeout min < max, got {}ms, ({min}, {max})ms",
            self.heartbeat_interval_ms
        );
        anyhow::ensure!(
            self.snapshot_every_entries > 0,
            "snapshot interval must be positive"
        );
        anyhow::ensure!(
            self.broker_session_timeout_ms > 0,
            "broker session timeout must be positive"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_syntax() {
        let voters = parse_voters("1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293").unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(
            voters[1],
            Voter {
                id: 2,
                host: "127.0.0.1".into(),
                port: 9193
            }
        );
        assert_eq!(voters[2].to_string(), "3@127.0.0.1:9293");
        assert_eq!(
            parse_voters("7@broker-7.kafka:9093").unwrap()[0].host,
            "broker-7.kafka"
        );
        assert_eq!(
            parse_voters("1@[::1]:9093").unwrap()[0].address(),
            "[::1]:9093"
        );
    }

    #[test]
    fn rejects_malformed_voters() {
        for bad in [
            "",
            "1@127.0.0.1:9093,",
            "127.0.0.1:9093",
            "x@127.0.0.1:9093",
            "-1@127.0.0.1:9093",
            "1@127.0.0.1",
            "1@127.0.0.1:0",
            "1@127.0.0.1:70000",
            "1@:9093",
            "1@::1:9093",
            "1@a:1,1@b:2",
        ] {
            assert!(parse_voters(bad).is_err(), "{bad:?} accepted");
        }
    }
}
