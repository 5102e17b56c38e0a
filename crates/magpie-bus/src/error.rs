//! The one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus could not take or give events right now; retry later. A
    /// publish that fails with this was not acknowledged.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The configuration names a backend that does not exist or is malformed.
    #[error("bad bus configuration: {0}")]
    Config(String),
}

impl From<rusqlite::Error> for BusError {
    fn from(e: rusqlite::Error) -> Self {
        BusError::Unavailable(e.to_string())
    }
}
