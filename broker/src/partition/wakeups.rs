//! Wake-ups for long-polling fetches.

use tokio::sync::watch;

/// Wakes the fetches waiting for data: each wake-up makes the waiting fetches of its kind read
/// their partitions again. Followers read up to the log end, so appends wake them; consumers
/// read up to the high watermark, so its moves wake them (on a partition without followers it
/// moves with every append). One per broker, shared by its partitions; cloning shares it.
#[derive(Clone, Default)]
pub struct FetchWakeups {
    appended: watch::Sender<u64>,
    high_watermark_moved: watch::Sender<u64>,
}

/// Who is fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetcher {
    Consumer,
    Follower,
}

impl FetchWakeups {
    /// Records were appended: wakes followers.
    pub fn appended(&self) {
        bump(&self.appended);
    }

    /// A high watermark moved: wakes consumers.
    pub fn high_watermark_moved(&self) {
        bump(&self.high_watermark_moved);
    }

    /// Wakes every waiting fetch (a leadership changed: some must answer NOT_LEADER).
    pub fn all(&self) {
        self.appended();
        self.high_watermark_moved();
    }

    /// A receiver that sees every wake-up for `fetcher` after it is marked seen
    /// (`borrow_and_update`).
    pub fn subscribe(&self, fetcher: Fetcher) -> watch::Receiver<u64> {
        match fetcher {
            Fetcher::Consumer => self.high_watermark_moved.subscribe(),
            Fetcher::Follower => self.appended.subscribe(),
        }
    }
}

fn bump(sender: &watch::Sender<u64>) {
    sender.send_modify(|count| *count = count.wrapping_add(1));
}
