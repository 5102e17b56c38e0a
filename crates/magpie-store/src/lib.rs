//! Durable store and fast state: the traits the server is written against,
//! their embedded implementations, and one conformance suite per trait.
//!
//! - [`Store`] is the durable truth (SQLite, PostgreSQL or MySQL): users,
//!   settings, message bodies, the per-user conversation index,
//!   per-conversation sequences, read positions and the unique (sender,
//!   client message id) key behind idempotency.
//! - [`State`] is derived, fast state (in process, or Redis): routes, tickets, the
//!   idempotency fast path, offline sorted sets and unread counters. Losing it
//!   may delay a message, never lose one.
//!
//! Callers hold the concrete handles [`Store`] and [`State`]; a `Store`
//! reaches its domains through `accounts()`, `messages()`, `groups()` and
//! `retention()` (the traits are in [`backend`], for implementors). The backend is
//! chosen by URL (`sqlite://path`, `mem://`); a store URL that lists
//! several SQL databases is a [`ShardedStore`] over them. Backend error types never leave
//! their module: they become [`StoreError`].

pub mod backend;
mod error;
pub mod mem;
pub mod offline;
mod plan;
mod read_counts;
#[cfg(feature = "redis")]
pub mod redis_state;
pub mod round_trips;
pub mod shards;
#[cfg(feature = "sql")]
pub mod sql;
pub mod sqlite;
mod state;
mod store;
pub mod testsuite;

pub use error::StoreError;
pub use offline::{Bucket, BucketUnit, OfflineOptions, Segment};
pub use shards::{Place, ShardedStore};
pub use state::{
    BigAuthors, ChainAdvance, FLOOR_UNKNOWN, Floor, InboxPage, NodeInfo, OFFLINE_CAP, Route, State,
    StateBackend, TicketClaims, UnreadCache, Watcher,
};
pub use store::{
    ConvSummary, FollowCounts, Outcome, Page, PostOutcome, ProfileRecord, ReadBy, RefreshUse,
    RetentionHit, Retire, Store, StoreOptions, UserRecord,
};
