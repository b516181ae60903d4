//! One member of a classic consumer group and the protocol vote that picks the group's assignor.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

/// One (name, metadata) pair a member offered in JoinGroup, e.g. ("range", subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A member of a group, as the coordinator tracks it.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// What the leader assigned it in the current generation (empty until the leader syncs).
    pub assignment: Bytes,
    /// Order in which members entered the group; the earliest becomes leader when one is needed.
    pub(super) join_order: u64,
    /// Last JoinGroup, SyncGroup, Heartbeat or OffsetCommit from this member.
    pub(super) last_heard_ms: i64,
    /// A JoinGroup of this member is waiting for the rebalance to complete.
    pub(super) awaiting_join: bool,
    /// A SyncGroup of this member is waiting for the leader's assignment.
    pub(super) awaiting_sync: bool,
}

impl Member {
    /// The metadata this member offered for `protocol` (empty when it did not offer it).
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// When the session ends unless the member is heard from again.
    pub(super) fn session_deadline_ms(&self) -> i64 {
        self.last_heard_ms + i64::from(self.session_timeout_ms)
    }

    /// Members with a JoinGroup or SyncGroup in flight are kept alive by that request: their
    /// deadline is the rebalance's, not the session's.
    pub(super) fn session_can_expire(&self) -> bool {
        !self.awaiting_join && !self.awaiting_sync
    }
}

/// Names of the protocols every one of `members` supports, in the order the first of them
/// prefers.
pub(super) fn common_protocols<'a>(members: impl IntoIterator<Item = &'a Member>) -> Vec<String> {
    let mut members = members.into_iter();
    let Some(first) = members.next() else {
        return Vec::new();
    };
    let mut common: Vec<String> = first.protocols.iter().map(|p| p.name.clone()).collect();
    for member in members {
        common.retain(|name| member.supports(name));
    }
    common
}

/// Picks the group's protocol as Kafka does: among the protocols all members support, each
/// member votes for the first one in its own preference order; most votes wins. Ties go to
/// the protocol the earliest-joined member prefers, so the choice is deterministic.
/// `members` must be in join order.
pub(super) fn select_protocol(members: &[&Member]) -> Option<String> {
    let candidates = common_protocols(members.iter().copied());
    if candidates.is_empty() {
        return None;
    }
    let candidate_set: HashSet<&str> = candidates.iter().map(String::as_str).collect();
    let mut votes: HashMap<&str, usize> = HashMap::new();
    for member in members {
        if let Some(choice) = member
            .protocols
            .iter()
            .find(|p| candidate_set.contains(p.name.as_str()))
        {
            *votes.entry(choice.name.as_str()).or_default() += 1;
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for name in &candidates {
        let count = votes.get(name.as_str()).copied().unwrap_or(0);
        if best.is_none_or(|(_, most)| count > most) {
            best = Some((name.as_str(), count));
        }
    }
    best.map(|(name, _)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(order: u64, protocols: &[&str]) -> Member {
        Member {
            member_id: format!("m{order}"),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|name| Protocol {
                    name: name.to_string(),
                    metadata: Bytes::from(name.to_string()),
                })
                .collect(),
            assignment: Bytes::new(),
            join_order: order,
            last_heard_ms: 0,
            awaiting_join: false,
            awaiting_sync: false,
        }
    }

    #[test]
    fn protocol_with_most_votes_among_common_ones_wins() {
        let a = member(0, &["range", "roundrobin"]);
        let b = member(1, &["roundrobin", "range"]);
        let c = member(2, &["sticky", "roundrobin", "range"]);
        // "sticky" is not common; votes: a->range, b->roundrobin, c->roundrobin.
        assert_eq!(
            select_protocol(&[&a, &b, &c]).as_deref(),
            Some("roundrobin")
        );
    }

    #[test]
    fn tie_goes_to_the_first_members_preference() {
        let a = member(0, &["range", "roundrobin"]);
        let b = member(1, &["roundrobin", "range"]);
        assert_eq!(select_protocol(&[&a, &b]).as_deref(), Some("range"));
        assert_eq!(select_protocol(&[&b, &a]).as_deref(), Some("roundrobin"));
    }

    #[test]
    fn no_common_protocol_selects_nothing() {
        let a = member(0, &["range"]);
        let b = member(1, &["roundrobin"]);
        assert_eq!(select_protocol(&[&a, &b]), None);
    }

    #[test]
    fn metadata_is_per_protocol() {
        let a = member(0, &["range", "roundrobin"]);
        assert_eq!(a.metadata_for("roundrobin"), Bytes::from("roundrobin"));
        assert!(a.metadata_for("sticky").is_empty());
    }
}
