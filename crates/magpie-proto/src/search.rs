//! Search on the wire (docs/protocol.md §3.17 and the `search` op): the
//! query's fields, the same for `GET /v1/search` (query string) and the
//! socket op, and the page of hits both answer with.

use magpie_core::{ConvId, ServerMsgId, UserId};
use serde::{Deserialize, Serialize};

/// The order of hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchOrder {
    /// Newest first (the default).
    #[default]
    Newest,
    /// Best match first.
    Relevance,
}

/// A query: every word of `text` must match (a Chinese, Japanese or
/// Korean run matches where it appears as written).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchParams {
    pub text: String,
    /// Only this conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<ConvId>,
    /// Only messages from this sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    /// Sent at or after (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Sent at or before (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(default)]
    pub order: SearchOrder,
    /// The `next` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A piece of a snippet; `hit` where the query matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetPart {
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hit: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub server_id: ServerMsgId,
    pub conv: ConvId,
    pub seq: i64,
    pub from: UserId,
    pub sent_at: i64,
    /// The match's score (`order: relevance` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Up to 160 characters of the body around the best match.
    pub snippet: Vec<SnippetPart>,
}

/// One page of hits; `next` (absent on the last page) is the `cursor` of
/// the next. `rebuilding`: the answering node is rebuilding its index, so
/// older messages may be missing for now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuilding: bool,
}

#[cfg(test)]
mod tests {
    use crate::{ClientOp, decode_client};

    #[test]
    fn the_search_op_decodes() {
        let f = decode_client(br#"{"op":"search","rid":3,"text":"hi","limit":2}"#).unwrap();
        let ClientOp::Search { query } = f.op else {
            panic!("{:?}", f.op)
        };
        assert_eq!(
            (query.text.as_str(), query.limit, f.rid),
            ("hi", Some(2), Some(3))
        );
    }

    #[test]
    fn the_result_round_trips() {
        use super::*;
        let frame = crate::ServerFrame::SearchResult {
            rid: Some(3),
            page: SearchPage {
                hits: vec![SearchHit {
                    server_id: ServerMsgId(7),
                    conv: ConvId::direct(UserId(1), UserId(2)),
                    seq: 1,
                    from: UserId(1),
                    sent_at: 5,
                    score: Some(1.5),
                    snippet: vec![SnippetPart {
                        text: "你好".into(),
                        hit: true,
                    }],
                }],
                next: Some("b7".into()),
                rebuilding: false,
            },
        };
        let text = frame.encode();
        let back: crate::ServerFrame = serde_json::from_slice(&text).unwrap();
        assert_eq!(back, frame, "{}", String::from_utf8_lossy(&text));
    }
}
