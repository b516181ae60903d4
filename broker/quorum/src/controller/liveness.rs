//! Broker sessions: which brokers the active controller must fence.
//!
//! Liveness is not replicated: each new active controller starts every registered broker's
//! session afresh (`controller_since`), as Kafka's controller does, so a failover never fences
//! a broker that was heartbeating to the previous controller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::metadata::ClusterMetadata;

/// When this controller's sessions started, and what it knows of the controller before it.
#[derive(Debug, Clone, Copy)]
pub struct SessionStart {
    /// When this node became the active controller.
    pub since: Instant,
    /// The previous active controller's broker id, and when it was last heard of at the latest.
    /// A new Raft leader is only elected once a majority went without hearing from the old one
    /// for the leader lease (the longest election timeout), so that broker's session need not
    /// restart in full: when the old controller died with its broker (the usual reason for an
    /// election), its leaderships move that much sooner.
    pub previous_controller: Option<(i32, Instant)>,
}

/// Unfenced brokers whose last heartbeat (or the start of their session with this controller,
/// whichever is later) is older than `session_timeout`, with the broker epoch to fence.
pub fn expired_sessions(
    cluster: &ClusterMetadata,
    last_heartbeat: &HashMap<i32, Instant>,
    start: SessionStart,
    now: Instant,
    session_timeout: Duration,
) -> Vec<(i32, u64)> {
    cluster
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .filter(|broker| {
            let session_start = match start.previous_controller {
                Some((id, last_heard)) if id == broker.id => last_heard.min(start.since),
                _ => start.since,
            };
            let seen = last_heartbeat
                .get(&broker.id)
                .copied()
                .map_or(session_start, |t| t.max(session_start));
            now.saturating_duration_since(seen) > session_timeout
        })
        .map(|broker| (broker.id, broker.epoch))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::cluster_with_brokers;

    #[test]
    fn only_unfenced_brokers_silent_past_the_timeout_expire() {
        let mut cluster = cluster_with_brokers(&[(1, None), (2, None), (3, None), (4, None)]);
        cluster.brokers.get_mut(&4).unwrap().fenced = true;
        let start = Instant::now();
        let timeout = Duration::from_millis(9000);
        let now = start + Duration::from_millis(10_000);
        let heartbeats = HashMap::from([
            (1, start + Duration::from_millis(9_500)),
            (2, start + Duration::from_millis(500)),
        ]);
        let expired = expired_sessions(&cluster, &heartbeats, fresh(start), now, timeout);
        let ids: Vec<i32> = expired.iter().map(|(id, _)| *id).collect();
        // 2 heartbeated too long ago; 3 never did since this controller started; 4 is fenced.
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(expired[0].1, cluster.brokers[&2].epoch);
    }

    #[test]
    fn a_new_controller_gives_every_broker_a_fresh_session() {
        let cluster = cluster_with_brokers(&[(1, None)]);
        let long_ago = Instant::now();
        let controller_since = long_ago + Duration::from_secs(60);
        let heartbeats = HashMap::from([(1, long_ago)]);
        let now = controller_since + Duration::from_secs(1);
        assert!(expired_sessions(
            &cluster,
            &heartbeats,
            fresh(controller_since),
            now,
            Duration::from_secs(9)
        )
        .is_empty());
    }

    #[test]
    fn the_previous_controller_has_been_silent_for_an_election_timeout_already() {
        let cluster = cluster_with_brokers(&[(1, None), (2, None)]);
        let since = Instant::now() + Duration::from_secs(60);
        let start = SessionStart {
            since,
            previous_controller: Some((1, since - Duration::from_millis(800))),
        };
        let timeout = Duration::from_millis(2500);
        let expired_at = |after_ms: u64| {
            let now = since + Duration::from_millis(after_ms);
            expired_sessions(&cluster, &HashMap::new(), start, now, timeout)
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>()
        };
        assert_eq!(expired_at(1600), Vec::<i32>::new());
        // 1 was unheard for 800 ms before this controller started; 2 gets a full session.
        assert_eq!(expired_at(1800), vec![1]);
        assert_eq!(expired_at(2600), vec![1, 2]);
        // A heartbeat from the old controller's broker counts as from anyone.
        let heartbeats = HashMap::from([(1, since + Duration::from_millis(1000))]);
        let now = since + Duration::from_millis(1800);
        assert!(expired_sessions(&cluster, &heartbeats, start, now, timeout).is_empty());
    }

    #[test]
    fn a_previous_controller_known_to_be_down_expires_at_once() {
        let cluster = cluster_with_brokers(&[(1, None), (2, None)]);
        let since = Instant::now() + Duration::from_secs(60);
        let timeout = Duration::from_millis(2500);
        // What the controller records when the old controller's listener refuses connections.
        let start = SessionStart {
            since,
            previous_controller: Some((1, since - timeout)),
        };
        let now = since + Duration::from_millis(1);
        let expired = expired_sessions(&cluster, &HashMap::new(), start, now, timeout);
        assert_eq!(
            expired.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1]
        );
    }

    fn fresh(since: Instant) -> SessionStart {
        SessionStart {
            since,
            previous_controller: None,
        }
    }
}
