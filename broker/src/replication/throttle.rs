//! The leader's replication throttle (Kafka's `leader.replication.throttled.rate`): what a
//! leader sends to the replicas a reassignment is adding, until they join the ISR, comes out of
//! one token bucket per broker, so that copying partitions onto new brokers cannot take the
//! disk and network that producers and in-sync followers need. In-sync followers and consumers
//! are never throttled. Kafka throttles the replicas each topic lists in
//! `leader.replication.throttled.replicas`; here they are exactly the reassignment's adding
//! replicas, so that nobody has to list them, nor forget to unlist them afterwards.
//!
//! The bucket holds at most one second of the rate (the burst) and may go into debt: a
//! throttled partition is served while the bucket holds at least [`MIN_GRANT`] of the rate,
//! and the first batch of a response is returned whole whatever its size (the fetch rule that
//! keeps a batch larger than the limits from sticking), its excess paid for by the next
//! refills; so the rate holds over time even for batches larger than the burst. The clock is
//! passed in, so the logic is tested without sleeping.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The bucket holds at most this much of the rate.
const BURST: Duration = Duration::from_secs(1);

/// A throttled partition is served again once the bucket holds this much of the rate: a
/// follower waiting on an empty bucket gets an answer at most about 20 times a second, however
/// small the batches.
pub const MIN_GRANT: Duration = Duration::from_millis(50);

/// The limit a `leader.replication.throttled.rate` value sets, in bytes per second: none for
/// Long.MAX (Kafka's "unlimited", the default).
pub fn limit_of(setting: i64) -> Option<u64> {
    (0..i64::MAX).contains(&setting).then_some(setting as u64)
}

/// Bytes that may be sent at `rate` bytes per second, refilled as time passes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    /// Bytes that may be sent now; negative after sending more than there was.
    balance: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket: one second's worth may go at once.
    pub fn new(rate: u64, now: Instant) -> TokenBucket {
        let mut bucket = TokenBucket {
            rate,
            balance: 0.0,
            refilled_at: now,
        };
        bucket.balance = bucket.capacity();
        bucket
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn capacity(&self) -> f64 {
        self.rate as f64 * BURST.as_secs_f64()
    }

    /// At least one byte: at rate 0 nothing is ever served.
    fn min_grant(&self) -> f64 {
        (self.rate as f64 * MIN_GRANT.as_secs_f64()).max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.balance =
            (self.balance + self.rate as f64 * elapsed.as_secs_f64()).min(self.capacity());
        self.refilled_at = self.refilled_at.max(now);
    }

    /// Bytes that may be sent now: none while the bucket holds less than [`MIN_GRANT`].
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        if self.balance >= self.min_grant() {
            self.balance as u64
        } else {
            0
        }
    }

    /// Takes `bytes` that were sent, which may be more than was available.
    pub fn spend(&mut self, bytes: u64, now: Instant) {
        self.refill(now);
        self.balance -= bytes as f64;
    }

    /// How long until [`TokenBucket::available`] is above 0 again; None at rate 0 (never).
    pub fn until_available(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        if self.rate == 0 {
            return None;
        }
        let missing = (self.min_grant() - self.balance).max(0.0);
        // Rounded up, so that the bucket is not found a nanosecond short at that time.
        Some(Duration::from_nanos(
            (missing * 1e9 / self.rate as f64).ceil() as u64,
        ))
    }

    /// Changes the rate from now on, keeping what the bucket holds (at most the new burst).
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.balance = self.balance.min(self.capacity());
    }
}

/// The broker's throttle: one bucket shared by every throttled fetch this broker serves as
/// leader, at the rate the fetch handler reads from the configuration (which may change).
#[derive(Debug, Default)]
pub struct ReplicationThrottle {
    /// None while the rate is unlimited: a new limit starts with a full bucket.
    bucket: Mutex<Option<TokenBucket>>,
}

impl ReplicationThrottle {
    /// Bytes the throttled partitions of a fetch may be sent now at `limit` bytes per second
    /// (see [`limit_of`]); None when unlimited.
    pub fn allowance(&self, limit: Option<u64>, now: Instant) -> Option<u64> {
        let mut bucket = self.bucket.lock();
        let Some(rate) = limit else {
            *bucket = None;
            return None;
        };
        let bucket = bucket.get_or_insert_with(|| TokenBucket::new(rate, now));
        if bucket.rate() != rate {
            bucket.set_rate(rate, now);
        }
        Some(bucket.available(now))
    }

    /// Takes the bytes a fetch's throttled partitions were sent.
    pub fn spend(&self, bytes: u64, now: Instant) {
        if let Some(bucket) = self.bucket.lock().as_mut() {
            bucket.spend(bytes, now);
        }
    }

