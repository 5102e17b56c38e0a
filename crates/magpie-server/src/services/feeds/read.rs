//! The home feed: newest first by post id, paged by a cursor, merged on the
//! read path so a rebuilding inbox never shows an empty or partial page.
//!
//! What a read knows: an inbox holds every post of a pushing author at or
//! above its floor (the pull that marked it found them, the fan-out pushed
//! the later ones); a page of the inbox that is full is complete down to
//! its last key. Big authors never push, so they are pulled below the
//! cursor on every read. When fewer than a page are known above that bound,
//! everyone the reader follows is pulled below it. An inbox that does not
//! exist (never read, inactive past `feeds.active_days`, or lost with the
//! state) is marked *before* the pull, with a floor above everything, so a
//! post whose fan-out runs meanwhile is pushed into it; the first page the
//! pull finds then becomes its floor.

use super::Feeds;
use crate::error::Result;
use magpie_core::{Post, PostId, UserId, newest_first};
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
        let inbox = match self.state.feed_page(user, before, n).await {
            Ok(inbox) => inbox,
            Err(e) => {
                tracing::warn!(%user, error = %e, "feed inbox unreadable: pulling");
                let posts = feeds.outboxes(&authors, before, n).await?;
                return Ok(FeedPage::of(posts, n));
            }
        };
        let page = match inbox {
            Some(inbox) => self.merge(&authors, inbox, before, n).await?,
            None => {
                let marked = self.fill(user, &[], Floor::Unknown).await;
                let page = FeedPage::of(feeds.outboxes(&authors, before, n).await?, n);
                count("pull");
                if before.is_none() && marked {
                    // Everything from the page's oldest post up is known
                    // now (a short page is the whole feed), unless the
                    // inbox was dropped or settled meanwhile.
                    let oldest = page.posts.last().map(|p| p.id);
                    let floor = oldest.filter(|_| page.posts.len() == n);
                    let keys: Vec<(UserId, PostId)> = page.posts.iter().map(Post::key).collect();
                    let settle = Floor::Settle(floor.unwrap_or(PostId(0)));
                    self.fill(user, &keys, settle).await;
                }
                return Ok(page);
            }
        };
        if before.is_none() {
            // What was read goes into the inbox (its next read is served
            // from it), and the read keeps the reader active.
            let keys: Vec<(UserId, PostId)> = page.posts.iter().map(Post::key).collect();
            self.fill(user, &keys, Floor::Keep).await;
        }
        Ok(page)
    }

    /// The inbox's keys of followed authors, resolved, with the big
    /// authors pulled below the cursor; everyone pulled below what the
    /// inbox covers when that does not fill the page (see the module doc).
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
        let big = feeds
            .with_followers_over(authors, self.cfg.feeds.big_threshold)
            .await?;
        if !big.is_empty() {
            posts.extend(feeds.outboxes(&big, before, n).await?);
        }
        // A big author's post may be both pulled and in the inbox (a read
        // filled it there): count it once.
        newest_first(&mut posts);
        posts.dedup_by_key(|p| p.id);
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
