//! The feed's socket ops (docs/protocol.md §3.16 and §5): follow, unfollow,
//! post, delete a post and read the home feed; and `search` (§3.17). The
//! same services the HTTP routes call, answered on the connection that
//! asked.

use super::requests::Requester;
use crate::error::Result;
use magpie_proto::{ClientOp, ServerFrame};

impl Requester {
    /// The answer to a feed op; `None` for any other op.
    pub(super) async fn feed_op(
        &self,
        rid: Option<u64>,
        op: ClientOp,
    ) -> Option<Result<ServerFrame>> {
        let (feeds, user) = (&self.app.feeds, self.user);
        let answer = match op {
            ClientOp::Follow { user: target } => {
                feeds
                    .follow(user, target)
                    .await
                    .map(|changed| ServerFrame::FollowOk {
                        rid,
                        user: target,
                        changed,
                    })
            }
            ClientOp::Unfollow { user: target } => {
                feeds
                    .unfollow(user, target)
                    .await
                    .map(|changed| ServerFrame::UnfollowOk {
                        rid,
                        user: target,
                        changed,
                    })
            }
            ClientOp::Post { cmid, body } => {
                feeds
                    .post(user, cmid, body)
                    .await
                    .map(|out| ServerFrame::Posted {
                        rid,
                        post: out.post,
                        duplicate: out.duplicate,
                    })
            }
            ClientOp::PostDelete { post } => feeds
                .delete_post(user, post)
                .await
                .map(|()| ServerFrame::PostDeleted { rid, post }),
            ClientOp::Feed { before, limit } => {
                let limit = limit.unwrap_or(crate::services::FEED_PAGE);
                feeds
                    .home(user, before, limit)
                    .await
                    .map(|page| ServerFrame::FeedResult {
                        rid,
                        posts: page.posts,
                        next: page.next,
                    })
            }
            ClientOp::Search { query } => {
                let app = &self.app;
                let relevance = query.order == magpie_proto::search::SearchOrder::Relevance;
                let request = crate::edge::search::request_of(query);
                app.search
                    .query(user, &self.device, request)
                    .await
                    .map(|found| ServerFrame::SearchResult {
                        rid,
                        page: crate::edge::search::page_of(app, found, relevance),
                    })
            }
            _ => return None,
        };
        Some(answer)
    }
}
