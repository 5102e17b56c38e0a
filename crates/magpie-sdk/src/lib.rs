//! Magpie client SDK: an HTTP client for every route (`HttpClient`) and a
//! long-lived socket session (`Client`) that delivers each message exactly
//! once and in order, acknowledges it, keeps the connection alive, and
//! reconnects and resyncs by itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), magpie_sdk::SdkError> {
//! use magpie_sdk::{Client, Event, HttpClient};
//! let http = HttpClient::new("http://127.0.0.1:8080")?;
//! let tokens = http.login("alice", "secret", None).await?;
//! let client = Client::connect("http://127.0.0.1:8080", tokens, None).await?;
//! client.send(magpie_sdk::core::UserId(2), "hello").await?;
//! while let Some(ev) = client.next_event().await {
//!     if let Event::Message(m) = ev {
//!         println!("{}: {}", m.from, m.body);
//!     }
//! }
//! # Ok(()) }
//! ```

pub use magpie_core::backoff;
pub mod client;
pub mod conn;
pub mod connector;
pub mod dedup;
mod delivery;
pub mod error;
mod feed_ops;
mod feeds;
mod groups;
pub mod http;
mod requests;
mod rooms;
pub mod search;
pub mod session;
mod typing;

pub use backoff::Backoff;
pub use client::{Client, ClientOptions, Event};
pub use conn::{Conn, Welcome};
pub use connector::{Connector, HttpConnector};
pub use error::{Result, SdkError};
pub use http::{HistoryQuery, HttpClient};
pub use rooms::RoomSent;

/// The domain and wire types the API speaks, re-exported so applications need no other dependency.
pub use magpie_core as core;
pub use magpie_proto as proto;
