//! The classic group membership protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) as a
//! pure state machine: one [`Group`] per group id, driven by requests and by [`Group::tick`],
//! with the time passed in by the caller. Nothing here waits or does I/O: a request either gets
//! its answer at once ([`Outcome::Ready`]) or is parked ([`Outcome::Pending`]) and answered
//! later by a [`Reply`] returned from whichever call completes it. The async glue in
//! `coordinator.rs` turns parked requests into oneshot channels.
//!
//! States follow Kafka's `GroupMetadata`:
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable, back to PreparingRebalance on
//! any membership or subscription change, and Dead once deleted.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tracing::info;

use super::member::{common_protocols, Member};
pub use super::requests::{
    GroupDescription, JoinMember, JoinResult, JoinedMember, MemberDescription, Outcome, Reply,
    SyncMember, SyncResult,
};

/// The state of a classic group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Broker-wide bounds and delays applied to every group.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Kafka's group.initial.rebalance.delay.ms.
    pub initial_rebalance_delay_ms: i64,
}

/// How a PreparingRebalance phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RebalancePhase {
    /// First rebalance of an empty group: wait `initial_rebalance_delay_ms` for more members,
    /// again each time one arrived, until the rebalance timeout is used up.
    InitialDelay {
        deadline_ms: i64,
        remaining_ms: i64,
        new_member_added: bool,
    },
    /// Wait until every known member rejoined, or until the rebalance timeout.
    AwaitingRejoin { deadline_ms: i64 },
}

/// One classic group.
#[derive(Debug)]
pub struct Group {
    id: String,
    limits: GroupLimits,
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: HashMap<String, Member>,
    /// group.instance.id -> member id of the static member holding it.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they expire unless used.
    pending_members: HashMap<String, i64>,
    /// Members that got their JoinGroup answer but have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    phase: Option<RebalancePhase>,
    /// CompletingRebalance: members still in `pending_sync` at this time are removed.
    sync_deadline_ms: Option<i64>,
    next_join_order: u64,
    /// When the group last entered its current state.
    state_since_ms: i64,
}

impl Group {
    /// A new group, Empty at generation 0.
    pub fn new(id: &str, limits: GroupLimits, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            limits,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: HashMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            phase: None,
            sync_deadline_ms: None,
            next_join_order: 0,
            state_since_ms: now_ms,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Members in the order they entered the group.
    pub fn members(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_order);
        members
    }

    /// Since when the group has been in its current state.
    pub fn state_since_ms(&self) -> i64 {
        self.state_since_ms
    }

