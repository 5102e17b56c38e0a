//! Queries: the words of the text (all must match; a CJK run as written),
//! restricted inside the query to the conversations the caller may see,
//! then post-filtered by each conversation's visible-from floor, over-
//! fetching until a page is full (docs/search.md, "Who sees what").

use crate::error::{Result, SearchError};
use crate::index::SearchIndex;
use crate::schema::ANALYZER;
use crate::tokenizer::{Piece, pieces};
use magpie_core::{ConvId, Seq, ServerMsgId, UserId};
use std::collections::HashMap;
use std::ops::Bound;
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Order, Searcher, TantivyDocument, Term};

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ranking {
    /// Newest message first (by server id, which is time-ordered).
    #[default]
    Newest,
    /// Best match first (BM25).
    Relevance,
}

/// A query, with the caller's visibility already resolved.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: String,
    /// The caller: every direct conversation it is a member of is in scope.
    /// `None` leaves direct conversations out.
    pub party: Option<UserId>,
    /// The groups in scope, each with the sequence above which its messages
    /// are visible to the caller (its join position).
    pub groups: Vec<(ConvId, Seq)>,
    /// Only this conversation (it must be in scope to give anything).
    pub conv: Option<ConvId>,
    pub from: Option<UserId>,
    /// `sent_at` bounds, epoch ms, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub ranking: Ranking,
    pub cursor: Option<String>,
    pub limit: usize,
    /// Now, epoch ms: expired (`days:N`) messages are never returned.
    pub now: i64,
}

/// One part of a snippet: text, highlighted where it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub text: String,
    pub hit: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub server_id: ServerMsgId,
    pub conv: ConvId,
    pub seq: Seq,
    pub from: UserId,
    pub sent_at: i64,
    pub score: f32,
    pub snippet: Vec<Fragment>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// Where the next page starts; `None` when there is no more.
    pub next: Option<String>,
}

/// Rounds of over-fetching before a page is returned short (still with a
/// cursor, so the caller goes on where it stopped).
const ROUNDS: usize = 6;

impl SearchIndex {
    pub fn search(&self, q: &SearchQuery) -> Result<Found> {
        let f = self.inner.fields;
        let text = self.text_query(&q.text)?;
        if (q.party.is_none() && q.groups.is_empty()) || q.limit == 0 {
            return Ok(Found::default());
        }
        let floors: HashMap<&str, Seq> = q.groups.iter().map(|(c, s)| (c.as_str(), *s)).collect();
        let visible = |conv: &ConvId, seq: Seq| match conv.group_id() {
            Some(_) => floors.get(conv.as_str()).is_some_and(|&floor| seq > floor),
            None => q.party.is_some_and(|me| conv.peer_of(me).is_some()),
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text.box_clone())];
        // The scope inside the query: the caller's direct conversations or
        // its groups; the floors are applied to what comes back.
        let mut scope: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(me) = q.party {
            let t = Term::from_field_i64(f.party, me.0);
            scope.push((
                Occur::Should,
                Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
            ));
        }
        if !q.groups.is_empty() {
            let convs = q
                .groups
                .iter()
                .map(|(c, _)| Term::from_field_text(f.conv, c.as_str()));
            scope.push((Occur::Should, Box::new(TermSetQuery::new(convs))));
        }
        must.push((Occur::Must, Box::new(BooleanQuery::new(scope))));
        if let Some(c) = &q.conv {
            let t = Term::from_field_text(f.conv, c.as_str());
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
            ));
        }
        let live = Term::from_field_i64(f.expire_at, q.now);
        must.push((
            Occur::Must,
            Box::new(RangeQuery::new(Bound::Excluded(live), Bound::Unbounded)),
        ));
        if let Some(u) = q.from {
            let t = Term::from_field_i64(f.from, u.0);
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(t, IndexRecordOption::Basic)),
            ));
        }
        if q.since.is_some() || q.until.is_some() {
            let b = |v: Option<i64>| {
                v.map_or(Bound::Unbounded, |t| {
                    Bound::Included(Term::from_field_i64(f.sent_at, t))
                })
            };
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(b(q.since), b(q.until))),
            ));
        }
        let searcher = self.inner.reader.searcher();
        let mut snippets = SnippetGenerator::create(&searcher, text.as_ref(), f.body)?;
        snippets.set_max_num_chars(160);
        let want = q.limit;
        let batch = want * 3 + 10;
        let mut hits = Vec::with_capacity(want);
        let mut cursor = Cursor::parse(q.cursor.as_deref(), q.ranking)?;
        for _ in 0..ROUNDS {
            let mut clauses: Vec<(Occur, Box<dyn Query>)> =
                must.iter().map(|(o, c)| (*o, c.box_clone())).collect();
            if let Cursor::Before(id) = cursor {
                let t = Term::from_field_i64(f.id, id);
                clauses.push((
                    Occur::Must,
                    Box::new(RangeQuery::new(Bound::Unbounded, Bound::Excluded(t))),
                ));
            }
            let query = BooleanQuery::new(clauses);
            let candidates: Vec<(f32, DocAddress)> = match cursor {
                Cursor::Before(_) | Cursor::Start => searcher
                    .search(
                        &query,
                        &TopDocs::with_limit(batch).order_by_fast_field::<i64>("id", Order::Desc),
                    )?
                    .into_iter()
                    .map(|(_, a)| (0.0, a))
                    .collect(),
                Cursor::Offset(n) => searcher.search(
                    &query,
                    &TopDocs::with_limit(batch).and_offset(n).order_by_score(),
                )?,
            };
            let exhausted = candidates.len() < batch;
            for (i, (score, addr)) in candidates.iter().enumerate() {
                let hit = self.hit(&searcher, &snippets, *addr, *score)?;
                cursor = cursor.past(hit.server_id.0);
                if visible(&hit.conv, hit.seq) {
                    hits.push(hit);
                }
                if hits.len() == want {
                    let more = !exhausted || i + 1 < candidates.len();
                    return Ok(Found {
                        hits,
                        next: more.then(|| cursor.to_string()),
                    });
                }
            }
            if exhausted {
                return Ok(Found { hits, next: None });
            }
        }
        Ok(Found {
            hits,
            next: Some(cursor.to_string()),
        })
    }

    /// All the words of `text` must match; a CJK run matches as written
    /// (bigram: its bigrams at consecutive positions) or by every word the
    /// segmenter cuts from it (jieba).
    fn text_query(&self, text: &str) -> Result<Box<dyn Query>> {
        let body = self.inner.fields.body;
        let mut analyzer = self
            .inner
            .index
            .tokenizers()
            .get(ANALYZER)
            .ok_or_else(|| SearchError::Unavailable("analyzer missing".into()))?;
        let term = |t: &str| Term::from_field_text(body, t);
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for piece in pieces(text) {
            let query: Box<dyn Query> = match piece {
                Piece::Word(w, _) => {
                    let mut stream = analyzer.token_stream(w);
                    let Some(t) = stream.next().map(|t| t.text.clone()) else {
                        continue;
                    };
                    Box::new(TermQuery::new(term(&t), IndexRecordOption::WithFreqs))
                }
                Piece::Cjk(run, _) => {
                    let (terms, phrase) = self.inner.segmenter.query_run(run);
                    let mut terms: Vec<Term> = terms.iter().map(|t| term(t)).collect();
                    match terms.len() {
                        0 => continue,
                        1 => Box::new(TermQuery::new(
                            terms.remove(0),
                            IndexRecordOption::WithFreqs,
                        )),
                        _ if phrase => Box::new(PhraseQuery::new_with_offset(
                            terms.into_iter().enumerate().collect(),
                        )),
                        _ => Box::new(BooleanQuery::new(
                            terms
                                .into_iter()
                                .map(|t| {
                                    let q: Box<dyn Query> =
                                        Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs));
                                    (Occur::Must, q)
                                })
                                .collect(),
                        )),
                    }
                }
            };
            parts.push((Occur::Must, query));
        }
        if parts.is_empty() {
            return Err(SearchError::BadQuery(
                "the text has no words to search for".into(),
            ));
        }
        Ok(Box::new(BooleanQuery::new(parts)))
    }

    fn hit(
        &self,
        searcher: &Searcher,
        snippets: &SnippetGenerator,
        addr: DocAddress,
        score: f32,
    ) -> Result<Hit> {
        let f = self.inner.fields;
        let doc: TantivyDocument = searcher.doc(addr)?;
        let int = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_i64())
                .unwrap_or_default()
        };
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let conv = ConvId::parse(&text(f.conv))
            .map_err(|e| SearchError::Unavailable(format!("corrupt document: {e}")))?;
        let body = text(f.body);
        Ok(Hit {
            server_id: ServerMsgId(int(f.id)),
            conv,
            seq: int(f.seq),
            from: UserId(int(f.from)),
            sent_at: int(f.sent_at),
            score,
            snippet: fragments(&snippets.snippet(&body)),
        })
    }
}

