//! The one error type of this crate. Variants say what the caller must do.

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing being created exists already (e.g. a username).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The caller may not do this (not a member of the group, or the group
    /// is dissolved, or the user is muted there): do not retry.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The backend could not be reached or failed; the operation may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The configuration names a backend that does not exist or is malformed.
    #[error("bad storage configuration: {0}")]
    Config(String),
    /// Stored data could not be decoded: a bug or corruption, do not retry.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
