//! Message search (docs/search.md): the caller's visibility resolved from
//! the store, then one query of this node's index restricted to it.
//!
//! Who sees what — the same as history: every direct conversation the
//! caller is a member of (the index knows both members of each, so that
//! needs no list), and each group the caller is a member of now, from its
//! join position on (`joined_seq`, which the group's history setting set
//! when it joined). A user who left a group finds nothing of it, as its
//! history shows them nothing. Enforced inside the query, never by
//! filtering what a client asked for.
//!
//! A caller whose effective settings say `search_view: false` opted out of
//! search: its queries find nothing (docs/search.md, "Opting out").

use crate::config::Config;
use crate::error::{Result, ServerError};
use futures_util::StreamExt;
use magpie_core::{ConvId, DeviceId, Seq, UserId, now_ms};
use magpie_search::{Found, Ranking, SearchIndex, SearchQuery};
use magpie_store::Store;
use std::sync::Arc;

/// Group memberships looked up at once for one query.
const MEMBERSHIP_LOOKUPS: usize = 16;

/// A query as the caller gives it.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub text: String,
    pub conv: Option<ConvId>,
    pub from: Option<UserId>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub ranking: Ranking,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

pub struct Search {
    cfg: Arc<Config>,
    store: Store,
    index: Option<SearchIndex>,
}

impl Search {
    pub fn new(cfg: Arc<Config>, store: Store, index: Option<SearchIndex>) -> Search {
        Search { cfg, store, index }
    }

    /// This node's index, if it runs the `search` role.
    pub fn index(&self) -> Option<&SearchIndex> {
        self.index.as_ref()
    }

    /// `device`: the calling device, whose effective settings apply.
    pub async fn query(
        &self,
        user: UserId,
        device: &DeviceId,
        req: SearchRequest,
    ) -> Result<Found> {
        let outcome = self.run(user, device, req).await;
        let label = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!(crate::metrics::SEARCH_QUERIES, "outcome" => label).increment(1);
        outcome
    }

    async fn run(&self, user: UserId, device: &DeviceId, req: SearchRequest) -> Result<Found> {
        let Some(index) = self.index.clone() else {
            return Err(ServerError::Unavailable(
                "this node keeps no search index (role `search`)".into(),
            ));
        };
        if req.text.chars().count() > 256 {
            return Err(ServerError::bad_field("text: at most 256 characters"));
        }
        let limit = req.limit.unwrap_or(self.cfg.search.page);
        if limit == 0 || limit > self.cfg.search.max_page {
            let max = self.cfg.search.max_page;
            return Err(ServerError::bad_field(format!("limit: 1 to {max}")));
        }
        let settings = self
            .store
            .accounts()
            .get_settings(user, Some(device))
            .await?;
        if !settings.search_view {
            // After the checks above (a bad length or limit is refused
            // whatever the setting); the index is not queried.
            return Ok(Found::default());
        }
        let (party, groups) = match &req.conv {
            // One conversation: in scope only if the caller may see it.
            Some(c) => match c.group_id() {
                Some(_) => (None, self.floors(user, vec![c.clone()]).await?),
                None => (c.peer_of(user).map(|_| user), Vec::new()),
            },
            None => {
                let mine = self.store.groups().user_groups(user).await?;
                (
                    Some(user),
                    self.floors(user, mine.into_iter().map(ConvId::group).collect())
                        .await?,
                )
            }
        };
        let q = SearchQuery {
            text: req.text,
            party,
            groups,
            conv: req.conv,
            from: req.from,
            since: req.since,
            until: req.until,
            ranking: req.ranking,
            cursor: req.cursor,
            limit,
            now: now_ms(),
        };
        // Searching is CPU work on the index: off the async workers.
        tokio::task::spawn_blocking(move || index.search(&q))
            .await
            .map_err(|e| ServerError::Internal(format!("search task: {e}")))?
            .map_err(ServerError::from)
    }

    /// The groups among `convs` the caller is a member of, each with its
    /// join position: what it may see of them.
    async fn floors(&self, user: UserId, convs: Vec<ConvId>) -> Result<Vec<(ConvId, Seq)>> {
        let groups = self.store.groups();
        let looked_up: Vec<_> = futures_util::stream::iter(convs)
            .map(|c| async move {
                let g = c.group_id()?;
                Some(
                    groups
                        .member(g, user)
                        .await
                        .map(|m| m.map(|m| (c, m.joined_seq))),
                )
            })
            .buffer_unordered(MEMBERSHIP_LOOKUPS)
            .collect()
            .await;
        let mut out = Vec::with_capacity(looked_up.len());
        for r in looked_up.into_iter().flatten() {
            if let Some(v) = r? {
                out.push(v);
            }
        }
        Ok(out)
    }
}