/// A snippet as alternating plain and highlighted text (overlapping
/// bigram highlights merged).
fn fragments(s: &tantivy::snippet::Snippet) -> Vec<Fragment> {
    let text = s.fragment();
    let mut ranges: Vec<std::ops::Range<usize>> = s.highlighted().to_vec();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    for r in merged {
        if r.start > at {
            out.push(Fragment {
                text: text[at..r.start].to_string(),
                hit: false,
            });
        }
        out.push(Fragment {
            text: text[r.clone()].to_string(),
            hit: true,
        });
        at = r.end;
    }
    if at < text.len() {
        out.push(Fragment {
            text: text[at..].to_string(),
            hit: false,
        });
    }
    out
}

/// Where a page starts: newest-first pages go below the last id seen,
/// relevance pages skip the candidates already looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Start,
    Before(i64),
    Offset(usize),
}

impl Cursor {
    fn parse(s: Option<&str>, ranking: Ranking) -> Result<Cursor> {
        let bad = || SearchError::BadQuery("cursor: not one this server gave".into());
        match (s, ranking) {
            (None, Ranking::Newest) => Ok(Cursor::Start),
            (None, Ranking::Relevance) => Ok(Cursor::Offset(0)),
            (Some(s), Ranking::Newest) => s
                .strip_prefix('b')
                .and_then(|n| n.parse().ok())
                .map(Cursor::Before)
                .ok_or_else(bad),
            (Some(s), Ranking::Relevance) => s
                .strip_prefix('o')
                .and_then(|n| n.parse().ok())
                .map(Cursor::Offset)
                .ok_or_else(bad),
        }
    }

    /// The cursor once the candidate with server id `id` was looked at.
    fn past(self, id: i64) -> Cursor {
        match self {
            Cursor::Start | Cursor::Before(_) => Cursor::Before(id),
            Cursor::Offset(n) => Cursor::Offset(n + 1),
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Start => Ok(()),
            Cursor::Before(id) => write!(f, "b{id}"),
            Cursor::Offset(n) => write!(f, "o{n}"),
        }
    }
}
