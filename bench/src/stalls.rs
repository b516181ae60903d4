//! Where a latency tail comes from: a thread of the benchmark process that asks to sleep 1 ms
//! over and over and notes how late it wakes. When it wakes 50 ms late, the process was not
//! scheduled for 50 ms, whatever the broker did; when it wakes on time while records wait,
//! the wait is somewhere else (the client's queues, the socket, the broker).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(1);

/// The sleeper's findings: its latest wake-up, and how often it was over 5 ms late.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Oversleep {
    pub worst: Duration,
    /// When the worst wake-up came, since the meter started.
    pub worst_at: Duration,
    pub ticks: u64,
    pub late_over_5ms: u64,
}

impl std::fmt::Display for Oversleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a 1 ms sleeper in the benchmark process woke at most {:.2} ms late (at {:.2} s); {} of {} sleeps over 5 ms late",
            self.worst.as_secs_f64() * 1e3,
            self.worst_at.as_secs_f64(),
            self.late_over_5ms,
            self.ticks
        )
    }
}

pub struct StallMeter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Oversleep>,
}

impl StallMeter {
    pub fn start() -> StallMeter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut found = Oversleep::default();
            while !flag.load(Ordering::Relaxed) {
                let before = Instant::now();
                std::thread::sleep(TICK);
                let late = before.elapsed().saturating_sub(TICK);
                found.ticks += 1;
                if late > Duration::from_millis(5) {
                    found.late_over_5ms += 1;
                }
                if late > found.worst {
                    found.worst = late;
                    found.worst_at = before.duration_since(started);
                }
            }
            found
        });
        StallMeter { stop, thread }
    }

    pub fn stop(self) -> Oversleep {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sleeper_ticks_until_stopped() {
        let meter = StallMeter::start();
        std::thread::sleep(Duration::from_millis(50));
        let found = meter.stop();
        assert!(found.ticks >= 10, "{found:?}");
        assert!(found.worst < Duration::from_secs(1), "{found:?}");
        assert!(found.worst_at < Duration::from_secs(1), "{found:?}");
    }
}
