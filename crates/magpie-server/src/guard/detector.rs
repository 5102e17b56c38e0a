//! The intrusion detector: rules as leaky buckets over access events
//! (CrowdSec's model). Each rule keeps one bucket per address or user; an
//! event the rule matches pours one unit in, the bucket leaks
//! `leak_per_sec`, and the unit that overflows `capacity` bans the bucket's
//! owner for `ban_secs` (a decision in `bans.rs`).
//!
//! One node runs it at a time (the `guard-detector` lease, among the nodes
//! with the `workers` role) and reads every node's events from the relay
//! plus the lines of followed gateway logs, so an attack spread over nodes
//! fills one bucket. Buckets live in memory: a new holder starts empty,
//! which delays a ban by at most one bucket's fill.
//!
//! Invariants: events answered `banned` count toward nothing (a ban's own
//! refusals never make another); allow-listed addresses fill no bucket;
//! time is the detector's own clock, not the event's, so an old log line
//! replayed weighs what a new one does. Buckets are bounded in number:
//! empty ones are dropped on every sweep.

use super::bans::{Bans, Decision, Scope};
use super::config::RuleConfig;
use magpie_core::AccessEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Buckets kept at most; past it, the emptiest go first.
const MAX_BUCKETS: usize = 200_000;

struct Bucket {
    level: f64,
    at: Instant,
}

pub struct Detector {
    rules: Vec<RuleConfig>,
    bans: Arc<Bans>,
    buckets: HashMap<(usize, String), Bucket>,
}

/// Whether `rule` counts `e`.
pub fn matches(rule: &RuleConfig, e: &AccessEvent) -> bool {
    if e.code.as_deref() == Some("banned") {
        return false;
    }
    if !rule.path_prefix.is_empty() && !e.path.starts_with(&rule.path_prefix) {
        return false;
    }
    if rule.miss && !e.miss {
        return false;
    }
    let by_code = match &e.code {
        Some(c) => rule.codes.iter().any(|r| r == c),
        None => rule.status.contains(&e.status),
    };
    let filtered = !rule.codes.is_empty() || !rule.status.is_empty();
    !filtered || by_code
}

impl Detector {
    pub fn new(rules: Vec<RuleConfig>, bans: Arc<Bans>) -> Detector {
        Detector {
            rules,
            bans,
            buckets: HashMap::new(),
        }
    }

    /// Pours the events in; returns the decisions to make (the caller
    /// makes them: that needs the fast state).
    pub fn feed(&mut self, events: &[AccessEvent]) -> Vec<Decision> {
        let now = Instant::now();
        let mut out: Vec<Decision> = Vec::new();
        for e in events {
            for (i, rule) in self.rules.iter().enumerate() {
                if !matches(rule, e) {
                    continue;
                }
                let (scope, key) = match rule.by.as_str() {
                    "user" => match e.user {
                        Some(u) => (Scope::User, u.0.to_string()),
                        None => continue,
                    },
                    _ => {
                        if self.bans.allowed(e.ip) {
                            continue;
                        }
                        (Scope::Ip, e.ip.to_string())
                    }
                };
                let b = self.buckets.entry((i, key.clone())).or_insert(Bucket {
                    level: 0.0,
                    at: now,
                });
                let leaked = now.duration_since(b.at).as_secs_f64() * rule.leak_per_sec;
                b.level = (b.level - leaked).max(0.0) + 1.0;
                b.at = now;
                if b.level > f64::from(rule.capacity) {
                    b.level = 0.0;
                    let d = Decision::new(scope, key, &rule.name, "detector", rule.ban_secs);
                    if !self.bans.in_force(&d.id) && !out.iter().any(|o| o.id == d.id) {
                        out.push(d);
                    }
                }
            }
        }
        if self.buckets.len() > MAX_BUCKETS {
            self.sweep();
        }
        out
    }

