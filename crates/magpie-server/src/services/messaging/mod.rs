//! The messaging service: send (through the node's pipeline), sync,
//! history, unread counts, read positions, delivered acks and coalesced
//! group receipts.
//!
//! Invariants (ARCHITECTURE.md): a sender is acknowledged only after the
//! store committed its message and the bus took its event
//! (`pipeline.rs`); unread counts and read-by lists derive from sequences
//! and read positions, any counter is a cache (`sync.rs`); a client message
//! id answers with the original result (`send.rs`); a device's chained
//! sends are made durable in chain order (`chain.rs`).

mod acks;
mod chain;
mod member_events;
mod mentions;
mod pipeline;
mod read;
mod receipts;
mod revise;
mod send;
mod sync;

use super::alarms::Alarms;
use super::delivery::Delivery;
use super::{Events, Traces, Users};
use crate::config::Config;
use magpie_core::MsgIdGen;
use magpie_store::{State, Store};
use std::sync::Arc;

pub use pipeline::Pipeline;
pub use revise::MessagesConfig;
pub use send::{SendDefaults, SendInput};

pub struct Messaging {
    cfg: Arc<Config>,
    store: Store,
    state: State,
    events: Events,
    ids: Arc<MsgIdGen>,
    users: Arc<Users>,
    delivery: Arc<Delivery>,
    traces: Arc<Traces>,
    /// Where every checked send goes to be made durable.
    pipeline: Pipeline,
    /// Held chained sends and devices' chain gaps on this node.
    chains: chain::Chains,
    /// Where a chain gap is raised for the console (`services/alarms.rs`).
    alarms: Arc<Alarms>,
}

/// What the messaging service is built from.
pub struct MessagingParts {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub state: State,
    pub events: Events,
    pub ids: Arc<MsgIdGen>,
    pub users: Arc<Users>,
    pub delivery: Arc<Delivery>,
    pub traces: Arc<Traces>,
    pub alarms: Arc<Alarms>,
}

impl Messaging {
    pub fn new(p: MessagingParts) -> Messaging {
        Messaging {
            cfg: p.cfg,
            store: p.store,
            state: p.state,
            events: p.events,
            ids: p.ids,
            users: p.users,
            delivery: p.delivery,
            traces: p.traces,
            pipeline: Pipeline::default(),
            chains: chain::Chains::default(),
            alarms: p.alarms,
        }
    }

    /// Starts the send pipeline's two stages (`pipeline.rs`); they stop
    /// once `shutdown` is cancelled, after answering what they hold.
    pub fn spawn(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<(String, tokio::task::JoinHandle<()>)> {
        pipeline::spawn(self, shutdown)
    }

    fn page_limit(&self, limit: Option<usize>, default: usize) -> usize {
        limit.unwrap_or(default).clamp(1, self.cfg.limits.max_page)
    }
}
