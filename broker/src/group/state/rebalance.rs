//! The transitions of a rebalance: members entering, rejoining, being replaced or removed,
//! the join phase starting and completing, and the leader's assignment making the group Stable.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tracing::info;

use super::{Group, GroupState, RebalancePhase};
use crate::group::member::{select_protocol, Member};
use crate::group::requests::{JoinMember, JoinResult, JoinedMember, Outcome, Reply, SyncResult};

impl Group {
    pub(super) fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        join: JoinMember,
        now_ms: i64,
        replies: &mut Vec<Reply>,
    ) -> Outcome<JoinResult> {
        if self.members.is_empty() {
            self.protocol_type = Some(join.protocol_type.clone());
        }
        if let Some(instance_id) = &join.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: join.group_instance_id,
            client_id: join.client_id,
            client_host: join.client_host,
            session_timeout_ms: join.session_timeout_ms,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            protocol_type: join.protocol_type,
            protocols: join.protocols,
            assignment: Bytes::new(),
            join_order: self.next_join_order,
            last_heard_ms: now_ms,
            awaiting_join: true,
            awaiting_sync: false,
        };
        self.next_join_order += 1;
        self.members.insert(member_id.clone(), member);
        info!(
            group = %self.id,
            member = %member_id,
            generation = self.generation_id,
            members = self.members.len(),
            "member joined the group"
        );
        if let Some(RebalancePhase::InitialDelay {
            new_member_added, ..
        }) = &mut self.phase
        {
            *new_member_added = true;
        }
        self.maybe_prepare_rebalance("a new member joined", now_ms, replies);
        self.maybe_complete_join(now_ms, replies);
        Outcome::Pending { member_id }
    }

    pub(super) fn rejoin_known_member(
        &mut self,
        join: JoinMember,
        now_ms: i64,
        replies: &mut Vec<Reply>,
    ) -> Outcome<JoinResult> {
        let member_id = join.member_id.clone();
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        let member = self
            .members
            .get_mut(&member_id)
            .expect("caller checked membership");
        let unchanged = member.protocols == join.protocols;
        member.last_heard_ms = now_ms;
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                // A retried JoinGroup: answer with the generation it already joined.
                Outcome::Ready(self.join_ok(&member_id))
            }
            GroupState::Stable if unchanged && !is_leader => Outcome::Ready(JoinResult {
                members: Vec::new(),
                ..self.join_ok(&member_id)
            }),
            _ => {
                member.session_timeout_ms = join.session_timeout_ms;
                member.rebalance_timeout_ms = join.rebalance_timeout_ms;
                member.client_id = join.client_id;
                member.client_host = join.client_host;
                member.protocols = join.protocols;
                member.awaiting_join = true;
                let reason = if unchanged {
                    "the leader rejoined"
                } else {
                    "a member changed its protocol metadata"
                };
                self.maybe_prepare_rebalance(reason, now_ms, replies);
                self.maybe_complete_join(now_ms, replies);
                Outcome::Pending { member_id }
            }
        }
    }

    /// A static member restarted and joined without its member id: it takes a new id and the
    /// old id is fenced. If it still offers the same protocols and the group is Stable, it keeps
    /// its assignment and no rebalance happens (KIP-345).
    pub(super) fn replace_static_member(
        &mut self,
        old_member_id: &str,
        join: JoinMember,
        new_member_id: String,
        now_ms: i64,
    ) -> (Outcome<JoinResult>, Vec<Reply>) {
        let mut replies = Vec::new();
        let Some(mut member) = self.members.remove(old_member_id) else {
            return (
                Outcome::Ready(JoinResult::error(
                    ResponseError::UnknownMemberId,
                    &join.member_id,
                )),
                replies,
            );
        };
        if member.awaiting_join {
            replies.push(Reply::Join {
                member_id: old_member_id.to_string(),
                result: JoinResult::error(ResponseError::FencedInstanceId, old_member_id),
            });
        }
        if member.awaiting_sync {
            replies.push(Reply::Sync {
                member_id: old_member_id.to_string(),
                result: SyncResult::error(ResponseError::FencedInstanceId),
            });
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.clone());
        }
        let previous_leader = self.leader_id.clone().unwrap_or_default();
        if self.leader_id.as_deref() == Some(old_member_id) {
            self.leader_id = Some(new_member_id.clone());
        }
        if let Some(instance_id) = &join.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), new_member_id.clone());
        }
        let unchanged = member.protocols == join.protocols;
        member.member_id = new_member_id.clone();
        member.client_id = join.client_id;
        member.client_host = join.client_host;
        member.session_timeout_ms = join.session_timeout_ms;
        member.rebalance_timeout_ms = join.rebalance_timeout_ms;
        member.protocols = join.protocols;
        member.last_heard_ms = now_ms;
        member.awaiting_join = false;
        member.awaiting_sync = false;
        info!(
            group = %self.id,
            old_member = %old_member_id,
            member = %new_member_id,
            instance = ?member.group_instance_id,
            generation = self.generation_id,
            "static member rejoined with a new member id"
        );
        if self.state == GroupState::Stable && unchanged {
            self.members.insert(new_member_id.clone(), member);
            // The old leader id is returned even when this member led the group, so that it
            // does not compute an assignment a Stable group would never distribute.
            let result = JoinResult {
                leader_id: previous_leader,
                members: Vec::new(),
                ..self.join_ok(&new_member_id)
            };
            return (Outcome::Ready(result), replies);
        }
        member.awaiting_join = true;
        self.members.insert(new_member_id.clone(), member);
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, &mut replies),
            _ => self.prepare_rebalance(
                "a static member rejoined with changed metadata",
                now_ms,
                &mut replies,
            ),
        }
        (
            Outcome::Pending {
                member_id: new_member_id,
            },
            replies,
        )
    }

    pub(super) fn remove_member(
        &mut self,
        member_id: &str,
        reason: &str,
        now_ms: i64,
        replies: &mut Vec<Reply>,
    ) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if member.awaiting_join {
            replies.push(Reply::Join {
                member_id: member_id.to_string(),
                result: JoinResult::error(ResponseError::UnknownMemberId, member_id),
            });
        }
        if member.awaiting_sync {
            replies.push(Reply::Sync {
                member_id: member_id.to_string(),
                result: SyncResult::error(ResponseError::UnknownMemberId),
            });
        }
        if let Some(instance_id) = &member.group_instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members().first().map(|m| m.member_id.clone());
        }
        info!(
            group = %self.id,
            member = %member_id,
            generation = self.generation_id,
            reason,
            "member removed from the group"
        );
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(reason, now_ms, replies)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, replies),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub(super) fn maybe_prepare_rebalance(
        &mut self,
        reason: &str,
        now_ms: i64,
        replies: &mut Vec<Reply>,
    ) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(reason, now_ms, replies);
        }
    }

    pub(super) fn prepare_rebalance(
        &mut self,
        reason: &str,
        now_ms: i64,
        replies: &mut Vec<Reply>,
    ) {
        if self.state == GroupState::CompletingRebalance {
            // The generation being synced is abandoned: whoever waits for it must rejoin.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if member.awaiting_sync {
                    member.awaiting_sync = false;
                    replies.push(Reply::Sync {
                        member_id: member.member_id.clone(),
                        result: SyncResult::error(ResponseError::RebalanceInProgress),
                    });
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let rebalance_timeout_ms = self.rebalance_timeout_ms();
        let initial_delay_ms = self.limits.initial_rebalance_delay_ms;
        self.phase = Some(if self.state == GroupState::Empty && initial_delay_ms > 0 {
            let delay = initial_delay_ms.min(rebalance_timeout_ms);
            RebalancePhase::InitialDelay {
                deadline_ms: now_ms + delay,
                remaining_ms: (rebalance_timeout_ms - delay).max(0),
                new_member_added: false,
            }
        } else {
            RebalancePhase::AwaitingRejoin {
                deadline_ms: now_ms + rebalance_timeout_ms,
            }
        });
        info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            rebalance_timeout_ms,
            reason,
            "preparing to rebalance"
        );
        self.transition(GroupState::PreparingRebalance, now_ms);
        // Nobody left to wait for (the last member left) or everyone already rejoined.
        self.maybe_complete_join(now_ms, replies);
    }

    /// Ends the join phase early once every member rejoined (never during the initial delay,
    /// whose point is to wait for members not known yet, unless the group emptied).
    pub(super) fn maybe_complete_join(&mut self, now_ms: i64, replies: &mut Vec<Reply>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_rejoined =
            self.members.values().all(|m| m.awaiting_join) && self.pending_members.is_empty();
        let waiting_for_rejoin = matches!(self.phase, Some(RebalancePhase::AwaitingRejoin { .. }));
        if self.members.is_empty() || (waiting_for_rejoin && all_rejoined) {
            self.complete_join(now_ms, replies);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, and the others enter a new
    /// generation (or the group becomes Empty).
    pub(super) fn complete_join(&mut self, now_ms: i64, replies: &mut Vec<Reply>) {
        let mut absent: Vec<&Member> = self.members.values().filter(|m| !m.awaiting_join).collect();
        absent.sort_by_key(|m| m.join_order);
        let absent: Vec<String> = absent.into_iter().map(|m| m.member_id.clone()).collect();
        for member_id in absent {
            let member = self.members.remove(&member_id).expect("listed above");
            if let Some(instance_id) = &member.group_instance_id {
                self.static_members.remove(instance_id);
            }
            info!(group = %self.id, member = %member_id, generation = self.generation_id, "member did not rejoin in time and was removed");
        }
        self.phase = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            info!(group = %self.id, generation = self.generation_id, "group is empty");
            self.transition(GroupState::Empty, now_ms);
            return;
        }
        let (protocol_name, first_member_id) = {
            let ordered = self.members();
            let protocol_name = select_protocol(&ordered)
                .or_else(|| ordered[0].protocols.first().map(|p| p.name.clone()));
            (protocol_name, ordered[0].member_id.clone())
        };
        self.protocol_name = protocol_name;
        if !self
            .leader_id
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader))
        {
            self.leader_id = Some(first_member_id);
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let ordered = self.members();
        let all_members: Vec<JoinedMember> = ordered
            .iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect();
        let member_ids: Vec<String> = ordered.iter().map(|m| m.member_id.clone()).collect();
        let leader_id = self.leader_id.clone().unwrap_or_default();
        for member_id in &member_ids {
            let member = self.members.get_mut(member_id).expect("listed above");
            member.awaiting_join = false;
            member.last_heard_ms = now_ms;
            member.assignment = Bytes::new();
            let mut result = self.join_ok(member_id);
            if *member_id == leader_id {
                result.members = all_members.clone();
            }
            replies.push(Reply::Join {
                member_id: member_id.clone(),
                result,
            });
        }
        self.pending_sync = member_ids.into_iter().collect();
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        info!(
            group = %self.id,
            generation = self.generation_id,
            leader = %leader_id,
            protocol = %protocol,
            members = self.members.len(),
            "rebalance joined all members; awaiting the leader's assignment"
        );
        self.transition(GroupState::CompletingRebalance, now_ms);
    }

    pub(super) fn apply_leader_assignment(
        &mut self,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
        replies: &mut Vec<Reply>,
    ) {
        let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.member_id).unwrap_or_default();
        }
        let mut waiting: Vec<&Member> = self.members.values().filter(|m| m.awaiting_sync).collect();
        waiting.sort_by_key(|m| m.join_order);
        let waiting: Vec<(String, Bytes)> = waiting
            .into_iter()
            .map(|m| (m.member_id.clone(), m.assignment.clone()))
            .collect();
        for (member_id, assignment) in waiting {
            if let Some(member) = self.members.get_mut(&member_id) {
                member.awaiting_sync = false;
            }
            replies.push(Reply::Sync {
                member_id,
                result: self.sync_ok(assignment),
            });
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            "group is stable"
        );
        self.transition(GroupState::Stable, now_ms);
    }
}
