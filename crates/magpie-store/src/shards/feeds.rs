//! The feed domain over shards: every half-edge, block and outbox row lives
//! on its user's shard (`map::of_id`), so each call but the two list reads
//! goes to one shard; `outboxes` and `posts` split their list by author and
//! merge the shards' answers newest first.

use super::ShardedStore;
use crate::backend::FeedStore;
use crate::error::Result;
use crate::store::{FollowCounts, PostOutcome};
use async_trait::async_trait;
use magpie_core::{NewPost, Post, PostId, UserId, newest_first};

impl ShardedStore {
    /// `items` grouped by the shard of each one's user, in shard order.
    fn by_user_shard<T: Copy>(&self, items: &[T], user: impl Fn(&T) -> UserId) -> Vec<Vec<T>> {
        let mut parts = vec![Vec::new(); self.shards.len()];
        for it in items {
            parts[self.map.of_id(user(it).0)].push(*it);
        }
        parts
    }
}

/// The shards' answers as one list, newest first, at most `limit`.
fn merge(parts: Vec<Vec<Post>>, limit: usize) -> Vec<Post> {
    let mut all: Vec<Post> = parts.into_iter().flatten().collect();
    newest_first(&mut all);
    all.truncate(limit);
    all
}

#[async_trait]
impl FeedStore for ShardedStore {
    async fn add_following(&self, follower: UserId, followee: UserId, at: i64) -> Result<bool> {
        let k = self.map.of_id(follower.0);
        self.on(k, |s| s.feeds().add_following(follower, followee, at))
            .await
    }

    async fn add_follower(&self, followee: UserId, follower: UserId, at: i64) -> Result<bool> {
        let k = self.map.of_id(followee.0);
        self.on(k, |s| s.feeds().add_follower(followee, follower, at))
            .await
    }

    async fn remove_following(&self, follower: UserId, followee: UserId) -> Result<bool> {
        let k = self.map.of_id(follower.0);
        self.on(k, |s| s.feeds().remove_following(follower, followee))
            .await
    }

    async fn remove_follower(&self, followee: UserId, follower: UserId) -> Result<bool> {
        let k = self.map.of_id(followee.0);
        self.on(k, |s| s.feeds().remove_follower(followee, follower))
            .await
    }

    async fn following(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        let k = self.map.of_id(user.0);
        self.on(k, |s| s.feeds().following(user, after, limit))
            .await
    }

    async fn followers(&self, user: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        let k = self.map.of_id(user.0);
        self.on(k, |s| s.feeds().followers(user, after, limit))
            .await
    }

    async fn follow_counts(&self, user: UserId) -> Result<FollowCounts> {
        let k = self.map.of_id(user.0);
        self.on(k, |s| s.feeds().follow_counts(user)).await
    }

    async fn set_block(&self, blocker: UserId, blocked: UserId, on: bool, at: i64) -> Result<bool> {
        let k = self.map.of_id(blocker.0);
        self.on(k, |s| s.feeds().set_block(blocker, blocked, on, at))
            .await
    }

    async fn blocked(&self, blocker: UserId, after: UserId, limit: usize) -> Result<Vec<UserId>> {
        let k = self.map.of_id(blocker.0);
        self.on(k, |s| s.feeds().blocked(blocker, after, limit))
            .await
    }

    async fn create_post(&self, post: NewPost) -> Result<PostOutcome> {
        let k = self.map.of_id(post.author.0);
        self.on(k, |s| s.feeds().create_post(post)).await
    }

    async fn delete_post(&self, author: UserId, id: PostId) -> Result<bool> {
        let k = self.map.of_id(author.0);
        self.on(k, |s| s.feeds().delete_post(author, id)).await
    }

    async fn outboxes(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>> {
        let parts = self.by_user_shard(authors, |u| *u);
        let asks = parts.iter().enumerate().filter(|(_, p)| !p.is_empty());
        let asks = asks.map(|(k, p)| self.on(k, |s| s.feeds().outboxes(p, before, limit)));
        Ok(merge(
            futures_util::future::try_join_all(asks).await?,
            limit,
        ))
    }

    async fn posts(&self, keys: &[(UserId, PostId)]) -> Result<Vec<Post>> {
        let parts = self.by_user_shard(keys, |(u, _)| *u);
        let asks = parts.iter().enumerate().filter(|(_, p)| !p.is_empty());
        let asks = asks.map(|(k, p)| self.on(k, |s| s.feeds().posts(p)));
        Ok(merge(
            futures_util::future::try_join_all(asks).await?,
            keys.len(),
        ))
    }
}
