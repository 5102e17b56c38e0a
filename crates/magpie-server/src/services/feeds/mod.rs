//! Follow feeds (docs/feeds.md): the follow graph and blocks here, posts
//! in `posts.rs`, the home feed in `read.rs`; the fan-out is the `feeds`
//! worker (`workers/fanout.rs`).
//!
//! Invariants:
//! - a post is acknowledged only once it is in its author's outbox (the
//!   store) and its `Posted` event is on the durable bus;
//! - the outboxes and the follow edges are the truth; an inbox (state)
//!   holds keys only and can be lost: a read then pulls;
//! - a feed shows posts only of authors the reader follows now and does
//!   not block, and never a deleted post, whatever an inbox still holds.

mod import;
mod posts;
mod read;

pub use read::FeedPage;

/// Posts or users per page when a request does not say.
pub const DEFAULT_PAGE: usize = 20;

use super::{Events, Users};
use crate::config::Config;
use crate::error::{Result, ServerError};
use magpie_core::{MsgIdGen, UserId, now_ms};
use magpie_store::{FollowCounts, State, Store, StoreError};
use std::sync::Arc;

pub struct Feeds {
    cfg: Arc<Config>,
    store: Store,
    state: State,
    events: Events,
    users: Arc<Users>,
    ids: Arc<MsgIdGen>,
}

impl Feeds {
    pub fn new(
        cfg: Arc<Config>,
        store: Store,
        state: State,
        events: Events,
        users: Arc<Users>,
        ids: Arc<MsgIdGen>,
    ) -> Feeds {
        Feeds {
            cfg,
            store,
            state,
            events,
            users,
            ids,
        }
    }

    /// `target` exists and is not `user`.
    async fn other_user(&self, user: UserId, target: UserId) -> Result<()> {
        if user == target {
            return Err(ServerError::bad_field("user: not yourself"));
        }
        if !self.users.exists(target).await? {
            return Err(ServerError::NotFound(format!("no user {target}")));
        }
        Ok(())
    }

    /// `user` follows `target`; `true` when it is new. The followee's side
    /// first: it holds the followee's block, which must stop the follow
    /// before the follower's side (read by the feed) exists; a block of the
    /// follower's own makes its side refuse, and the followee's side is
    /// taken back. The reader's inbox is dropped, also when the follow was
    /// there already (a retry after a failure between the edge and the
    /// drop): it does not hold the followee's earlier posts, and the next
    /// read pulls and fills it.
    pub async fn follow(&self, user: UserId, target: UserId) -> Result<bool> {
        self.other_user(user, target).await?;
        self.follow_edges(user, target).await
    }

    /// `follow` without its checks of the two users.
    async fn follow_edges(&self, user: UserId, target: UserId) -> Result<bool> {
        let (feeds, at) = (self.store.feeds(), now_ms());
        let theirs = feeds
            .add_follower(target, user, at)
            .await
            .map_err(blocked)?;
        let mine = match feeds.add_following(user, target, at).await {
            Ok(new) => new,
            Err(e) => {
                feeds.remove_follower(target, user).await?;
                return Err(blocked(e));
            }
        };
        self.forget_inbox(user).await;
        Ok(mine || theirs)
    }

    /// `user` stops following `target`; `true` when it did. The follower's
    /// side first (the feed stops showing the followee at once); keys left
    /// in the inbox are filtered out on read.
    pub async fn unfollow(&self, user: UserId, target: UserId) -> Result<bool> {
        let feeds = self.store.feeds();
        let mine = feeds.remove_following(user, target).await?;
        let theirs = feeds.remove_follower(target, user).await?;
        Ok(mine || theirs)
    }

    /// `user` blocks `target`: neither follows the other any more, `target`
    /// cannot follow `user`, and `target`'s posts never show in `user`'s feed.
    pub async fn block(&self, user: UserId, target: UserId) -> Result<bool> {
        self.other_user(user, target).await?;
        let feeds = self.store.feeds();
        let new = feeds.set_block(user, target, true, now_ms()).await?;
        self.unfollow(user, target).await?;
        self.unfollow(target, user).await?;
        Ok(new)
    }

    pub async fn unblock(&self, user: UserId, target: UserId) -> Result<bool> {
        Ok(self
            .store
            .feeds()
            .set_block(user, target, false, now_ms())
            .await?)
    }

    /// A page of whom `user` follows, by id above `after`.
    pub async fn following(&self, user: UserId, after: UserId, n: usize) -> Result<Vec<UserId>> {
        let n = n.clamp(1, self.cfg.limits.max_page);
        Ok(self.store.feeds().following(user, after, n).await?)
    }

    /// A page of who follows `user`, by id above `after`.
    pub async fn followers(&self, user: UserId, after: UserId, n: usize) -> Result<Vec<UserId>> {
        let n = n.clamp(1, self.cfg.limits.max_page);
        Ok(self.store.feeds().followers(user, after, n).await?)
    }

    /// A page of whom `user` blocks (their own list only).
    pub async fn blocked(&self, user: UserId, after: UserId, n: usize) -> Result<Vec<UserId>> {
        let n = n.clamp(1, self.cfg.limits.max_page);
        Ok(self.store.feeds().blocked(user, after, n).await?)
    }

    pub async fn counts(&self, user: UserId) -> Result<FollowCounts> {
        if !self.users.exists(user).await? {
            return Err(ServerError::NotFound(format!("no user {user}")));
        }
        Ok(self.store.feeds().follow_counts(user).await?)
    }

    /// Drops `user`'s inbox; a failure only leaves a fast path behind
    /// (the followee's older posts come from the next pull past it).
    async fn forget_inbox(&self, user: UserId) {
        if let Err(e) = self.state.feed_drop(user).await {
            tracing::warn!(%user, error = %e, "feed inbox not dropped");
        }
    }
}

/// A block refusing a follow: the caller's answer is `forbidden`.
fn blocked(e: StoreError) -> ServerError {
    match e {
        StoreError::Forbidden(_) => ServerError::Forbidden("a block stops this follow".into()),
        other => other.into(),
    }
}
