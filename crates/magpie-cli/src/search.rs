//! `magpie-cli search`: the messages you may see that match a text
//! (docs/search.md), through the SDK; matches shown between `[` and `]`.

use crate::commands::Out;
use crate::error::CliError;
use magpie_core::UserId;
use magpie_proto::search::{SearchHit, SearchOrder, SearchParams};
use magpie_sdk::HttpClient;

/// `d:1:2 #3 from 1: 你好，[鲍勃]`
fn hit_line(h: &SearchHit) -> String {
    let text: String = h
        .snippet
        .iter()
        .map(|p| {
            if p.hit {
                format!("[{}]", p.text)
            } else {
                p.text.clone()
            }
        })
        .collect();
    format!("{} #{} from {}: {text}", h.conv, h.seq, h.from)
}

pub(crate) struct Search {
    pub text: String,
    pub from: Option<i64>,
    pub relevance: bool,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

pub(crate) async fn search(http: &HttpClient, s: Search, out: Out) -> Result<(), CliError> {
    let q = SearchParams {
        text: s.text,
        from: s.from.map(UserId),
        order: if s.relevance {
            SearchOrder::Relevance
        } else {
            SearchOrder::Newest
        },
        cursor: s.cursor,
        limit: s.limit,
        ..Default::default()
    };
    let page = http.search(&q).await?;
    out.value(&page, || {
        let mut lines: Vec<String> = page.hits.iter().map(hit_line).collect();
        match &page.next {
            Some(next) => lines.push(format!("(more: --cursor {next})")),
            None if lines.is_empty() => lines.push("nothing found".into()),
            None => {}
        }
        lines.join("\n")
    });
    Ok(())
}
