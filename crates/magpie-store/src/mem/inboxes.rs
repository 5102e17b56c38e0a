//! Feed inboxes in process: per materialised follower, the newest post
//! keys pushed to it (Redis keeps the same in one sorted set per follower
//! with a marker member: `redis_state/inboxes.rs`). A follower's presence
//! in the map is its materialisation; the cap bounds each inbox.

use magpie_core::{PostId, UserId};
use std::collections::{BTreeSet, HashMap};

#[derive(Default)]
pub(super) struct Inboxes(HashMap<UserId, BTreeSet<(PostId, UserId)>>);

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
    pub fn push(&mut self, items: &[(UserId, UserId, PostId)], cap: usize) {
        for (follower, author, post) in items {
            if let Some(set) = self.0.get_mut(follower) {
                add(set, std::iter::once((*author, *post)), cap);
            }
        }
    }

    pub fn fill(&mut self, user: UserId, keys: &[(UserId, PostId)], cap: usize) {
        add(self.0.entry(user).or_default(), keys.iter().copied(), cap);
    }

    pub fn page(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Option<Vec<(UserId, PostId)>> {
        let set = self.0.get(&user)?;
        let below = before.map_or(i64::MAX, |p| p.0);
        let keys = set.range(..(PostId(below), UserId(i64::MIN)));
        Some(
            keys.rev()
                .take(n)
                .map(|(post, author)| (*author, *post))
                .collect(),
        )
    }

    pub fn remove(&mut self, user: UserId, keys: &[(UserId, PostId)]) {
        if let Some(set) = self.0.get_mut(&user) {
            for (author, post) in keys {
                set.remove(&(*post, *author));
            }
        }
    }
}
