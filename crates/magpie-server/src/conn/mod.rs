//! The connection role: WebSocket and TCP listeners and the per-connection
//! session; pushes reach a session through its mailbox in the delivery
//! service's hub (`services/delivery`).
//!
//! Invariant: no business logic here beyond framing, heartbeats, the
//! unacknowledged window and resends; requests go to `crate::services`.

mod feed_ops;
mod handshake;
mod inflight;
mod receipts;
mod requests;
pub mod session;
pub mod tcp;
pub mod transport;
pub mod ws;
