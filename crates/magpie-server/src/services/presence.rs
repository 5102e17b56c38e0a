//! Presence: a device's online and offline changes, fanned out by the node
//! where they happen to the user's direct contacts (docs/protocol.md §5.7:
//! users who share only a group get none; groups can be large).
//!
//! Presence is ephemeral (ARCHITECTURE.md, "two bus paths"): a change is
//! queued here and pushed through Delivery, so contacts on other nodes get
//! it over the relay; nothing is written to the durable log. Invariants:
//! - a user's changes are fanned out in the order they happened here: one
//!   user always maps to the same queue, and each queue is one task;
//! - announcing never waits: a full queue drops the change and counts it
//!   (`magpie_presence_dropped_total`), so a burst of connects is never
//!   slowed by its contacts' pushes;
//! - a node shutting down still tells its devices' contacts: the queues
//!   outlive the node's shutdown signal and are drained on `close`, which
//!   the drain calls after its sessions ended and its routes were released
//!   (`start.rs`).

use super::delivery::{Delivery, Notice};
use crate::error::Result;
use crate::metrics as m;
use magpie_core::{DeviceId, UserId, now_ms};
use magpie_store::Store;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Fan-out queues (and tasks) per node: contacts' lookups of different
/// users run side by side.
const SHARDS: usize = 4;
/// Changes waiting per queue before new ones are dropped.
const QUEUE: usize = 4096;

pub struct Presence {
    node: String,
    store: Store,
    delivery: Arc<Delivery>,
    queues: Vec<mpsc::Sender<magpie_core::Presence>>,
    /// The queues' receiving ends until `spawn` takes them.
    pending: Mutex<Vec<mpsc::Receiver<magpie_core::Presence>>>,
    /// Cancelled by `close`: the tasks fan out what is queued and stop.
    closed: CancellationToken,
}

impl Presence {
    pub fn new(node: String, store: Store, delivery: Arc<Delivery>) -> Presence {
        let (queues, pending) = (0..SHARDS).map(|_| mpsc::channel(QUEUE)).unzip();
        Presence {
            node,
            store,
            delivery,
            queues,
            pending: Mutex::new(pending),
            closed: CancellationToken::new(),
        }
    }

    /// Starts the fan-out tasks; they stop after `close`.
    pub fn spawn(self: &Arc<Self>) -> Vec<(String, JoinHandle<()>)> {
        let pending = std::mem::take(&mut *self.pending.lock());
        pending
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let task = Arc::clone(self).run(rx);
                (format!("presence-{i}"), tokio::spawn(task))
            })
            .collect()
    }

    /// Fans out what is queued, then stops the tasks; later changes are dropped.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Announces that `device` of `user` came online or went offline here.
    pub fn changed(&self, user: UserId, device: &DeviceId, online: bool, reason: Option<&str>) {
        self.announce(magpie_core::Presence {
            user,
            device: device.clone(),
            online,
            node: self.node.clone(),
            at: now_ms(),
            reason: reason.map(Into::into),
        });
    }

    /// Queues a change (also one the sweeper makes for a dead node's devices).
    pub fn announce(&self, p: magpie_core::Presence) {
        let shard = p.user.0.unsigned_abs() as usize % SHARDS;
        if self.queues[shard].try_send(p).is_err() {
            metrics::counter!(m::PRESENCE_DROPPED).increment(1);
        }
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<magpie_core::Presence>) {
        loop {
            let p = tokio::select! {
                p = rx.recv() => p,
                _ = self.closed.cancelled() => {
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(p) = p else { return };
            if let Err(e) = self.fan_out(&p).await {
                tracing::debug!(user = %p.user, error = %e, "presence fan-out failed");
            }
        }
    }

    /// Tells every direct contact of the change's user.
    async fn fan_out(&self, p: &magpie_core::Presence) -> Result<()> {
        let notice = Notice::Presence {
            user: p.user,
            device: p.device.clone(),
            online: p.online,
            reason: p.reason.clone(),
        };
        for c in self.store.messages().conversations(p.user).await? {
            if c.peer != p.user {
                self.delivery.notify(c.peer, notice.clone()).await;
            }
        }
        Ok(())
    }
}
