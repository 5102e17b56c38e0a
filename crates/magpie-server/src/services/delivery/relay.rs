//! Delivery over the relay: what this node pushes through other nodes
//! (one delivery event per node, on subject `node.{node}`) and broadcasts
//! to the nodes with an audience (super-group and room messages, on the
//! group's or room's own subject, `interest.rs`), and the subscriptions
//! that bring those to the connections here.
//!
//! Invariant (ARCHITECTURE.md, "two bus paths"): the relay may lose what it
//! carries, never silently. Every gap it reports, and every relay message
//! that could not be published, becomes a `resync` hint (`pushes_lost`) to
//! the clients that may have missed something, who then sync by sequence
//! from the store. Nothing on this path is the only copy of a message.

use super::Delivery;
use crate::metrics::meters;
use magpie_bus::{RelayEvent, RelaySubscription};
use magpie_core::{BusEvent, Envelope, EventId, node_topic};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The `resync` reason for pushes the relay may have lost.
const PUSHES_LOST: &str = "pushes_lost";
/// How long gap reports are gathered into one hint.
const HINT_COALESCE: Duration = Duration::from_millis(100);

impl Delivery {
    /// Publishes events on the relay, each on its own subject (a node's
    /// deliveries, or the broadcast subject). A publish that fails is a
    /// loss the subscribers are told of as a gap.
    pub(super) fn relay_events(&self, events: Vec<(BusEvent, EventId)>) {
        for (event, id) in events {
            let env = match Envelope::seal(&event, &id) {
                Ok(env) => env,
                Err(e) => {
                    tracing::error!(error = %e, "relay event not encodable");
                    continue;
                }
            };
            meters().relayed.increment(1);
            if let Err(e) = self.relay.publish(&env.topic, env.payload.into()) {
                tracing::debug!(error = %e, "relay publish failed; receivers are told to sync");
            }
        }
    }

    /// Receives, until `shutdown`, the deliveries other nodes address to
    /// this one and the broadcasts of the topics this node listens to
    /// (`interest.rs`; connection nodes only).
    pub async fn run_relay(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut broadcasts) = self.interest.inbox.lock().take() else {
            return;
        };
        let Some(mut mine) = self.subscribe(&node_topic(self.node())).await else {
            return;
        };
        // Gaps often come in bursts (a reconnect reports every stream at
        // once): one hint per burst, sent at its end, so every gap is
        // followed by a hint.
        let mut hint_at: Option<Instant> = None;
        loop {
            let event = tokio::select! {
                e = mine.next() => e,
                Some(e) = broadcasts.recv() => Some(e),
                _ = sleep_until_some(hint_at) => {
                    hint_at = None;
                    let told = self.resync_all(PUSHES_LOST);
                    tracing::info!(told, "relay gap: clients here told to sync");
                    continue;
                }
                _ = shutdown.cancelled() => {
                    self.interest.stop_all();
                    return;
                }
            };
            match event {
                Some(RelayEvent::Message { payload, .. }) => self.arrive_relayed(&payload).await,
                Some(RelayEvent::Gap { from }) => {
                    tracing::debug!(from = ?from, "relay gap");
                    hint_at.get_or_insert_with(|| Instant::now() + HINT_COALESCE);
                }
                None => {
                    tracing::error!("relay closed: pushes between nodes stop; clients sync");
                    self.resync_all(PUSHES_LOST);
                    return;
                }
            }
        }
    }

    async fn subscribe(&self, subject: &str) -> Option<RelaySubscription> {
        match self.relay.subscribe(subject).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, subject, "relay subscription failed");
                None
            }
        }
    }

    async fn arrive_relayed(&self, payload: &[u8]) {
        match Envelope::open(payload) {
            Ok(event @ BusEvent::Deliver { .. }) => {
                self.arrive_delivery(std::slice::from_ref(&event)).await
            }
            Ok(event) => self.arrive_broadcast(std::slice::from_ref(&event)),
            Err(e) => tracing::warn!(error = %e, "relay payload not decodable"),
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
