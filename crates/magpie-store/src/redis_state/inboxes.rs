//! Feed inboxes on Redis (docs/feeds.md): one sorted set per follower
//! (`inbox:{user}`), every member scored 0 so the set is ordered by member
//! text. A key is `{post:019}:{author}`: post ids are 63-bit, past the 2^53
//! a score (a double) holds exactly, and zero-padded decimal sorts as the
//! number does. The marker `!{floor:019}` sorts before every key (rank 0)
//! and holds the floor; the set exists exactly while it is marked, so each
//! script touches one key and is valid on a cluster.

use super::scripts::{Call, eval_each};
use super::{RedisState, unavailable};
use crate::error::{Result, StoreError};
use crate::state::{FLOOR_UNKNOWN, Floor, InboxPage};
use magpie_core::{PostId, UserId};
use std::collections::HashMap;

fn member(author: UserId, post: PostId) -> String {
    format!("{:019}:{}", post.0, author.0)
}

fn parse(m: &str) -> Result<(UserId, PostId)> {
    let parsed = m
        .split_once(':')
        .and_then(|(p, a)| Some((UserId(a.parse().ok()?), PostId(p.parse().ok()?))));
    parsed.ok_or_else(|| StoreError::Corrupt(format!("inbox member {m:?}")))
}

/// `!{floor:019}:{big_seen}` (a marker without it reads as 0, which makes
/// a reader with big authors mark again).
fn parse_marker(m: &str) -> Result<(PostId, i64)> {
    let parsed = m.strip_prefix('!').and_then(|rest| {
        let (floor, stamp) = rest.split_once(':').unwrap_or((rest, "0"));
        Some((PostId(floor.parse().ok()?), stamp.parse().ok()?))
    });
    parsed.ok_or_else(|| StoreError::Corrupt(format!("inbox marker {m:?}")))
}

/// A call's leading arguments: cap, expiry, mode.
fn head(cap: usize, ttl_ms: u64, mode: String) -> Vec<String> {
    vec![cap.to_string(), ttl_ms.max(1).to_string(), mode]
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
                calls.push((self.keys.inbox(*follower), head(cap, 0, "push".into())));
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
        floor: Floor,
        (cap, ttl_ms): (usize, u64),
    ) -> Result<()> {
        let mode = match floor {
            Floor::Keep => "fill".into(),
            Floor::Unknown => format!("mark:{:019}:0", FLOOR_UNKNOWN.0),
            Floor::Set(f) => format!("mark:{:019}:0", f.0.max(0)),
            Floor::Settle(f, seen) => format!("settle:{:019}:{seen}", f.0.max(0)),
        };
        let mut args = head(cap, ttl_ms, mode);
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
    ) -> Result<Option<InboxPage>> {
        let key = self.keys.inbox(user);
        let max = before.map_or_else(|| "+".to_string(), |p| format!("({:019}", p.0));
        let (marker, members): (Vec<String>, Vec<String>) = redis::pipe()
            .zrange(&key, 0, 0)
            .cmd("ZREVRANGEBYLEX")
            .arg(&key)
            .arg(max)
            // Above the markers (`!…`): every key starts with a digit.
            .arg("(\"")
            .arg("LIMIT")
            .arg(0)
            .arg(i64::try_from(n).unwrap_or(i64::MAX))
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        let Some(marker) = marker.first() else {
            return Ok(None);
        };
        let (floor, big_seen) = parse_marker(marker)?;
        let keys = members.iter().map(|m| parse(m)).collect::<Result<_>>()?;
        Ok(Some(InboxPage {
            keys,
            floor,
            big_seen,
        }))
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