    /// True when nobody is a member or about to become one.
    pub fn has_no_members(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    /// JoinGroup.
    pub fn join(
        &mut self,
        join: JoinMember,
        fresh_member_id: String,
        now_ms: i64,
    ) -> (Outcome<JoinResult>, Vec<Reply>) {
        let mut replies = Vec::new();
        let refuse = |error| {
            (
                Outcome::Ready(JoinResult::error(error, &join.member_id)),
                Vec::new(),
            )
        };
        if self.state == GroupState::Dead {
            return refuse(ResponseError::CoordinatorNotAvailable);
        }
        if join.session_timeout_ms < self.limits.min_session_timeout_ms
            || join.session_timeout_ms > self.limits.max_session_timeout_ms
        {
            return refuse(ResponseError::InvalidSessionTimeout);
        }
        if !self.supports_protocols(&join) {
            return refuse(ResponseError::InconsistentGroupProtocol);
        }

        if join.member_id.is_empty() {
            if let Some(instance_id) = &join.group_instance_id {
                if let Some(old_member_id) = self.static_members.get(instance_id).cloned() {
                    return self.replace_static_member(
                        &old_member_id,
                        join,
                        fresh_member_id,
                        now_ms,
                    );
                }
            } else if join.require_known_member_id {
                let deadline = now_ms + i64::from(join.session_timeout_ms);
                self.pending_members
                    .insert(fresh_member_id.clone(), deadline);
                info!(group = %self.id, member = %fresh_member_id, "new member must rejoin with its assigned member id");
                return (
                    Outcome::Ready(JoinResult::error(
                        ResponseError::MemberIdRequired,
                        &fresh_member_id,
                    )),
                    replies,
                );
            }
            let outcome =
                self.add_member_and_rebalance(fresh_member_id, join, now_ms, &mut replies);
            return (outcome, replies);
        }

        if self.pending_members.remove(&join.member_id).is_some() {
            let member_id = join.member_id.clone();
            let outcome = self.add_member_and_rebalance(member_id, join, now_ms, &mut replies);
            return (outcome, replies);
        }
        if self.is_fenced(join.group_instance_id.as_deref(), &join.member_id) {
            return refuse(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(&join.member_id) {
            return refuse(ResponseError::UnknownMemberId);
        }
        let outcome = self.rejoin_known_member(join, now_ms, &mut replies);
        (outcome, replies)
    }

    /// SyncGroup.
    pub fn sync(&mut self, sync: SyncMember, now_ms: i64) -> (Outcome<SyncResult>, Vec<Reply>) {
        let mut replies = Vec::new();
        let refuse = |error| (Outcome::Ready(SyncResult::error(error)), Vec::new());
        if self.state == GroupState::Dead {
            return refuse(ResponseError::CoordinatorNotAvailable);
        }
        if self.is_fenced(sync.group_instance_id.as_deref(), &sync.member_id) {
            return refuse(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(&sync.member_id) {
            return refuse(ResponseError::UnknownMemberId);
        }
        if sync.generation_id != self.generation_id {
            return refuse(ResponseError::IllegalGeneration);
        }
        let type_differs = sync
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_differs = sync
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol_name.as_ref());
        if type_differs || name_differs {
            return refuse(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty => refuse(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => refuse(ResponseError::RebalanceInProgress),
            GroupState::Dead => refuse(ResponseError::CoordinatorNotAvailable),
            GroupState::Stable => {
                self.pending_sync.remove(&sync.member_id);
                let member = self
                    .members
                    .get_mut(&sync.member_id)
                    .expect("checked above");
                member.last_heard_ms = now_ms;
                let assignment = member.assignment.clone();
                (Outcome::Ready(self.sync_ok(assignment)), replies)
            }
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(&sync.member_id);
                let member = self
                    .members
                    .get_mut(&sync.member_id)
                    .expect("checked above");
                member.last_heard_ms = now_ms;
                member.awaiting_sync = true;
                if self.leader_id.as_deref() == Some(sync.member_id.as_str()) {
                    self.apply_leader_assignment(sync.assignments, now_ms, &mut replies);
                }
                (
                    Outcome::Pending {
                        member_id: sync.member_id,
                    },
                    replies,
                )
            }
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if self.is_fenced(group_instance_id, member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty => Err(ResponseError::UnknownMemberId),
            GroupState::Dead => Err(ResponseError::CoordinatorNotAvailable),
            GroupState::PreparingRebalance => {
                member.last_heard_ms = now_ms;
                Err(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.last_heard_ms = now_ms;
                Ok(())
            }
        }
    }

    /// LeaveGroup for one member. A static member may be named by its instance id alone.
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
        replies: &mut Vec<Reply>,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let member_id = if member_id.is_empty() {
            match group_instance_id.and_then(|instance| self.static_members.get(instance)) {
                Some(id) => id.clone(),
                None => return Err(ResponseError::UnknownMemberId),
            }
        } else {
            if self.is_fenced(group_instance_id, member_id) {
                return Err(ResponseError::FencedInstanceId);
            }
            member_id.to_string()
        };
        if self.pending_members.remove(&member_id).is_some() {
            self.maybe_complete_join(now_ms, replies);
            return Ok(());
        }
        if !self.members.contains_key(&member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.remove_member(&member_id, "left the group", now_ms, replies);
        Ok(())
    }

    /// Checks that an OffsetCommit may write for this group, as Kafka does: members commit with
    /// their current generation; a commit with generation -1 and no member id (a consumer
    /// managing its own partitions) is allowed only while the group has no members.
    pub fn validate_offset_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            if self.is_fenced(group_instance_id, member_id) {
                return Err(ResponseError::FencedInstanceId);
            }
            let Some(member) = self.members.get_mut(member_id) else {
                return Err(ResponseError::UnknownMemberId);
            };
            if generation_id != self.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
            if self.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            member.last_heard_ms = now_ms;
            Ok(())
        } else if self.state != GroupState::Empty {
            Err(ResponseError::UnknownMemberId)
        } else {
            Ok(())
        }
    }

    /// Marks the group deleted, answering anything still parked.
    pub fn mark_dead(&mut self, now_ms: i64) -> Vec<Reply> {
        let mut replies = Vec::new();
        for member in self.members.values() {
            if member.awaiting_join {
                replies.push(Reply::Join {
                    member_id: member.member_id.clone(),
                    result: JoinResult::error(
                        ResponseError::CoordinatorNotAvailable,
                        &member.member_id,
                    ),
                });
            }
            if member.awaiting_sync {
                replies.push(Reply::Sync {
                    member_id: member.member_id.clone(),
                    result: SyncResult::error(ResponseError::CoordinatorNotAvailable),
                });
            }
        }
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        self.phase = None;
        self.sync_deadline_ms = None;
        self.leader_id = None;
        self.transition(GroupState::Dead, now_ms);
        replies
    }

    /// Applies every deadline due at `now_ms`: session expiry, unused member ids, members that
    /// never synced, and the end of a rebalance's join phase.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Reply> {
        let mut replies = Vec::new();
        if self.state == GroupState::Dead {
            return replies;
        }
        let pending_before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        if self.pending_members.len() != pending_before {
            self.maybe_complete_join(now_ms, &mut replies);
        }

        let mut expired: Vec<(u64, String)> = self
            .members
            .values()
            .filter(|m| m.session_can_expire() && m.session_deadline_ms() <= now_ms)
            .map(|m| (m.join_order, m.member_id.clone()))
            .collect();
        expired.sort();
        for (_, member_id) in expired {
            self.remove_member(&member_id, "session timeout expired", now_ms, &mut replies);
        }

        if self.state == GroupState::CompletingRebalance
            && self
                .sync_deadline_ms
                .is_some_and(|deadline| deadline <= now_ms)
        {
            let mut unsynced: Vec<String> = self.pending_sync.iter().cloned().collect();
            unsynced.sort();
            for member_id in unsynced {
                if self.members.contains_key(&member_id) {
                    self.remove_member(
                        &member_id,
                        "did not sync before the rebalance timeout",
                        now_ms,
                        &mut replies,
                    );
                }
            }
        }

        if self.state == GroupState::PreparingRebalance {
            match self.phase {
                Some(RebalancePhase::InitialDelay {
                    deadline_ms,
                    remaining_ms,
                    new_member_added,
                }) if deadline_ms <= now_ms => {
                    if new_member_added && remaining_ms > 0 {
                        let delay = self.limits.initial_rebalance_delay_ms.min(remaining_ms);
                        self.phase = Some(RebalancePhase::InitialDelay {
                            deadline_ms: now_ms + delay,
                            remaining_ms: remaining_ms - delay,
                            new_member_added: false,
                        });
                    } else {
                        self.complete_join(now_ms, &mut replies);
                    }
                }
                Some(RebalancePhase::AwaitingRejoin { deadline_ms }) if deadline_ms <= now_ms => {
                    self.complete_join(now_ms, &mut replies);
                }
                _ => {}
            }
        }
        replies
    }

    /// The earliest time [`Group::tick`] has something to do, if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.session_can_expire())
            .map(Member::session_deadline_ms);
        let phase = match self.phase {
            Some(RebalancePhase::InitialDelay { deadline_ms, .. })
            | Some(RebalancePhase::AwaitingRejoin { deadline_ms }) => Some(deadline_ms),
            None => None,
        };
        sessions
            .chain(self.pending_members.values().copied())
            .chain(self.sync_deadline_ms)
            .chain(phase)
            .min()
    }

    /// The group as DescribeGroups shows it: member metadata and assignments only when Stable.
    pub fn describe(&self) -> GroupDescription {
        let stable_protocol = match self.state {
            GroupState::Stable => self.protocol_name.clone(),
            _ => None,
        };
        let members = self
            .members()
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: stable_protocol
                    .as_deref()
                    .map(|p| m.metadata_for(p))
                    .unwrap_or_default(),
                assignment: if stable_protocol.is_some() {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: stable_protocol.unwrap_or_default(),
            members,
        }
    }

    fn is_fenced(&self, group_instance_id: Option<&str>, member_id: &str) -> bool {
        group_instance_id
            .and_then(|instance| self.static_members.get(instance))
            .is_some_and(|holder| holder != member_id)
    }

    /// Whether the joining member can be part of this group: it must name a protocol type and
    /// at least one protocol, and, when there are other members, share their protocol type and
    /// one protocol all of them support. The member's own previous entry does not count, so a
    /// lone member may change its protocols.
    fn supports_protocols(&self, join: &JoinMember) -> bool {
        if join.protocol_type.is_empty() || join.protocols.is_empty() {
            return false;
        }
        let replaced = join
            .group_instance_id
            .as_ref()
            .and_then(|instance| self.static_members.get(instance));
        let others: Vec<&Member> = self
            .members()
            .into_iter()
            .filter(|m| m.member_id != join.member_id && Some(&m.member_id) != replaced)
            .collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(join.protocol_type.as_str()) {
            return false;
        }
        let common = common_protocols(others);
        join.protocols.iter().any(|p| common.contains(&p.name))
    }

    /// The JoinGroup answer of the current generation, without the member list.
    fn join_ok(&self, member_id: &str) -> JoinResult {
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        let members = if is_leader && self.state == GroupState::CompletingRebalance {
            let protocol = self.protocol_name.clone().unwrap_or_default();
            self.members()
                .into_iter()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    fn sync_ok(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// The longest rebalance timeout any member asked for (Kafka's group rebalance timeout).
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms.max(0)))
            .max()
            .unwrap_or(0)
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = now_ms;
        }
    }
}

mod rebalance;
#[cfg(test)]
mod tests;
