//! Feed inboxes in process: per materialised follower, the newest post
//! keys pushed to it and when it expires (Redis keeps the same in one
//! sorted set per follower with a marker member and a TTL:
//! `redis_state/inboxes.rs`). A follower's live entry in the map is its
//! materialisation; the cap bounds each inbox, and expired inboxes are
//! dropped on the next fill once there are many.

use magpie_core::{PostId, UserId};
use std::collections::{BTreeSet, HashMap};

/// Inboxes kept before a fill sweeps the expired ones.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Default)]
struct Inbox {
    until: i64,
    keys: BTreeSet<(PostId, UserId)>,
}

#[derive(Default)]
pub(super) struct Inboxes(HashMap<UserId, Inbox>);

fn add(
    set: &mut BTreeSet<(PostId, UserId)>,
    keys: impl Iterator<Item = (UserId, PostId)>,
    cap: usize,
) {
    set.extend(keys.map(|(author, post)| (post, author)));
    while set.len() > cap {
        set.pop_first();
    }
}

impl Inboxes {
    /// Adds to live inboxes only (an expired one is as good as gone).
    pub fn push(&mut self, items: &[(UserId, UserId, PostId)], cap: usize) {
        let now = magpie_core::now_ms();
        for (follower, author, post) in items {
            if let Some(inbox) = self.0.get_mut(follower).filter(|i| i.until > now) {
                add(&mut inbox.keys, std::iter::once((*author, *post)), cap);
            }
        }
    }

    pub fn fill(&mut self, user: UserId, keys: &[(UserId, PostId)], cap: usize, until: i64) {
        if self.0.len() > SWEEP_ABOVE {
            let now = magpie_core::now_ms();
            self.0.retain(|_, i| i.until > now);
        }
        let now = magpie_core::now_ms();
        let inbox = self.0.entry(user).or_default();
        if inbox.until <= now {
            inbox.keys.clear();
        }
        inbox.until = until;
        add(&mut inbox.keys, keys.iter().copied(), cap);
    }

    pub fn page(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
        now: i64,
    ) -> Option<Vec<(UserId, PostId)>> {
        let inbox = self.0.get(&user).filter(|i| i.until > now)?;
        let below = before.map_or(i64::MAX, |p| p.0);
        let keys = inbox.keys.range(..(PostId(below), UserId(i64::MIN)));
        Some(
            keys.rev()
                .take(n)
                .map(|(post, author)| (*author, *post))
                .collect(),
        )
    }

    pub fn remove(&mut self, user: UserId, keys: &[(UserId, PostId)]) {
        if let Some(inbox) = self.0.get_mut(&user) {
            for (author, post) in keys {
                inbox.keys.remove(&(*post, *author));
            }
        }
    }
}
