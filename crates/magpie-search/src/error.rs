//! The one error type of the search crate, named for what the caller does.

/// A search failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SearchError {
    /// The query cannot be run as given (no words, a bad cursor): fix it.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// The configuration names what this build cannot do: fix it.
    #[error("search configuration: {0}")]
    Config(String),
    /// The index cannot be used now (I/O, a writer that stopped): retry later.
    #[error("search index unavailable: {0}")]
    Unavailable(String),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Unavailable(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, SearchError>;
