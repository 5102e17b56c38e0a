//! Follow feeds' vocabulary: posts and their ids (docs/feeds.md).
//!
//! A post belongs to its author's outbox, which is the truth; a follower's
//! inbox holds `(author, post id)` keys only, so a post is written once
//! whatever the number of followers, and a deleted post disappears from
//! every feed because inbox keys are resolved against the outbox on read.

use crate::ids::{ClientMsgId, ServerMsgId, UserId, string_form};
use crate::text_form::{TextForm, text_serde};
use serde::{Deserialize, Serialize};

/// A post's id: time-ordered across every author and node (taken from the
/// accepting node's `MsgIdGen`), so a home feed is ordered by id alone.
/// A string in JSON, like every 64-bit id (JavaScript clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostId(pub i64);

string_form!(
    PostId,
    std::num::ParseIntError,
    |s: String| s.parse().map(PostId),
    |n: i64| n.to_string()
);

impl TextForm for PostId {
    const EXPECTING: &'static str = "a post id (a string of digits)";
    type Error = std::num::ParseIntError;
    fn from_text(s: &str) -> Result<Self, Self::Error> {
        s.parse().map(PostId)
    }
}
text_serde!(PostId);

impl From<ServerMsgId> for PostId {
    fn from(id: ServerMsgId) -> Self {
        PostId(id.0)
    }
}

/// A post to store: the id is proposed by the accepting node and kept only
/// if `(author, cmid)` is new; a retry gets the original post back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    pub id: PostId,
    pub author: UserId,
    pub cmid: ClientMsgId,
    pub body: String,
    pub created_at: i64,
}

impl NewPost {
    /// The post as stored when it is new.
    pub fn stored(&self) -> Post {
        Post {
            id: self.id,
            author: self.author,
            cmid: self.cmid,
            body: self.body.clone(),
            created_at: self.created_at,
            deleted: false,
        }
    }
}

/// A post as stored. A deleted post keeps its row (so a retry of its
/// creation still answers with it) but loses its body, and no feed or
/// outbox read returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: PostId,
    pub author: UserId,
    pub cmid: ClientMsgId,
    pub body: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Post {
    /// The key an inbox keeps for this post.
    pub fn key(&self) -> (UserId, PostId) {
        (self.author, self.id)
    }
}

/// Feed order: newest first, by id (ids are time-ordered across authors).
pub fn newest_first(posts: &mut [Post]) {
    posts.sort_unstable_by_key(|p| std::cmp::Reverse(p.id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_ids_are_strings_in_json() {
        let id = PostId(1 << 60);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", 1i64 << 60));
        assert_eq!(serde_json::from_str::<PostId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<PostId>("\"x1\"").is_err());
    }
}
