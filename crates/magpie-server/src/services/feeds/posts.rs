//! Posts: stored in the author's outbox first, then announced on the
//! durable bus for the fan-out (`workers/fanout.rs`), then acknowledged.

use super::Feeds;
use super::read::FeedPage;
use crate::error::{Result, ServerError};
use crate::metrics::meters;
use magpie_core::{BusEvent, ClientMsgId, EventId, NewPost, PostId, UserId, now_ms};
use magpie_store::PostOutcome;

impl Feeds {
    /// Stores a post, once per `(author, cmid)`: a retry answers with the
    /// original (`duplicate`). The `Posted` event is published for a retry
    /// too, so a post whose first publish failed is fanned out by the
    /// client's retry (the bus drops a second copy by its id, and the
    /// fan-out is idempotent). A deleted post stays deleted.
    pub async fn post(
        &self,
        author: UserId,
        cmid: ClientMsgId,
        body: String,
    ) -> Result<PostOutcome> {
        let max = self.cfg.feeds.max_post_chars;
        if body.trim().is_empty() || body.chars().count() > max {
            return Err(ServerError::bad_field(format!(
                "body: 1 to {max} characters"
            )));
        }
        let new = NewPost {
            id: PostId::from(self.ids.next()),
            author,
            cmid,
            body,
            created_at: now_ms(),
        };
        let out = self.store.feeds().create_post(new).await?;
        if !out.duplicate {
            meters().posts.increment(1);
        }
        if !out.post.deleted {
            let post = out.post.id;
            let event = BusEvent::Posted { author, post };
            self.events.publish(event, EventId::Post { post }).await?;
        }
        Ok(out)
    }

    /// Deletes one of the author's posts: it leaves every feed at once (an
    /// inbox's key no longer resolves). `not_found` for a post that is not
    /// the author's or was deleted.
    pub async fn delete_post(&self, author: UserId, post: PostId) -> Result<()> {
        if self.store.feeds().delete_post(author, post).await? {
            Ok(())
        } else {
            Err(ServerError::NotFound(format!("no post {post} of yours")))
        }
    }

    /// A page of one author's posts, newest first below `before`.
    pub async fn outbox(
        &self,
        author: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Result<FeedPage> {
        if !self.users.exists(author).await? {
            return Err(ServerError::NotFound(format!("no user {author}")));
        }
        let n = n.clamp(1, self.cfg.limits.max_page);
        let posts = self.store.feeds().outboxes(&[author], before, n).await?;
        Ok(FeedPage::of(posts, n))
    }
}
