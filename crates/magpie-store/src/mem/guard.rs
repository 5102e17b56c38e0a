//! The edge guard's keyspaces in memory: counters with a fixed window,
//! one-time values, and the ban decisions with their version (the Redis
//! layout is in `redis_state/guard.rs`).

use super::maps::TtlMap;
use std::collections::BTreeMap;

/// Counters and values kept at most; past it the ones closest to expiry
/// go first (every key here has a TTL, so this only bounds a flood of
/// distinct keys).
const GUARD_CAP: usize = 200_000;

pub(super) struct Guard {
    pub(super) counters: TtlMap<String, u64>,
    pub(super) values: TtlMap<String, String>,
    /// id → decision JSON, and the version.
    pub(super) decisions: BTreeMap<String, String>,
    pub(super) version: u64,
}

impl Guard {
    pub(super) fn new() -> Self {
        Guard {
            counters: TtlMap::with_cap(GUARD_CAP),
            values: TtlMap::with_cap(GUARD_CAP),
            decisions: BTreeMap::new(),
            version: 0,
        }
    }

    pub(super) fn hit(&mut self, key: &str, ttl_ms: u64) -> u64 {
        if let Some(n) = self.counters.get_mut(&key.to_string()) {
            *n += 1;
            return *n;
        }
        self.counters.put(key.to_string(), 1, ttl_ms.max(1), false);
        1
    }
}
