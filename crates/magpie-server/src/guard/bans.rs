//! Ban decisions: who is refused (an address, a range, a user), why, by
//! whom and until when. The truth is in the fast state (`decision_*`), so
//! a ban made on one node holds on all; each node keeps a local copy,
//! re-read whenever the decisions' version moves (checked every
//! `guard.ban_refresh_ms`), so a ban costs no round trip per request.
//!
//! Invariants:
//! - an allow-listed address is never banned (a decision for it is not
//!   made, and an address ban never refuses it); user bans hold whatever
//!   the address;
//! - a removal is a tombstone (`removed_ms`) kept a day, so a bouncer's
//!   stream (`/v1/decisions/stream`) learns of it; expired decisions are
//!   dropped from the fast state a day after their end by one node at a
//!   time (a lease);
//! - a local check is a read lock and a hash look-up; with no ban at all,
//!   one atomic load.

use super::addr::{Ranges, canonical};
use crate::error::{Result, ServerError};
use ipnet::IpNet;
use magpie_bus::Relay;
use magpie_core::{UserId, now_ms};
use magpie_store::State;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Where a change of the decisions is announced (an empty frame).
pub const BANS_SUBJECT: &str = "guard.bans";

/// How long removed and expired decisions are kept for bouncers' streams.
const TOMBSTONE_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ip,
    Range,
    User,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// `{scope}:{value}`: one decision per target, a new one replaces it.
    pub id: String,
    /// A number for bouncers (CrowdSec decisions are numbered).
    pub num: u64,
    pub scope: Scope,
    /// The address, the CIDR range, or the user id.
    pub value: String,
    /// The rule that fired, or what an operator wrote.
    pub reason: String,
    /// `detector`, `admin`, `chain` …
    pub origin: String,
    pub created_ms: i64,
    pub until_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_ms: Option<i64>,
}

impl Decision {
    pub fn new(scope: Scope, value: String, reason: &str, origin: &str, secs: u64) -> Decision {
        let now = now_ms();
        Decision {
            id: format!("{}:{value}", scope_name(scope)),
            num: (now as u64) << 8 | u64::from(rand::random::<u8>()),
            scope,
            value,
            reason: reason.into(),
            origin: origin.into(),
            created_ms: now,
            until_ms: now.saturating_add((secs as i64).saturating_mul(1000)),
            removed_ms: None,
        }
    }

    /// In force at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.removed_ms.is_none() && self.until_ms > now
    }

    /// When it stopped being in force, if it did by `now`.
    pub fn ended(&self, now: i64) -> Option<i64> {
        self.removed_ms
            .or((self.until_ms <= now).then_some(self.until_ms))
    }
}

pub fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Ip => "ip",
        Scope::Range => "range",
        Scope::User => "user",
    }
}

/// The decisions in force, indexed for the checks.
#[derive(Default)]
struct BanSet {
    ips: HashMap<IpAddr, i64>,
    ranges: Vec<(IpNet, i64)>,
    users: HashMap<UserId, i64>,
    all: Vec<Decision>,
}

impl BanSet {
    fn build(all: Vec<Decision>, now: i64) -> BanSet {
        let mut set = BanSet::default();
        for d in all.iter().filter(|d| d.active(now)) {
            match d.scope {
                Scope::Ip => {
                    if let Ok(ip) = d.value.parse::<IpAddr>() {
                        set.ips.insert(canonical(ip), d.until_ms);
                    }
                }
                Scope::Range => {
                    if let Ok(net) = d.value.parse::<IpNet>() {
                        set.ranges.push((net, d.until_ms));
                    }
                }
                Scope::User => {
                    if let Ok(u) = d.value.parse::<i64>() {
                        set.users.insert(UserId(u), d.until_ms);
                    }
                }
            }
        }
        set.all = all;
        set
    }

    fn ip_until(&self, ip: IpAddr, now: i64) -> Option<i64> {
        let by_ip = self.ips.get(&ip).copied().filter(|u| *u > now);
        by_ip.or_else(|| {
            self.ranges
                .iter()
                .find(|(n, u)| *u > now && n.contains(&ip))
                .map(|(_, u)| *u)
        })
    }
}

pub struct Bans {
    state: State,
    relay: Relay,
    allow: Ranges,
    set: RwLock<Arc<BanSet>>,
    version: AtomicU64,
    any: AtomicBool,
}

fn banned(what: &str, until: i64) -> ServerError {
    ServerError::Banned(format!(
        "{what} is banned for {} more seconds",
        ((until - now_ms()).max(0) as u64).div_ceil(1000)
    ))
}

