//! The feed fan-out (group `feeds`, topic `post`; docs/feeds.md): a stored
//! post's key goes into its readers' inboxes, one page of readers and one
//! state round trip per step. A small author's readers are its followers
//! (paged from the store; an inbox that was never marked or expired is
//! skipped). A big author's (flagged once its followers exceed
//! `feeds.big_threshold`) are its subscribers only: the followers that
//! read their feed within `feeds.active_days`, so a post's work grows with
//! the author's active followers, not all of them; the others pull it when
//! they read.
//!
//! Each page's online readers also get a `post` frame (one route lookup
//! per page; best effort, the feed read is the truth); a deleted post is
//! neither pushed nor shown.
//!
//! Commit after apply: the event is acknowledged once every page is
//! pushed; a crash in between applies it again from the first page, which
//! adds nothing twice (an inbox is a set of keys; a frame may repeat).

use super::Worker;
use crate::app::App;
use crate::error::Result;
use crate::metrics::meters;
use crate::services::delivery::Notice;
use async_trait::async_trait;
use magpie_core::{BusEvent, POST_TOPIC, PostId, UserId};

pub struct Fanout;

#[async_trait]
impl Worker for Fanout {
    fn group(&self) -> String {
        "feeds".into()
    }
    fn topics(&self) -> Vec<String> {
        vec![POST_TOPIC.to_string()]
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        for event in events {
            if let BusEvent::Posted { author, post } = event {
                fan_out(app, *author, *post).await?;
            }
        }
        Ok(())
    }
}

async fn fan_out(app: &App, author: UserId, post: PostId) -> Result<()> {
    let f = &app.cfg.feeds;
    let feeds = app.store.feeds();
    let Some(shown) = feeds.posts(&[(author, post)]).await?.pop() else {
        return Ok(()); // deleted meanwhile
    };
    let big = match app.state.feed_big(&[author]).await?.flagged.first() {
        Some(_) => true,
        None if feeds.follow_counts(author).await?.followers > f.big_threshold => {
            app.state.feed_set_big(author).await?;
            true
        }
        None => false,
    };
    let batch = f.fanout_batch.max(1);
    let mut pages = Readers::new(app, author, big);
    while let Some(page) = pages.next(batch).await? {
        let items: Vec<(UserId, UserId, PostId)> =
            page.iter().map(|u| (*u, author, post)).collect();
        app.state.feed_push(&items, f.inbox_cap).await?;
        meters().inbox_writes.increment(items.len() as u64);
        app.delivery
            .notify_users(&page, Notice::Post(shown.clone()))
            .await;
    }
    if big {
        meters().fanout_big.increment(1);
    }
    Ok(())
}

/// The pages of a post's readers: a small author's followers from the
/// store, a big author's subscribers from the state.
struct Readers<'a> {
    app: &'a App,
    author: UserId,
    next: Cursor,
}

enum Cursor {
    /// Followers above this one (a small author).
    After(UserId),
    /// The state's scan of subscribers, from this cursor (a big author).
    Scan(u64),
    Done,
}

impl<'a> Readers<'a> {
    fn new(app: &'a App, author: UserId, big: bool) -> Self {
        let next = if big {
            Cursor::Scan(0)
        } else {
            Cursor::After(UserId(0))
        };
        Readers { app, author, next }
    }

    async fn next(&mut self, batch: usize) -> Result<Option<Vec<UserId>>> {
        let (feeds, state) = (self.app.store.feeds(), &self.app.state);
        match self.next {
            Cursor::Done => Ok(None),
            Cursor::Scan(cursor) => {
                let (page, next) = state.feed_subscribers(self.author, cursor, batch).await?;
                self.next = if next == 0 {
                    Cursor::Done
                } else {
                    Cursor::Scan(next)
                };
                Ok(Some(page))
            }
            Cursor::After(after) => {
                let page = feeds.followers(self.author, after, batch).await?;
                self.next = match page.last() {
                    Some(last) if page.len() == batch => Cursor::After(*last),
                    _ => Cursor::Done,
                };
                Ok(Some(page).filter(|p| !p.is_empty()))
            }
        }
    }
}
