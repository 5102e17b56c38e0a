//! Typing indicators (docs/protocol.md, "Typing"): ephemeral, like
//! presence. A `typing` request is checked (the user is in the
//! conversation), throttled, and pushed to the other members' online
//! devices over the relay; it is never stored, published on the bus,
//! acknowledged or resent, and a lost one is not recovered by sync.
//!
//! Cost is bounded twice: a user's repeated "active" for one conversation
//! is forwarded at most once per `typing.repeat_ms` on a node (receivers
//! keep showing it for `typing.ttl_ms`, longer than the repeat), and at
//! most `guard.rates.typing_user` indicators a second per user are
//! forwarded at all. Groups of more than `typing.max_group_members`
//! members get none: there, as for presence (§5.7), an indicator would be
//! a storm.

use super::delivery::{Delivery, Notice};
use super::groups::Groups;
use super::users::Users;
use crate::error::{Result, ServerError};
use crate::guard::Guard;
use magpie_core::{ConvId, UserId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypingConfig {
    /// How long receivers show an indicator after the last one they got
    /// (told to them in each `typing` frame).
    pub ttl_ms: u64,
    /// A user's "active" for a conversation within this of the last one
    /// forwarded from this node is not forwarded again.
    pub repeat_ms: u64,
    /// Groups with more members get no typing indicators (0: no group does).
    pub max_group_members: i64,
}

impl Default for TypingConfig {
    fn default() -> Self {
        TypingConfig {
            ttl_ms: 6_000,
            repeat_ms: 2_000,
            max_group_members: 100,
        }
    }
}

/// Past this many remembered (user, conversation) pairs, the expired ones
/// are dropped: the memory follows who typed in the last `repeat_ms`.
const PRUNE_AT: usize = 4_096;

pub struct Typing {
    cfg: TypingConfig,
    groups: Arc<Groups>,
    delivery: Arc<Delivery>,
    guard: Arc<Guard>,
    users: Arc<Users>,
    /// When each (user, conversation) last had an "active" forwarded here.
    last: Mutex<HashMap<(UserId, ConvId), Instant>>,
}

impl Typing {
    pub fn new(
        cfg: TypingConfig,
        groups: Arc<Groups>,
        delivery: Arc<Delivery>,
        guard: Arc<Guard>,
        users: Arc<Users>,
    ) -> Typing {
        Typing {
            cfg,
            groups,
            delivery,
            guard,
            users,
            last: Mutex::default(),
        }
    }

    /// `user` is typing in `conv` (`active`) or stopped. Refused when the
    /// user is not in the conversation (`not_found`, as for history) or
    /// over the rate (`rate_limited`); a repeat within `repeat_ms` and an
    /// indicator in a group too large are accepted and not forwarded.
    pub async fn typing(&self, user: UserId, conv: &ConvId, active: bool) -> Result<()> {
        let receivers = self.receivers(user, conv).await?;
        if !self.forward_now(user, conv, active) {
            return Ok(());
        }
        self.guard.limits.typing(user)?;
        let notice = Notice::Typing {
            conv: conv.clone(),
            user,
            name: self.users.shown_name(user).await?,
            active,
            ttl_ms: self.cfg.ttl_ms,
        };
        match receivers {
            Receivers::Peer(peer) => self.delivery.notify(peer, notice).await,
            Receivers::Group(g, version) => {
                self.delivery.notify_members(g, version, user, notice).await
            }
            Receivers::None => {}
        }
        Ok(())
    }

    /// Who is told, once the user's place in the conversation is checked.
    async fn receivers(&self, user: UserId, conv: &ConvId) -> Result<Receivers> {
        if let Some(peer) = conv.peer_of(user) {
            // Typing to yourself tells nobody.
            return Ok(if peer == user {
                Receivers::None
            } else {
                Receivers::Peer(peer)
            });
        }
        let not_found = || ServerError::NotFound(format!("no conversation {conv}"));
        let g = conv.group_id().ok_or_else(not_found)?;
        let (info, _) = self.groups.membership(user, g).await?;
        if info.dissolved {
            return Err(ServerError::Forbidden(format!("group {g} is dissolved")));
        }
        if info.members > self.cfg.max_group_members {
            return Ok(Receivers::None);
        }
        Ok(Receivers::Group(g, info.member_version))
    }

    /// Whether this indicator goes out: a stop always does (and lets the
    /// next start through), a start unless one went out within
    /// `repeat_ms`.
    fn forward_now(&self, user: UserId, conv: &ConvId, active: bool) -> bool {
        let now = Instant::now();
        let repeat = Duration::from_millis(self.cfg.repeat_ms);
        let mut last = self.last.lock();
        let key = (user, conv.clone());
        if !active {
            last.remove(&key);
            return true;
        }
        if last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < repeat)
        {
            return false;
        }
        if last.len() >= PRUNE_AT {
            last.retain(|_, t| now.duration_since(*t) < repeat);
        }
        last.insert(key, now);
        true
    }
}

enum Receivers {
    Peer(UserId),
    /// The group and the membership version its member list is read at.
    Group(magpie_core::GroupId, i64),
    None,
}