impl Bans {
    pub fn new(state: State, relay: Relay, allow: Ranges) -> Bans {
        Bans {
            state,
            relay,
            allow,
            set: RwLock::new(Arc::new(BanSet::default())),
            // Never a real version: the first refresh reads.
            version: AtomicU64::new(u64::MAX),
            any: AtomicBool::new(false),
        }
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.contains(ip)
    }

    /// Refuses a banned address (never an allow-listed one).
    pub fn check_ip(&self, ip: IpAddr) -> Result<()> {
        if !self.any.load(Ordering::Relaxed) || self.allowed(ip) {
            return Ok(());
        }
        let ip = canonical(ip);
        match self.set.read().ip_until(ip, now_ms()) {
            Some(until) => Err(banned("this address", until)),
            None => Ok(()),
        }
    }

    /// Refuses a banned user.
    pub fn check_user(&self, user: UserId) -> Result<()> {
        if !self.any.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.set.read().users.get(&user) {
            Some(until) if *until > now_ms() => Err(banned("this account", *until)),
            _ => Ok(()),
        }
    }

    /// Whether a decision for this target is in force (the detector does
    /// not ban twice).
    pub fn in_force(&self, id: &str) -> bool {
        let now = now_ms();
        self.set
            .read()
            .all
            .iter()
            .any(|d| d.id == id && d.active(now))
    }

    /// Every decision known, tombstones included.
    pub fn all(&self) -> Vec<Decision> {
        self.set.read().all.clone()
    }

    /// Makes a decision (replacing any for the same target) and applies it
    /// on this node at once. An allow-listed address cannot be banned.
    pub async fn add(&self, d: Decision) -> Result<Decision> {
        let listed = match d.scope {
            Scope::Ip => d.value.parse::<IpAddr>().ok().map(|ip| self.allowed(ip)),
            Scope::Range => d
                .value
                .parse::<IpNet>()
                .ok()
                .map(|n| self.allowed(n.network()) || self.allowed(n.broadcast())),
            Scope::User => d.value.parse::<i64>().ok().map(|_| false),
        };
        match listed {
            None => return Err(ServerError::bad_field(format!("bad value {:?}", d.value))),
            Some(true) => {
                return Err(ServerError::Forbidden(format!(
                    "{} is on the allow-list (guard.allow)",
                    d.value
                )));
            }
            Some(false) => {}
        }
        let json = serde_json::to_string(&d).map_err(|e| ServerError::Internal(e.to_string()))?;
        self.state.decision_put(&d.id, &json).await?;
        tracing::warn!(target: "magpie::guard", id = %d.id, reason = %d.reason,
            origin = %d.origin, until_ms = d.until_ms, "ban decision");
        crate::metrics::meters().bans.increment(1);
        self.changed().await?;
        Ok(d)
    }

    /// Lifts decision `id` (a tombstone, so bouncers hear of it); false if
    /// none is in force.
    pub async fn remove(&self, id: &str) -> Result<bool> {
        let now = now_ms();
        let Some(mut d) = self.all().into_iter().find(|d| d.id == id && d.active(now)) else {
            return Ok(false);
        };
        d.removed_ms = Some(now);
        let json = serde_json::to_string(&d).map_err(|e| ServerError::Internal(e.to_string()))?;
        self.state.decision_put(id, &json).await?;
        self.changed().await?;
        Ok(true)
    }

    /// After a change here: this node's copy at once, the others told.
    async fn changed(&self) -> Result<()> {
        if let Err(e) = self.relay.publish(BANS_SUBJECT, bytes::Bytes::new()) {
            // The others' poll finds it (`guard.ban_refresh_ms`).
            tracing::warn!(error = %e, "ban change not announced");
        }
        self.refresh().await
    }

    /// Re-reads the decisions if their version moved.
    pub async fn refresh(&self) -> Result<()> {
        let ver = self.state.decisions_version().await?;
        if ver == self.version.load(Ordering::Acquire) {
            return Ok(());
        }
        let (ver, raw) = self.state.decisions().await?;
        let all: Vec<Decision> = raw
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect();
        let set = BanSet::build(all, now_ms());
        let any = !(set.ips.is_empty() && set.ranges.is_empty() && set.users.is_empty());
        *self.set.write() = Arc::new(set);
        self.any.store(any, Ordering::Relaxed);
        self.version.store(ver, Ordering::Release);
        Ok(())
    }

    /// Drops from the fast state what ended more than a day ago.
    pub async fn purge(&self) -> Result<usize> {
        let now = now_ms();
        let mut n = 0;
        for d in self.all() {
            if d.ended(now).is_some_and(|t| now - t > TOMBSTONE_MS)
                && self.state.decision_remove(&d.id).await?
            {
                n += 1;
            }
        }
        Ok(n)
    }
}
