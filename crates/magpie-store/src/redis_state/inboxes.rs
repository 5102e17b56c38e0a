//! Feed inboxes on Redis (docs/feeds.md): one sorted set per follower
//! (`inbox:{user}`), every member scored 0 so the set is ordered by member
//! text. A member is `{post:019}:{author}`: post ids are 63-bit, past the
//! 2^53 a score (a double) holds exactly, and zero-padded decimal sorts as
//! the number does. The member `!` sorts before every key and marks the
//! inbox materialised; rank 0 is always the marker, so trimming starts at
//! rank 1. The whole inbox is one key, so each script is valid on a cluster.

use super::scripts::{Call, eval_each};
use super::{RedisState, unavailable};
use crate::error::{Result, StoreError};
use magpie_core::{PostId, UserId};
use std::collections::HashMap;

const MARKER: &str = "!";

fn member(author: UserId, post: PostId) -> String {
    format!("{:019}:{}", post.0, author.0)
}

fn parse(m: &str) -> Result<(UserId, PostId)> {
    let parsed = m
        .split_once(':')
        .and_then(|(p, a)| Some((UserId(a.parse().ok()?), PostId(p.parse().ok()?))));
    parsed.ok_or_else(|| StoreError::Corrupt(format!("inbox member {m:?}")))
}

/// A call's leading arguments: cap, expiry (for a fill), mode.
fn head(cap: usize, ttl_ms: u64, mode: &str) -> Vec<String> {
    vec![cap.to_string(), ttl_ms.max(1).to_string(), mode.into()]
}

impl RedisState {
    /// One `FEED_ADD` per inbox, all in one pipeline.
    pub(super) async fn feed_push_impl(
        &self,
        items: &[(UserId, UserId, PostId)],
        cap: usize,
    ) -> Result<()> {
        let mut calls: Vec<Call> = Vec::new();
        let mut at: HashMap<UserId, usize> = HashMap::new();
        for (follower, author, post) in items {
            let i = *at.entry(*follower).or_insert_with(|| {
                calls.push((self.keys.inbox(*follower), head(cap, 0, "push")));
                calls.len() - 1
            });
            calls[i].1.push(member(*author, *post));
        }
        eval_each(&mut self.con(), &self.scripts.feed_add, &calls)
            .await
            .map_err(unavailable)
    }

    pub(super) async fn feed_fill_impl(
        &self,
        user: UserId,
        keys: &[(UserId, PostId)],
        cap: usize,
        ttl_ms: u64,
    ) -> Result<()> {
        let mut args = head(cap, ttl_ms, "fill");
        args.extend(keys.iter().map(|(a, p)| member(*a, *p)));
        let calls = [(self.keys.inbox(user), args)];
        eval_each(&mut self.con(), &self.scripts.feed_add, &calls)
            .await
            .map_err(unavailable)
    }

    /// One round trip: the marker and the page, read together.
    pub(super) async fn feed_page_impl(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Result<Option<Vec<(UserId, PostId)>>> {
        let key = self.keys.inbox(user);
        let max = before.map_or_else(|| "+".to_string(), |p| format!("({:019}", p.0));
        let (marked, members): (Option<f64>, Vec<String>) = redis::pipe()
            .zscore(&key, MARKER)
            .cmd("ZREVRANGEBYLEX")
            .arg(&key)
            .arg(max)
            .arg(format!("({MARKER}"))
            .arg("LIMIT")
            .arg(0)
            .arg(i64::try_from(n).unwrap_or(i64::MAX))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        if marked.is_none() {
            return Ok(None);
        }
        members
            .iter()
            .map(|m| parse(m))
            .collect::<Result<_>>()
            .map(Some)
    }

    pub(super) async fn feed_remove_impl(
        &self,
        user: UserId,
        keys: &[(UserId, PostId)],
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = keys.iter().map(|(a, p)| member(*a, *p)).collect();
        redis::cmd("ZREM")
            .arg(self.keys.inbox(user))
            .arg(members)
            .query_async::<()>(&mut self.con())
            .await
            .map_err(unavailable)
    }
}
