//! Producer ids for idempotent producers (InitProducerId), unique across the cluster and across
//! restarts: each broker takes blocks of ids from the controller (the block's end is in the
//! replicated metadata before any id of it is handed out) and serves ids from its block.

use millrace_quorum::command::{Command, CommandOutcome};
use millrace_quorum::{MetadataQuorum, QuorumError};
use tokio::sync::Mutex;

const BLOCK_SIZE: i64 = 1000;

#[derive(Default)]
struct Block {
    next: i64,
    end: i64,
}

#[derive(Default)]
pub struct ProducerIdAllocator {
    block: Mutex<Block>,
}

impl ProducerIdAllocator {
    pub fn new() -> ProducerIdAllocator {
        ProducerIdAllocator::default()
    }

    /// The next producer id, taking a new block from the controller when this one is used up.
    pub async fn allocate(
        &self,
        quorum: &MetadataQuorum,
        broker_id: i32,
    ) -> Result<i64, QuorumError> {
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            let command = Command::AllocateProducerIdBlock {
                broker_id,
                block_size: BLOCK_SIZE,
            };
            match quorum.submit(command).await? {
                CommandOutcome::ProducerIdBlock { start, len } => {
                    block.next = start;
                    block.end = start + len;
                }
                other => {
                    return Err(QuorumError::Unavailable(format!(
                        "unexpected answer to a producer id block request: {other:?}"
                    )))
                }
            }
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}
