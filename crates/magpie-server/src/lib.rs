//! The Magpie server as a library: the services (`services`: messaging,
//! groups, delivery, presence, rooms), the ways in (`edge` for HTTP,
//! `conn` for client connections, `workers` for bus consumers, `cluster`
//! for the node registry), `guard` (limits, bans and intrusion detection
//! at every entrance), and `start`, the composition root that wires
//! them to the backends named by configuration.
//!
//! Layering: `edge`, `conn`, `workers` and `cluster` call the services
//! through [`App`]; the services see only the store, state and bus handles
//! and each other, never `edge` or `conn` (`tests/layers.rs`). Nothing
//! below `start` names a concrete backend.

pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod edge;
pub mod error;
pub mod guard;
mod hashers;
mod http_conn;
pub mod listener;
pub mod logs;
pub mod metrics;
mod roles;
pub mod services;
mod start;
pub mod workers;

pub use app::App;
pub use config::Config;
pub use error::ServerError;
pub use start::{Running, start};