    /// How long until throttled partitions may be served again: None when that is not up to
    /// time (rate 0, or no limit: nothing to wait for).
    pub fn until_available(&self, now: Instant) -> Option<Duration> {
        self.bucket.lock().as_mut()?.until_available(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn long_max_is_unlimited_and_any_other_long_a_limit() {
        assert_eq!(limit_of(i64::MAX), None);
        assert_eq!(limit_of(MIB as i64), Some(MIB));
        assert_eq!(limit_of(0), Some(0));
    }

    #[test]
    fn a_full_bucket_allows_one_seconds_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(MIB, start);
        assert_eq!(bucket.available(start), MIB);
        bucket.spend(MIB, start);
        assert_eq!(bucket.available(start), 0, "empty");
        // Below the smallest grant (50 ms of the rate) nothing is served yet.
        assert_eq!(bucket.available(start + ms(40)), 0);
        assert_eq!(bucket.available(start + ms(500)), MIB / 2);
        // Idle for a long time: still one second's burst, not more.
        assert_eq!(bucket.available(start + Duration::from_secs(60)), MIB);
    }

    #[test]
    fn a_batch_larger_than_what_was_left_is_paid_for_by_the_next_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(MIB, start);
        bucket.spend(MIB, start);
        let later = start + ms(100);
        assert_eq!(bucket.available(later), MIB / 10);
        // A 2 MiB batch returned whole: the bucket owes ~1.9 MiB, paid back in ~1.95 s (to
        // the smallest grant).
        bucket.spend(2 * MIB, later);
        assert_eq!(bucket.available(later), 0);
        let wait = bucket.until_available(later).unwrap();
        assert!(
            (ms(1_940)..=ms(1_960)).contains(&wait),
            "{wait:?} until available"
        );
        assert_eq!(bucket.available(later + wait - ms(10)), 0);
        assert!(bucket.available(later + wait + ms(1)) >= MIB / 20);
    }

    #[test]
    fn over_time_the_rate_holds_whatever_the_batch_size() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(MIB, start);
        let mut now = start;
        let mut sent = 0u64;
        // A follower fetching 300 KiB batches, each time the bucket lets it.
        while now < start + Duration::from_secs(10) {
            if bucket.available(now) > 0 {
                bucket.spend(300 << 10, now);
                sent += 300 << 10;
            }
            now += bucket.until_available(now).unwrap().max(ms(1));
        }
        // One second's burst plus ten seconds at the rate, give or take a batch.
        let expected = 11 * MIB;
        assert!(
            sent.abs_diff(expected) <= 300 << 10,
            "sent {sent} in 10 s, expected about {expected}"
        );
    }

    #[test]
    fn rate_zero_serves_nothing_and_gives_no_time_to_wait_for() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0, start);
        assert_eq!(bucket.available(start + Duration::from_secs(3600)), 0);
        assert_eq!(bucket.until_available(start), None);
    }

    #[test]
    fn the_shared_throttle_follows_rate_changes_and_forgets_when_unlimited() {
        let start = Instant::now();
        let throttle = ReplicationThrottle::default();
        let about = |allowance: Option<u64>, expected: u64| {
            allowance.is_some_and(|bytes| bytes.abs_diff(expected) <= 1)
        };
        assert_eq!(throttle.allowance(None, start), None);
        assert_eq!(throttle.until_available(start), None);
        assert_eq!(throttle.allowance(Some(MIB), start), Some(MIB));
        throttle.spend(MIB, start);
        assert_eq!(throttle.allowance(Some(MIB), start), Some(0));
        let wait = throttle.until_available(start).unwrap();
        assert!((ms(50)..ms(51)).contains(&wait), "{wait:?}");
        // Halved after 100 ms: what was refilled stays, and the rest comes at the new rate.
        let allowance = throttle.allowance(Some(MIB / 2), start + ms(100));
        assert!(about(allowance, MIB / 10), "{allowance:?}");
        let allowance = throttle.allowance(Some(MIB / 2), start + ms(200));
        assert!(about(allowance, MIB / 10 + MIB / 20), "{allowance:?}");
        // A raise does not fill the bucket at once: the 0.15 MiB it holds is below the new
        // smallest grant (50 ms of 4 MiB/s), which 50 ms at the new rate brings.
        assert_eq!(throttle.allowance(Some(4 * MIB), start + ms(200)), Some(0));
        let allowance = throttle.allowance(Some(4 * MIB), start + ms(250));
        assert!(
            about(allowance, MIB / 10 + MIB / 20 + MIB / 5),
            "{allowance:?}"
        );
        // Unlimited, then limited again: a full bucket.
        assert_eq!(throttle.allowance(None, start + ms(250)), None);
        assert_eq!(throttle.allowance(Some(MIB), start + ms(250)), Some(MIB));
    }
}