    /// Drops buckets that leaked empty; if still too many, the lowest.
    pub fn sweep(&mut self) {
        let now = Instant::now();
        let rules = &self.rules;
        self.buckets.retain(|(i, _), b| {
            let leak = rules.get(*i).map_or(1.0, |r| r.leak_per_sec);
            b.level - now.duration_since(b.at).as_secs_f64() * leak > 0.0
        });
        if self.buckets.len() > MAX_BUCKETS {
            let mut levels: Vec<f64> = self.buckets.values().map(|b| b.level).collect();
            levels.sort_by(f64::total_cmp);
            let cut = levels[self.buckets.len() - MAX_BUCKETS / 2];
            self.buckets.retain(|_, b| b.level > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::addr::Ranges;
    use crate::guard::config::default_rules;
    use magpie_store::State;
    use magpie_store::mem::MemState;

    fn event(ip: &str, path: &str, status: u16, code: Option<&str>) -> AccessEvent {
        AccessEvent {
            at_ms: 0,
            ip: ip.parse().expect("ip"),
            user: None,
            method: "GET".into(),
            path: path.into(),
            status,
            code: code.map(String::from),
            bytes: 0,
            latency_ms: 1.0,
            user_agent: None,
            miss: status == 404,
        }
    }

    fn detector() -> Detector {
        // Inside a runtime: the relay starts its heartbeat task.
        let relay = magpie_bus::Relay::new(
            magpie_bus::relay::MemRelay::open("detector-test", 64),
            magpie_bus::RelayOptions::default(),
        )
        .expect("relay");
        let bans = Bans::new(
            State::new(MemState::new()),
            relay,
            Ranges::new(&["127.0.0.0/8".parse().expect("net")]),
        );
        Detector::new(default_rules(), Arc::new(bans))
    }

    #[tokio::test]
    async fn invalid_tokens_overflow_into_one_ban() {
        let mut d = detector();
        let bad = event("192.0.2.9", "/v1/unread", 401, Some("unauthorized"));
        let out = d.feed(&vec![bad.clone(); 20]);
        assert!(out.is_empty(), "capacity 20 holds 20");
        let out = d.feed(&vec![bad; 5]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "ip:192.0.2.9");
        assert_eq!(out[0].reason, "invalid_tokens");
    }

    #[tokio::test]
    async fn gateway_lines_match_by_status_and_bans_and_allow_list_count_nothing() {
        let mut d = detector();
        let out = d.feed(&vec![event("198.51.100.3", "/v1/unread", 401, None); 30]);
        assert_eq!(out.len(), 1, "a gateway's 401s without a code count");
        let out = d.feed(&vec![
            event(
                "198.51.100.4",
                "/v1/unread",
                403,
                Some("banned")
            );
            500
        ]);
        assert!(out.is_empty(), "a ban's own refusals count toward nothing");
        let out = d.feed(&vec![
            event("127.0.0.1", "/v1/x", 404, Some("not_found"));
            500
        ]);
        assert!(out.is_empty(), "loopback is allow-listed");
        let out = d.feed(&vec![
            event(
                "198.51.100.5",
                "/v1/groups/9",
                404,
                Some("not_found")
            );
            60
        ]);
        assert_eq!(out.len(), 1, "look-ups of what does not exist");
        assert_eq!(out[0].reason, "lookups");
    }

    #[tokio::test]
    async fn a_normal_session_triggers_nothing() {
        let mut d = detector();
        let mut events = Vec::new();
        for _ in 0..100 {
            events.push(event("203.0.113.1", "/v1/messages", 200, None));
            events.push(event("203.0.113.1", "/v1/sync", 200, None));
        }
        events.push(event(
            "203.0.113.1",
            "/v1/auth/login",
            401,
            Some("bad_credentials"),
        ));
        events.push(event(
            "203.0.113.1",
            "/v1/unread",
            401,
            Some("token_expired"),
        ));
        assert!(d.feed(&events).is_empty());
        d.sweep();
    }
}
