//! The connection role: WebSocket and TCP listeners, the per-connection
//! session, and the local hub that pushes reach connections through.
//!
//! Invariant: no business logic here beyond framing, heartbeats, the
//! unacknowledged window and resends; requests go to `crate::logic`.

pub mod groups;
mod handshake;
pub mod hub;
mod inflight;
pub mod mailbox;
mod requests;
pub mod rooms;
pub mod session;
pub mod tcp;
pub mod transport;
pub mod ws;
