//! Token buckets per address and per user (GCRA, the `governor` crate),
//! and the cap on connections per address.
//!
//! These limits are per node: a client spread over several nodes gets
//! each node's rate (the connection caps and bans are what bound it
//! cluster-wide; failed logins are counted in the fast state instead,
//! `login.rs`). Keyed buckets forget a key once it is back to a full
//! bucket (`sweep`, every few seconds), so their memory follows the
//! clients of the last seconds, not every client ever seen.
//!
//! Over a limit nothing is done for the request: the caller answers
//! `rate_limited` with the wait the bucket computed, and an accepted
//! message is never dropped.

use super::config::{Rate, RatesConfig};
use crate::error::ServerError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use magpie_core::UserId;
use magpie_proto::ErrorCode;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// One keyed limiter, or none when its rate is 0.
pub struct Bucket<K: Hash + Eq + Clone>(Option<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> Bucket<K> {
    pub fn new(rate: Rate) -> Bucket<K> {
        let quota = (rate.rate > 0.0)
            .then(|| Quota::with_period(Duration::from_secs_f64(1.0 / rate.rate)))
            .flatten()
            .map(|q| q.allow_burst(NonZeroU32::new(rate.burst.max(1)).unwrap_or(NonZeroU32::MIN)));
        Bucket(quota.map(DefaultKeyedRateLimiter::keyed))
    }

    /// Takes `n` tokens for `key`, or answers how long to wait (ms).
    pub fn take(&self, key: &K, n: u32) -> Result<(), u64> {
        let Some(l) = &self.0 else { return Ok(()) };
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        match l.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err((wait.as_millis() as u64).max(1))
            }
            // More at once than the bucket ever holds: take what a full
            // bucket allows, one at a time is the caller's way forward.
            Err(_) => Err(1_000),
        }
    }

    fn sweep(&self) {
        if let Some(l) = &self.0 {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Every bucket of a node.
pub struct Limits {
    pub http_ip: Bucket<IpAddr>,
    pub connect_ip: Bucket<IpAddr>,
    pub login_ip: Bucket<IpAddr>,
    pub register_ip: Bucket<IpAddr>,
    pub frames_user: Bucket<UserId>,
    pub sends_user: Bucket<UserId>,
    pub typing_user: Bucket<UserId>,
    pub lookups_user: Bucket<UserId>,
}

impl Limits {
    pub fn new(r: &RatesConfig) -> Limits {
        Limits {
            http_ip: Bucket::new(r.http_ip),
            connect_ip: Bucket::new(r.connect_ip),
            login_ip: Bucket::new(r.login_ip),
            register_ip: Bucket::new(r.register_ip),
            frames_user: Bucket::new(r.frames_user),
            sends_user: Bucket::new(r.sends_user),
            typing_user: Bucket::new(r.typing_user),
            lookups_user: Bucket::new(r.lookups_user),
        }
    }

    pub fn sweep(&self) {
        self.http_ip.sweep();
        self.connect_ip.sweep();
        self.login_ip.sweep();
        self.register_ip.sweep();
        self.frames_user.sweep();
        self.sends_user.sweep();
        self.typing_user.sweep();
        self.lookups_user.sweep();
    }

    /// `n` messages from `user`.
    pub fn send(&self, user: UserId, n: u32) -> Result<(), ServerError> {
        self.sends_user
            .take(&user, n)
            .map_err(|ms| limited(ms, "messages"))
    }
}

impl Limits {
    /// One typing indicator of `user` forwarded.
    pub fn typing(&self, user: UserId) -> Result<(), ServerError> {
        self.typing_user
            .take(&user, 1)
            .map_err(|ms| limited(ms, "typing indicators"))
    }

    /// One user look-up by `user`.
    pub fn lookup(&self, user: UserId) -> Result<(), ServerError> {
        self.lookups_user
            .take(&user, 1)
            .map_err(|ms| limited(ms, "user look-ups"))
    }
}

/// The error of a limit that said wait `ms`.
pub fn limited(ms: u64, what: &str) -> ServerError {
    ServerError::Limited(
        ErrorCode::RateLimited,
        ms,
        format!("too many {what}: retry in {ms} ms"),
    )
}

/// Open connections per address on this node.
pub struct ConnsPerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Held by a connection for its life; gives its slot back when dropped.
pub struct IpSlot {
    owner: Arc<ConnsPerIp>,
    ip: IpAddr,
}

impl ConnsPerIp {
    pub fn new(max: usize) -> Arc<ConnsPerIp> {
        Arc::new(ConnsPerIp {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, if it has room.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            owner: self.clone(),
            ip,
        })
    }

    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.lock().get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_how_long_to_wait() {
        let b: Bucket<u32> = Bucket::new(Rate::new(10.0, 5));
        for _ in 0..5 {
            assert_eq!(b.take(&1, 1), Ok(()));
        }
        let wait = b.take(&1, 1).expect_err("over the burst");
        assert!((1..=100).contains(&wait), "one token per 100 ms: {wait}");
        assert_eq!(b.take(&2, 1), Ok(()), "keys are separate");
        assert!(b.take(&3, 50).is_err(), "more than a full bucket");
        let off: Bucket<u32> = Bucket::new(Rate::new(0.0, 0));
        for _ in 0..1000 {
            assert_eq!(off.take(&1, 1), Ok(()));
        }
    }

    #[test]
    fn connection_slots_are_given_back() {
        let c = ConnsPerIp::new(2);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let a = c.admit(ip).expect("first");
        let _b = c.admit(ip).expect("second");
        assert!(c.admit(ip).is_none(), "third over the cap");
        assert!(c.admit("192.0.2.2".parse().expect("ip")).is_some());
        drop(a);
        assert_eq!(c.open(ip), 1);
        assert!(c.admit(ip).is_some());
    }
}
