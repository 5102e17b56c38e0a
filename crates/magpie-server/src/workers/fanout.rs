//! The feed fan-out (group `feeds`, topic `post`; docs/feeds.md): a stored
//! post's key goes into each follower's inbox, one page of followers from
//! the store and one state round trip per step. A big author's post is not
//! pushed: every reader pulls it from the outbox at read time, so the work
//! of a post does not grow past `feeds.big_threshold` followers.
//!
//! Each page's online followers also get a `post` frame (one route lookup
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
    if feeds.follow_counts(author).await?.followers > f.big_threshold {
        meters().fanout_skipped.increment(1);
        return Ok(());
    }
    let Some(shown) = feeds.posts(&[(author, post)]).await?.pop() else {
        return Ok(()); // deleted meanwhile
    };
    let batch = f.fanout_batch.max(1);
    let mut after = UserId(0);
    loop {
        let page = feeds.followers(author, after, batch).await?;
        let Some(last) = page.last().copied() else {
            return Ok(());
        };
        let items: Vec<(UserId, UserId, PostId)> =
            page.iter().map(|u| (*u, author, post)).collect();
        app.state.feed_push(&items, f.inbox_cap).await?;
        meters().inbox_writes.increment(items.len() as u64);
        app.delivery
            .notify_users(&page, Notice::Post(shown.clone()))
            .await;
        if page.len() < batch {
            return Ok(());
        }
        after = last;
    }
}
