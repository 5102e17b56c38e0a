//! Search over HTTP (`GET /v1/search`, docs/protocol.md §3.17) and the
//! mapping both ways in share: wire query → service request, hits → page.

use super::extract::{ApiQuery, AuthUser};
use crate::app::App;
use crate::error::{Result, ServerError};
use crate::services::SearchRequest;
use axum::Json;
use axum::extract::State;
use magpie_core::{ConvId, UserId};
use magpie_proto::search::{SearchHit, SearchOrder, SearchPage, SearchParams, SnippetPart};
use magpie_search::{Found, Ranking};
use serde::Deserialize;

/// The query string, read as text and numbers (ids checked here, so a bad
/// one is a `bad_field` naming it).
#[derive(Deserialize)]
pub struct SearchQueryString {
    text: String,
    conv: Option<String>,
    from: Option<i64>,
    since: Option<i64>,
    until: Option<i64>,
    order: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl SearchQueryString {
    fn params(self) -> Result<SearchParams> {
        let conv = match self.conv {
            Some(c) => {
                Some(ConvId::parse(&c).map_err(|e| ServerError::bad_field(format!("conv: {e}")))?)
            }
            None => None,
        };
        let order = match self.order.as_deref() {
            None | Some("newest") => SearchOrder::Newest,
            Some("relevance") => SearchOrder::Relevance,
            Some(o) => {
                return Err(ServerError::bad_field(format!(
                    "order: newest or relevance, not {o:?}"
                )));
            }
        };
        Ok(SearchParams {
            text: self.text,
            conv,
            from: self.from.map(UserId),
            since: self.since,
            until: self.until,
            order,
            cursor: self.cursor,
            limit: self.limit,
        })
    }
}

pub async fn search(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiQuery(q): ApiQuery<SearchQueryString>,
) -> Result<Json<SearchPage>> {
    let params = q.params()?;
    let relevance = params.order == SearchOrder::Relevance;
    let found = app
        .search
        .query(p.user, &p.device, request_of(params))
        .await?;
    Ok(Json(page_of(&app, found, relevance)))
}

/// The service's request for a wire query.
pub(crate) fn request_of(p: SearchParams) -> SearchRequest {
    SearchRequest {
        text: p.text,
        conv: p.conv,
        from: p.from,
        since: p.since,
        until: p.until,
        ranking: match p.order {
            SearchOrder::Newest => Ranking::Newest,
            SearchOrder::Relevance => Ranking::Relevance,
        },
        cursor: p.cursor,
        limit: p.limit,
    }
}

/// The wire page for the service's hits; scores only when ranked by them.
pub(crate) fn page_of(app: &App, found: Found, relevance: bool) -> SearchPage {
    SearchPage {
        hits: found
            .hits
            .into_iter()
            .map(|h| SearchHit {
                server_id: h.server_id,
                conv: h.conv,
                seq: h.seq,
                from: h.from,
                sent_at: h.sent_at,
                score: relevance.then_some(h.score),
                snippet: h
                    .snippet
                    .into_iter()
                    .map(|f| SnippetPart {
                        text: f.text,
                        hit: f.hit,
                    })
                    .collect(),
            })
            .collect(),
        next: found.next,
        rebuilding: app.search.index().is_some_and(|i| i.rebuilding()),
    }
}
