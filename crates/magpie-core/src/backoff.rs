//! The one retry delay policy, for clients and server alike: exponential
//! backoff with jitter. Every retry loop (reconnects, accept errors, bus
//! fetches and republishes) draws its delays from here.
//!
//! Jitter matters because a node restart drops thousands of clients at once;
//! without it they would all come back in the same millisecond.

use rand::Rng;
use std::time::Duration;

/// Exponential backoff: the ceiling doubles from `base` up to `max`, and each
/// delay is drawn uniformly from [ceiling/2, ceiling] ("equal jitter"), so it
/// never collapses to zero yet still spreads clients out.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The ceiling the next delay is drawn under.
    pub fn ceiling(&self) -> Duration {
        // Cap the exponent: 2^20 * any sane base already exceeds any sane max.
        let factor = 1u32 << self.attempt.min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt; each call doubles the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let lo = cap / 2;
        let span = (cap - lo).as_micros() as u64;
        lo + Duration::from_micros(rand::rng().random_range(0..=span))
    }

    /// Starts over from `base` (after a connection that stayed up).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s: the reconnect policy.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// `d` plus up to 25% random extra, so clients told "come back after N ms"
/// by a draining node do not all return at the same instant.
pub fn jitter(d: Duration) -> Duration {
    let extra = (d.as_micros() as u64) / 4;
    d + Duration::from_micros(rand::rng().random_range(0..=extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_bounds_and_grow() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut b = Backoff::new(base, max);
        let mut ceilings = Vec::new();
        for _ in 0..40 {
            let cap = b.ceiling();
            let d = b.next_delay();
            assert!(
                d >= cap / 2 && d <= cap,
                "{d:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
            assert!(d <= max);
            ceilings.push(cap);
        }
        assert_eq!(ceilings[0], base);
        assert_eq!(ceilings[1], base * 2);
        assert_eq!(*ceilings.last().unwrap(), max);
        assert!(ceilings.windows(2).all(|w| w[0] <= w[1]));
        b.reset();
        assert_eq!(b.ceiling(), base);
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(400));
            assert!(d >= Duration::from_millis(400) && d <= Duration::from_millis(500));
        }
    }
}
