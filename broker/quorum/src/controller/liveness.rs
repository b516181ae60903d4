//! Broker sessions: which brokers the active controller must fence.
//!
//! Liveness is not replicated: each new active controller starts every registered broker's
//! session afresh (`controller_since`), as Kafka's controller does, so a failover never fences
//! a broker that was heartbeating to the previous controller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::metadata::ClusterMetadata;

/// Unfenced brokers whose last heartbeat (or the start of this controller's term, whichever is
/// later) is older than `session_timeout`, with the broker epoch to fence.
pub fn expired_sessions(
    cluster: &ClusterMetadata,
    last_heartbeat: &HashMap<i32, Instant>,
    controller_since: Instant,
    now: Instant,
    session_timeout: Duration,
) -> Vec<(i32, u64)> {
    cluster
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .filter(|broker| {
            let seen = last_heartbeat
                .get(&broker.id)
                .copied()
                .map_or(controller_since, |t| t.max(controller_since));
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
        let expired = expired_sessions(&cluster, &heartbeats, start, now, timeout);
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
            controller_since,
            now,
            Duration::from_secs(9)
        )
        .is_empty());
    }
}
