//! The fields of a message document and how a message becomes one.
//!
//! One document per message, keyed by its server id: indexing a message
//! again deletes the earlier copy in the same commit, so replaying the
//! message stream (a worker restarted before it acknowledged, a rebuild
//! racing the stream) leaves exactly one document per message.

use crate::segment::Segmenter;
use crate::tokenizer::BodyTokenizer;
use magpie_core::{Message, Persistence};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{Language, RemoveLongFilter, Stemmer, TextAnalyzer};
use tantivy::{Index, TantivyDocument, Term};

/// The analyzer's name in the index's tokenizer registry.
pub const ANALYZER: &str = "magpie";

/// Never expires (a `forever` message).
pub const NEVER: i64 = i64::MAX;

#[derive(Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub conv: Field,
    /// Both members of a direct conversation (none for a group): a user's
    /// direct conversations are `party = user`, with no list to look up.
    pub party: Field,
    pub seq: Field,
    pub from: Field,
    pub sent_at: Field,
    pub expire_at: Field,
    pub body: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_i64_field("id", INDEXED | FAST | STORED),
        conv: b.add_text_field("conv", STRING | STORED),
        party: b.add_i64_field("party", INDEXED),
        seq: b.add_i64_field("seq", STORED),
        from: b.add_i64_field("from", INDEXED | STORED),
        // Ranges only (`RangeQuery` reads a fast field when there is one):
        // not in the inverted index, where each distinct time would be a
        // term to write and merge. Indexes created before kept `INDEXED`
        // on both; their schema is their own and queries run the same.
        sent_at: b.add_i64_field("sent_at", FAST | STORED),
        expire_at: b.add_i64_field("expire_at", FAST),
        body: b.add_text_field("body", text),
    };
    (b.build(), fields)
}

/// Registers the analyzer: CJK tokens of `segmenter` and lowercased
/// words, long tokens dropped, English stems (a stemmer leaves CJK tokens
/// as they are).
pub fn register(index: &Index, segmenter: Segmenter) {
    let analyzer = TextAnalyzer::builder(BodyTokenizer { segmenter })
        .filter(RemoveLongFilter::limit(64))
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register(ANALYZER, analyzer);
}

/// Whether `m` goes into the index: its sender allowed it at acceptance,
/// and the store keeps it (a `none` or `offline` message is deleted once
/// delivered or read, so it is never indexed: the index never outlives
/// the store's copy).
pub fn indexable(m: &Message) -> bool {
    m.search && matches!(m.persistence, Persistence::Forever | Persistence::Days(_))
}

/// When the store deletes `m` (`days:N`), epoch ms; `NEVER` otherwise.
pub fn expire_at(m: &Message) -> i64 {
    match m.persistence {
        Persistence::Days(d) => m.sent_at.saturating_add(i64::from(d) * 86_400_000),
        _ => NEVER,
    }
}

pub fn document(f: &Fields, m: &Message) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    d.add_i64(f.id, m.server_id.0);
    d.add_text(f.conv, m.conv.as_str());
    if let Some((a, b)) = m.conv.direct_members() {
        d.add_i64(f.party, a.0);
        d.add_i64(f.party, b.0);
    }
    d.add_i64(f.seq, m.seq);
    d.add_i64(f.from, m.from.0);
    d.add_i64(f.sent_at, m.sent_at);
    d.add_i64(f.expire_at, expire_at(m));
    d.add_text(f.body, &m.body);
    d
}

pub fn id_term(f: &Fields, id: i64) -> Term {
    Term::from_field_i64(f.id, id)
}

/// The highest server id among the documents `searcher` sees (deleted ones
/// included), `i64::MIN` in an empty index.
pub fn highest_id(searcher: &tantivy::Searcher) -> i64 {
    searcher
        .segment_readers()
        .iter()
        .filter_map(|s| s.fast_fields().i64("id").ok())
        .filter(|c| c.num_docs() > 0)
        .map(|c| c.max_value())
        .max()
        .unwrap_or(i64::MIN)
}
