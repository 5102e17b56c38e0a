//! Message search (docs/search.md): a tantivy index of message bodies with
//! a dictionary-free CJK tokenizer (`tokenizer.rs`; jieba word segmentation
//! as an option, `segment.rs`), one document per
//! message keyed by its server id (`schema.rs`), a group-committing writer
//! (`index.rs`) and visibility-restricted queries (`query.rs`).
//!
//! **Invariants:** a message is indexed only if `schema::indexable` (its
//! sender allowed it at acceptance, and the store keeps it); indexing the
//! same message twice leaves one document; `SearchIndex::commit` returns
//! only after everything staged before it is durable and visible; an index
//! is read with the segmenter that wrote it; a query
//! returns nothing outside the scope it is given, nor at or below a
//! conversation's floor, nor anything expired.

mod error;
mod index;
mod query;
pub mod schema;
mod segment;
pub mod tokenizer;

pub use error::{Result, SearchError};
pub use index::{Batch, SearchIndex};
pub use query::{Found, Fragment, Hit, Ranking, SearchQuery};
pub use segment::Segmenter;
