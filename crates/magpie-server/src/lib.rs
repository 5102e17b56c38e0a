//! The Magpie server as a library: every role (edge, conn, logic, workers)
//! as modules, and `start`, the composition root that wires them to the
//! backends named by configuration.
//!
//! Layering: `edge` and `conn` call `logic` (methods on [`App`]); `logic`
//! and `workers` see only the store, state and bus handles. Nothing below
//! `start` names a concrete backend.

pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod edge;
pub mod error;
pub mod listener;
pub mod logic;
pub mod metrics;
mod start;
pub mod workers;

pub use app::App;
pub use config::Config;
pub use error::ServerError;
pub use start::{Running, start};
