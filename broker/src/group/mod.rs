//! Classic consumer groups (Kafka's `GroupCoordinator`): membership and rebalances through
//! JoinGroup / SyncGroup / Heartbeat / LeaveGroup, and committed offsets stored in the internal
//! `__consumer_offsets` topic.
//!
//! - [`state`]: the per-group state machine, pure and driven with injected time;
//! - [`requests`]: what the state machine is asked and answers;
//! - [`member`]: a member and the protocol vote;
//! - [`codec`]: the records of `__consumer_offsets`;
//! - [`offsets`]: committed offsets in memory, written to and replayed from that topic;
//! - [`coordinator`]: the async glue the request handlers call.
//!
//! Group membership itself is not persisted: after a restart every group with committed
//! offsets is Empty, and its members rejoin as consumers do after a coordinator change.

pub mod codec;
pub mod coordinator;
pub mod member;
pub mod offsets;
pub mod requests;
pub mod state;

pub use codec::CommittedOffset;
pub use coordinator::{Committer, GroupCoordinator, GroupListing, LeavingMember};
pub use member::Protocol;
pub use requests::{
    GroupDescription, JoinMember, JoinResult, JoinedMember, MemberDescription, SyncMember,
    SyncResult,
};
pub use state::{GroupLimits, GroupState};
