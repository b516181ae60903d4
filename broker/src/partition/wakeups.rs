//! Wake-ups for long-polling fetches.

use tokio::sync::watch;

/// Wakes the fetches waiting for data: each wake-up makes every waiting fetch read its
/// partitions again. One per broker, shared by its partitions; cloning shares it.
#[derive(Clone, Default)]
pub struct FetchWakeups(watch::Sender<u64>);

impl FetchWakeups {
    pub fn wake(&self) {
        self.0.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A receiver that sees every wake-up after it is marked seen (`borrow_and_update`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
