use serde::{Deserialize, Serialize};

use crate::command::Rejection;

/// Why a request to the metadata quorum failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum QuorumError {
    /// The node asked is not the active controller (the caller may retry there).
    #[error("not the active controller (the leader is {leader_id:?})")]
    NotLeader { leader_id: Option<i32> },
    /// No active controller could be reached (no quorum, or shutting down).
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
    /// The controller refused the command; nothing changed.
    #[error("rejected: {0}")]
    Rejected(Rejection),
    /// No answer within the request time-out; the command may or may not have been applied.
    #[error("timed out")]
    Timeout,
}
