//! The home feed: newest first by post id, paged by a cursor, merged on the
//! read path so a rebuilding inbox never shows an empty or partial page.
//!
//! What a read knows: an inbox holds every post at or above its floor of
//! the authors it follows (the pull that marked it found them, the fan-out
//! pushed the later ones: small authors to every marked inbox, big ones to
//! their subscribers); a page of the inbox that is full is complete down to
//! its last key. When fewer than a page are known above that bound,
//! everyone the reader follows is pulled below it. An inbox that does not
//! exist (never read, inactive past `feeds.active_days`, or lost with the
//! state), or was marked before one of its big authors was flagged, is
//! marked *before* the pull, with a floor above everything, and its reader
//! subscribes to its big authors, so a post whose fan-out runs meanwhile
//! is pushed into it; the first page the pull finds then becomes its floor.

use super::Feeds;
use crate::error::Result;
use magpie_core::{Post, PostId, UserId, newest_first, now_ms};
use magpie_store::{Floor, InboxPage};
use serde::Serialize;
use std::collections::HashSet;

/// A page of posts, newest first, and the cursor of the next page (`None`
/// at the end).
#[derive(Debug, Clone, Serialize)]
pub struct FeedPage {
    pub posts: Vec<Post>,
    pub next: Option<PostId>,
}

impl FeedPage {
    /// `posts` (newest first) cut to `n`, with the cursor past them.
    pub(super) fn of(mut posts: Vec<Post>, n: usize) -> FeedPage {
        newest_first(&mut posts);
        posts.dedup_by_key(|p| p.id);
        posts.truncate(n);
        let next = (posts.len() == n)
            .then(|| posts.last().map(|p| p.id))
            .flatten();
        FeedPage { posts, next }
    }
}

/// A subscription outlives the inbox it serves by this much (ms), so an
/// inbox that is alive always has its subscriptions (docs/feeds.md).
const SUBSCRIPTION_MARGIN_MS: i64 = 86_400_000;

impl Feeds {
    /// `user`'s home feed below `before`, at most `n` posts.
    pub async fn home(&self, user: UserId, before: Option<PostId>, n: usize) -> Result<FeedPage> {
        let n = n.clamp(1, self.cfg.limits.max_page);
        let feeds = self.store.feeds();
        let cap = self.cfg.feeds.max_following;
        let blocked: HashSet<UserId> = feeds
            .blocked(user, UserId(0), cap)
            .await?
            .into_iter()
            .collect();
        let mut authors = feeds.following(user, UserId(0), cap).await?;
        authors.retain(|a| !blocked.contains(a));
        if authors.is_empty() {
            return Ok(FeedPage::of(Vec::new(), n));
        }
        let known = tokio::try_join!(
            self.state.feed_page(user, before, n),
            self.state.feed_big(&authors)
        );
        let (inbox, big) = match known {
            Ok(known) => known,
            Err(e) => {
                tracing::warn!(%user, error = %e, "feed inbox unreadable: pulling");
                let posts = feeds.outboxes(&authors, before, n).await?;
                return Ok(FeedPage::of(posts, n));
            }
        };
        // The inbox holds a big author's posts only if its reader subscribed
        // before the pull that settled it, i.e. the author's flag was set
        // before the sequence the settle recorded.
        let big = big.flagged;
        let inbox = inbox.filter(|i| big.iter().all(|(_, seq)| *seq <= i.big_seen));
        let inbox = match inbox {
            // A first-page read keeps the subscriptions as alive as the
            // inbox; one found missing (lost state) means missed pushes.
            Some(_) if before.is_none() && !self.subscribe(user, &big).await => None,
            other => other,
        };
        let page = match inbox {
            Some(inbox) => self.merge(&authors, inbox, before, n).await?,
            None => return self.pull_and_mark(user, &authors, before, n).await,
        };
        if before.is_none() {
            // What was read goes into the inbox (its next read is served
            // from it), and the read keeps the reader active.
            let keys: Vec<(UserId, PostId)> = page.posts.iter().map(Post::key).collect();
            self.fill(user, &keys, Floor::Keep).await;
        }
        Ok(page)
    }

