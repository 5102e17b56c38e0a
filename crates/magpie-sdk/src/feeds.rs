//! Follow feeds over HTTP (docs/protocol.md §3.16): follows, blocks,
//! posts and the home feed, as methods of [`HttpClient`].

use crate::error::Result;
use crate::http::{HttpClient, json};
use magpie_core::{ClientMsgId, PostId, UserId};
use magpie_proto::http::{
    Changed, FollowCountsBody, PostRequest, PostResponse, PostsPage, UsersPage,
};
use reqwest::Method;

/// `?before=…&limit=…` of a posts page.
fn posts_query(before: Option<PostId>, limit: Option<usize>) -> String {
    let mut q = Vec::new();
    if let Some(b) = before {
        q.push(format!("before={b}"));
    }
    if let Some(l) = limit {
        q.push(format!("limit={l}"));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

impl HttpClient {
    /// Follows `user`; `true` when the follow is new.
    pub async fn follow(&self, user: UserId) -> Result<bool> {
        let path = format!("/v1/follows/{user}");
        let c: Changed = self.call(Method::POST, &path, None, true).await?;
        Ok(c.changed)
    }

    pub async fn unfollow(&self, user: UserId) -> Result<()> {
        let path = format!("/v1/follows/{user}");
        self.call(Method::DELETE, &path, None, true).await
    }

    /// Blocks `user` (no follows between you any more, none of their posts
    /// in your feed); `true` when the block is new.
    pub async fn block(&self, user: UserId) -> Result<bool> {
        let path = format!("/v1/blocks/{user}");
        let c: Changed = self.call(Method::POST, &path, None, true).await?;
        Ok(c.changed)
    }

    pub async fn unblock(&self, user: UserId) -> Result<()> {
        let path = format!("/v1/blocks/{user}");
        self.call(Method::DELETE, &path, None, true).await
    }

    /// A page of `user`'s followers (`following: false`) or followees, by
    /// id above `after`.
    pub async fn follows(
        &self,
        user: UserId,
        following: bool,
        after: Option<UserId>,
    ) -> Result<UsersPage> {
        let which = if following { "following" } else { "followers" };
        let after = after.map_or(String::new(), |a| format!("?after={a}"));
        let path = format!("/v1/users/{user}/{which}{after}");
        self.call(Method::GET, &path, None, true).await
    }

    pub async fn follow_counts(&self, user: UserId) -> Result<FollowCountsBody> {
        let path = format!("/v1/users/{user}/follows");
        self.call(Method::GET, &path, None, true).await
    }

    /// Posts `body`, idempotently by `cmid`: a retry with the same one
    /// answers with the original post (`duplicate`).
    pub async fn post(&self, cmid: ClientMsgId, body: &str) -> Result<PostResponse> {
        let req = PostRequest {
            cmid,
            body: body.to_string(),
        };
        self.call(Method::POST, "/v1/posts", Some(json(&req)?), true)
            .await
    }

    pub async fn delete_post(&self, post: PostId) -> Result<()> {
        let path = format!("/v1/posts/{post}");
        self.call(Method::DELETE, &path, None, true).await
    }

    /// A page of the home feed, newest first below `before`.
    pub async fn feed(&self, before: Option<PostId>, limit: Option<usize>) -> Result<PostsPage> {
        let path = format!("/v1/feed{}", posts_query(before, limit));
        self.call(Method::GET, &path, None, true).await
    }

    /// A page of `user`'s posts, newest first below `before`.
    pub async fn user_posts(
        &self,
        user: UserId,
        before: Option<PostId>,
        limit: Option<usize>,
    ) -> Result<PostsPage> {
        let path = format!("/v1/users/{user}/posts{}", posts_query(before, limit));
        self.call(Method::GET, &path, None, true).await
    }
}
