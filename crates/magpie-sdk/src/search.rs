//! Message search (docs/search.md, docs/protocol.md §3.17), over HTTP as a
//! method of [`HttpClient`] and over the socket as one of [`Client`]: the
//! same query, the same page.

use crate::client::Client;
use crate::error::Result;
use crate::http::HttpClient;
use crate::requests::unexpected;
use magpie_proto::search::{SearchOrder, SearchPage, SearchParams};
use magpie_proto::{ClientOp, ServerFrame};
use reqwest::Method;

/// `text` percent-encoded for a query string (every byte but the
/// unreserved ones).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query string of `GET /v1/search` for `q`.
pub fn query_string(q: &SearchParams) -> String {
    let mut parts = vec![format!("text={}", encode(&q.text))];
    if let Some(c) = &q.conv {
        parts.push(format!("conv={}", encode(c.as_str())));
    }
    if let Some(u) = q.from {
        parts.push(format!("from={}", u.0));
    }
    if let Some(t) = q.since {
        parts.push(format!("since={t}"));
    }
    if let Some(t) = q.until {
        parts.push(format!("until={t}"));
    }
    if q.order == SearchOrder::Relevance {
        parts.push("order=relevance".into());
    }
    if let Some(c) = &q.cursor {
        parts.push(format!("cursor={}", encode(c)));
    }
    if let Some(l) = q.limit {
        parts.push(format!("limit={l}"));
    }
    parts.join("&")
}

impl HttpClient {
    /// One page of the messages this user may see that match `q`.
    pub async fn search(&self, q: &SearchParams) -> Result<SearchPage> {
        let path = format!("/v1/search?{}", query_string(q));
        self.call(Method::GET, &path, None, true).await
    }
}

impl Client {
    /// `HttpClient::search` on the connection the client holds.
    pub async fn search(&self, query: SearchParams) -> Result<SearchPage> {
        match self.request(ClientOp::Search { query }).await? {
            ServerFrame::SearchResult { page, .. } => Ok(page),
            other => Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_string_encodes_text_and_options() {
        let q = SearchParams {
            text: "安装 a&b".into(),
            order: SearchOrder::Relevance,
            limit: Some(5),
            ..Default::default()
        };
        assert_eq!(
            query_string(&q),
            "text=%E5%AE%89%E8%A3%85%20a%26b&order=relevance&limit=5"
        );
    }
}
