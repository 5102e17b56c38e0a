//! Feed inboxes in process: per marked follower, the post keys pushed to
//! it, its floor and when it expires (Redis keeps the same in one sorted
//! set per follower, the floor in a marker member: `redis_state/inboxes.rs`).
//! The cap bounds each inbox; expired inboxes are dropped on a mark once
//! their number has doubled since the last sweep (so a sweep's cost is
//! spread over as many marks as it walks inboxes).

use crate::state::{FLOOR_UNKNOWN, Floor, InboxPage};
use magpie_core::{PostId, UserId};
use std::collections::{BTreeSet, HashMap};

/// Inboxes kept at least before a mark sweeps the expired ones.
const SWEEP_ABOVE: usize = 10_000;

struct Inbox {
    until: i64,
    floor: PostId,
    big_seen: i64,
    keys: BTreeSet<(PostId, UserId)>,
}

impl Inbox {
    /// Adds keys and keeps the newest `cap`. Keys dropped raise the floor
    /// to the oldest key kept: every post at or above it is still here.
    fn add(&mut self, keys: impl Iterator<Item = (UserId, PostId)>, cap: usize) {
        self.keys.extend(keys.map(|(author, post)| (post, author)));
        let mut dropped = false;
        while self.keys.len() > cap {
            self.keys.pop_first();
            dropped = true;
        }
        if dropped && let Some((oldest, _)) = self.keys.first() {
            self.floor = self.floor.max(*oldest);
        }
    }
}

pub(super) struct Inboxes {
    all: HashMap<UserId, Inbox>,
    /// The next sweep comes when there are more inboxes than this.
    sweep_at: usize,
}

impl Default for Inboxes {
    fn default() -> Self {
        Inboxes {
            all: HashMap::new(),
            sweep_at: SWEEP_ABOVE,
        }
    }
}

impl Inboxes {
    fn live(&mut self, user: UserId, now: i64) -> Option<&mut Inbox> {
        self.all.get_mut(&user).filter(|i| i.until > now)
    }

    /// Drops the expired inboxes once their number doubled since the last
    /// sweep: each mark pays for a constant share of the walk.
    fn sweep(&mut self, now: i64) {
        if self.all.len() > self.sweep_at {
            self.all.retain(|_, i| i.until > now);
            self.sweep_at = SWEEP_ABOVE.max(2 * self.all.len());
        }
    }

    pub fn push(&mut self, items: &[(UserId, UserId, PostId)], cap: usize, now: i64) {
        for (follower, author, post) in items {
            if let Some(inbox) = self.live(*follower, now) {
                inbox.add(std::iter::once((*author, *post)), cap);
            }
        }
    }

    pub fn fill(
        &mut self,
        user: UserId,
        keys: &[(UserId, PostId)],
        floor: Floor,
        cap: usize,
        (now, until): (i64, i64),
    ) {
        let set = match floor {
            Floor::Unknown => Some(FLOOR_UNKNOWN),
            Floor::Set(f) => Some(f),
            Floor::Keep | Floor::Settle(..) => None,
        };
        let inbox = match set {
            Some(floor) => {
                self.sweep(now);
                let inbox = self.all.entry(user).or_insert_with(|| Inbox {
                    until,
                    floor,
                    big_seen: 0,
                    keys: BTreeSet::new(),
                });
                if inbox.until <= now {
                    inbox.keys.clear();
                }
                inbox.floor = floor;
                inbox.big_seen = 0;
                inbox
            }
            None => match self.live(user, now) {
                Some(inbox) => inbox,
                None => return,
            },
        };
        if let Floor::Settle(f, seen) = floor
            && inbox.floor == FLOOR_UNKNOWN
        {
            inbox.floor = f;
            inbox.big_seen = seen;
        }
        inbox.until = until;
        inbox.add(keys.iter().copied(), cap);
    }

    pub fn page(
        &mut self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
        now: i64,
    ) -> Option<InboxPage> {
        let inbox = self.live(user, now)?;
        let below = before.map_or(i64::MAX, |p| p.0);
        let keys = inbox.keys.range(..(PostId(below), UserId(i64::MIN)));
        let keys = keys
            .rev()
            .take(n)
            .map(|(post, author)| (*author, *post))
            .collect();
        Some(InboxPage {
            keys,
            floor: inbox.floor,
            big_seen: inbox.big_seen,
        })
    }

    pub fn drop_inbox(&mut self, user: UserId) {
        self.all.remove(&user);
    }

    pub fn remove(&mut self, user: UserId, keys: &[(UserId, PostId)]) {
        if let Some(inbox) = self.all.get_mut(&user) {
            for (author, post) in keys {
                inbox.keys.remove(&(*post, *author));
            }
        }
    }
}
