//! Follow feeds over the socket (docs/protocol.md §5, the feed ops), as
//! methods of [`Client`]: the same answers as the HTTP methods of
//! `feeds.rs`, on the connection the client already holds.

use crate::client::Client;
use crate::error::Result;
use crate::requests::unexpected;
use magpie_core::{ClientMsgId, PostId, UserId};
use magpie_proto::http::{PostResponse, PostsPage};
use magpie_proto::{ClientOp, ServerFrame};

impl Client {
    /// Follows `user`; `true` when the follow is new.
    pub async fn follow(&self, user: UserId) -> Result<bool> {
        match self.request(ClientOp::Follow { user }).await? {
            ServerFrame::FollowOk { changed, .. } => Ok(changed),
            other => Err(unexpected(other)),
        }
    }

    /// Stops following `user`; `true` when there was a follow.
    pub async fn unfollow(&self, user: UserId) -> Result<bool> {
        match self.request(ClientOp::Unfollow { user }).await? {
            ServerFrame::UnfollowOk { changed, .. } => Ok(changed),
            other => Err(unexpected(other)),
        }
    }

    /// Publishes a post once per `cmid` (a retry answers the original).
    pub async fn post(&self, cmid: ClientMsgId, body: impl Into<String>) -> Result<PostResponse> {
        let op = ClientOp::Post {
            cmid,
            body: body.into(),
        };
        match self.request(op).await? {
            ServerFrame::Posted {
                post, duplicate, ..
            } => Ok(PostResponse { post, duplicate }),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_post(&self, post: PostId) -> Result<()> {
        match self.request(ClientOp::PostDelete { post }).await? {
            ServerFrame::PostDeleted { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// A page of the home feed, newest first below `before`.
    pub async fn feed(&self, before: Option<PostId>, limit: Option<usize>) -> Result<PostsPage> {
        match self.request(ClientOp::Feed { before, limit }).await? {
            ServerFrame::FeedResult { posts, next, .. } => Ok(PostsPage { posts, next }),
            other => Err(unexpected(other)),
        }
    }
}