    /// A read without an inbox it can trust: the inbox is marked (knowing
    /// nothing, so pushes from now on are kept), the reader subscribes to
    /// the big authors flagged by then, and only then the outboxes are
    /// pulled; what the first page found settles the floor.
    async fn pull_and_mark(
        &self,
        user: UserId,
        authors: &[UserId],
        before: Option<PostId>,
        n: usize,
    ) -> Result<FeedPage> {
        let mut seen = None;
        if self.fill(user, &[], Floor::Unknown).await {
            match self.state.feed_big(authors).await {
                Ok(big) => {
                    self.subscribe(user, &big.flagged).await;
                    seen = Some(big.seq);
                }
                Err(e) => tracing::warn!(%user, error = %e, "big authors unreadable"),
            }
        }
        let page = FeedPage::of(self.store.feeds().outboxes(authors, before, n).await?, n);
        count("pull");
        if let (None, Some(seen)) = (before, seen) {
            // Everything from the page's oldest post up is known now (a
            // short page is the whole feed), unless the inbox was dropped
            // or settled meanwhile.
            let oldest = page.posts.last().map(|p| p.id);
            let floor = oldest.filter(|_| page.posts.len() == n);
            let keys: Vec<(UserId, PostId)> = page.posts.iter().map(Post::key).collect();
            let settle = Floor::Settle(floor.unwrap_or(PostId(0)), seen);
            self.fill(user, &keys, settle).await;
        }
        Ok(page)
    }

    /// Subscribes `user` to the pushes of the flagged authors for as long
    /// as its inbox lives, and a margin; `false` when a subscription was
    /// missing (pushes were missed: the caller marks the inbox again) or
    /// the state failed (the inbox is dropped, so a later read marks it).
    async fn subscribe(&self, user: UserId, big: &[(UserId, i64)]) -> bool {
        if big.is_empty() {
            return true;
        }
        let authors: Vec<UserId> = big.iter().map(|(a, _)| *a).collect();
        let ttl = self.cfg.feeds.active_days.saturating_mul(86_400_000) as i64;
        let until = now_ms()
            .saturating_add(ttl)
            .saturating_add(SUBSCRIPTION_MARGIN_MS);
        match self.state.feed_subscribe(user, &authors, until).await {
            Ok(all_there) => all_there,
            Err(e) => {
                tracing::warn!(%user, error = %e, "feed subscriptions not kept");
                if let Err(e) = self.state.feed_drop(user).await {
                    tracing::warn!(%user, error = %e, "feed inbox not dropped");
                }
                false
            }
        }
    }

    /// The inbox's keys of followed authors, resolved; everyone pulled
    /// below what the inbox covers when that does not fill the page (see
    /// the module doc).
    async fn merge(
        &self,
        authors: &[UserId],
        inbox: InboxPage,
        before: Option<PostId>,
        n: usize,
    ) -> Result<FeedPage> {
        let feeds = self.store.feeds();
        // Keys below the floor (pushed late) are left to the pull.
        let held: Vec<(UserId, PostId)> = inbox
            .keys
            .into_iter()
            .filter(|k| k.1 >= inbox.floor)
            .collect();
        let bound = match held.last() {
            Some(last) if held.len() == n => last.1,
            _ => inbox.floor,
        };
        let followed: HashSet<UserId> = authors.iter().copied().collect();
        let keys: Vec<(UserId, PostId)> = held
            .into_iter()
            .filter(|k| followed.contains(&k.0))
            .collect();
        let mut posts = feeds.posts(&keys).await?;
        let known = posts.iter().filter(|p| p.id >= bound).count();
        // Below both the cursor and what the inbox covers; nothing is below
        // a floor of 0 (the inbox holds the whole feed).
        let below = match before {
            Some(b) => Some(b.min(bound)),
            None => Some(bound).filter(|b| b.0 < i64::MAX),
        };
        if known < n && below != Some(PostId(0)) {
            posts.extend(feeds.outboxes(authors, below, n).await?);
            count("inbox_and_pull");
        } else {
            count("inbox");
        }
        Ok(FeedPage::of(posts, n))
    }

    /// Adds keys to the reader's inbox, treats its floor as `floor` says
    /// and keeps it alive; `false` when the state failed (which only costs
    /// a later read a pull).
    async fn fill(&self, user: UserId, keys: &[(UserId, PostId)], floor: Floor) -> bool {
        let f = &self.cfg.feeds;
        let ttl = f.active_days.saturating_mul(86_400_000);
        let filled = self
            .state
            .feed_fill(user, keys, floor, f.inbox_cap, ttl)
            .await;
        if let Err(e) = &filled {
            tracing::warn!(%user, error = %e, "feed inbox not filled");
        }
        filled.is_ok()
    }
}

fn count(from: &'static str) {
    metrics::counter!(crate::metrics::FEED_READS, "from" => from).increment(1);
}
