//! What the group state machine is asked (JoinGroup, SyncGroup) and what it answers, free of
//! the wire types so that the state machine can be tested without them.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::member::Protocol;
use super::state::GroupState;

/// A JoinGroup, stripped of the wire.
#[derive(Debug, Clone)]
pub struct JoinMember {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id, and must
    /// join again with it.
    pub require_known_member_id: bool,
}

/// A SyncGroup, stripped of the wire.
#[derive(Debug, Clone)]
pub struct SyncMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+ sends these; when present they must match the group's.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Sent by the leader only: member id -> assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(error: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// What a JoinGroup or SyncGroup call produced for its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Answer now.
    Ready(T),
    /// Answer later, with the [`Reply`] addressed to this member id.
    Pending { member_id: String },
}

/// An answer to a parked request, produced by the call that completed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join {
        member_id: String,
        result: JoinResult,
    },
    Sync {
        member_id: String,
        result: SyncResult,
    },
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol when Stable, else empty (as Kafka reports it).
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}
