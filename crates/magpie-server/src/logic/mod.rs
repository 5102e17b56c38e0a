//! The message logic: send, sync, history, unread,
//! read and presence. Roles call these; they only see the traits.
//!
//! Invariants:
//! - the sender is acknowledged only after the store has committed the
//!   message AND the bus has durably taken its event;
//! - pushes are best effort and never fail a send;
//! - a client message id, scoped to its sender, always answers with the
//!   original server id and sequence (fast path in state, truth in the store).

mod events;
mod groups;
pub(crate) mod pipeline;
mod push;
mod read;
mod receipts;
mod republish;
mod rooms;
mod send;
mod sync;

pub use pipeline::Pipeline;
pub use receipts::GroupReceipts;
pub use send::SendInput;
