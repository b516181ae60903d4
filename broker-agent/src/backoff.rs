//! Restart delays for a crashing broker: exponential from 1 s to 30 s, back to 1 s once a broker
//! has stayed up long enough to count as healthy.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy_after: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, healthy_after: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            healthy_after,
            next: initial,
        }
    }

    /// The delay before restarting a broker that exited after running for `ran_for`. A run of
    /// at least `healthy_after` means the previous crashes are history: start again from the
    /// initial delay.
    pub fn delay_after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.healthy_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(100);

    #[test]
    fn doubles_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.delay_after_exit(QUICK).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn resets_after_a_healthy_run() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.delay_after_exit(QUICK);
        }
        assert_eq!(
            backoff.delay_after_exit(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(backoff.delay_after_exit(QUICK), Duration::from_secs(2));
    }

    #[test]
    fn a_short_run_does_not_reset() {
        let mut backoff = Backoff::default();
        backoff.delay_after_exit(QUICK);
        assert_eq!(
            backoff.delay_after_exit(Duration::from_secs(59)),
            Duration::from_secs(2)
        );
    }
}
