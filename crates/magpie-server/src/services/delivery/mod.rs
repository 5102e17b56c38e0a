//! The delivery service: best-effort pushes to the devices online now.
//!
//! It owns this node's connection table (`hub.rs`, each connection's
//! bounded `mailbox.rs`), the local indexes of the broadcast path
//! (`group_index.rs`, `room_index.rs`), and the routes in state. Other
//! services hand it messages and notices; it finds who is online where,
//! pushes to connections here and publishes one delivery event per other
//! node (`push.rs`), and applies what other nodes address to this one
//! (`arrive.rs`). It is the one service that writes wire frames: a push is
//! encoded once for every device it goes to (`notice.rs`).
//!
//! Invariant: a push that fails is not an error. The message is durable and
//! the device gets it by resend or sync; a loss this node can see (a bus
//! outage, a state that lost its routes) becomes a `resync` hint to the
//! clients connected here.

mod arrive;
mod audit;
mod connections;
pub mod group_index;
pub mod hub;
mod interest;
pub mod mailbox;
mod members;
mod notice;
mod push;
mod reads;
mod relay;
pub mod room_index;

use crate::config::Config;
use crate::metrics::{self as m, meters};
use hub::{Hub, Outbound};
use magpie_bus::Relay;
use magpie_core::{MsgIdGen, UserId};
use magpie_proto::ServerFrame;
use magpie_store::{State, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use audit::Audit;
pub use connections::{Registered, RouteCheck};
pub use members::{Stamps, note_stamp};
pub use notice::Notice;
pub use reads::{PendingReads, owner_of, split_by_owner};

/// Routes written back per state call.
const RESTORE_BATCH: usize = 1000;

/// A connection's address: the user and the connection's id on its node.
pub type ConnAddr = (UserId, u64);

pub struct Delivery {
    /// This node's message hops (forwarded, offline; sessions record pushes).
    pub traces: Arc<crate::services::Traces>,
    cfg: Arc<Config>,
    /// Group sizes and member lists (who a small group's message goes to).
    store: Store,
    /// Routes: which node holds which device's connection.
    state: State,
    /// Best-effort transport to other nodes (`relay.rs`).
    relay: Relay,
    /// Unique ids for delivery events.
    ids: Arc<MsgIdGen>,
    pub hub: Hub,
    /// Group → members connected here (super-group broadcasts).
    pub groups: group_index::GroupIndex,
    /// Live rooms' audiences, recent buffers and limiters on this node.
    pub rooms: room_index::Rooms,
    /// The broadcast topics this node listens to (`interest.rs`).
    interest: interest::Interest,
    /// Super-group and room messages that reached this node over the relay.
    broadcasts_arrived: AtomicU64,
    /// Group reads waiting for their receipts' flush (`reads.rs`).
    reads: reads::PendingReads,
    /// Small groups' member lists (`members.rs`).
    member_lists: members::MemberLists,
}

impl Delivery {
    pub fn new(
        cfg: Arc<Config>,
        store: Store,
        state: State,
        relay: Relay,
        ids: Arc<MsgIdGen>,
        traces: Arc<crate::services::Traces>,
    ) -> Delivery {
        Delivery {
            traces,
            store,
            state,
            relay,
            ids,
            hub: Hub::default(),
            groups: Default::default(),
            rooms: Default::default(),
            interest: interest::Interest::new(),
            broadcasts_arrived: AtomicU64::new(0),
            reads: Default::default(),
            member_lists: members::MemberLists::new(cfg.groups.member_cache),
            cfg,
        }
    }

    /// The relay this node pushes to other nodes through (its counters;
    /// tests use its fault knob).
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Super-group and room messages that reached this node over the relay
    /// (a node with no audience for a group or room gets none of its).
    pub fn broadcasts_arrived(&self) -> u64 {
        self.broadcasts_arrived.load(Ordering::Relaxed)
    }

    fn node(&self) -> &str {
        &self.cfg.node
    }

    /// Tells every client connected here to sync (`resync` with `reason`):
    /// something this node should have pushed may be lost. Returns how many
    /// connections took the hint.
    pub fn resync_all(&self, reason: &str) -> u64 {
        let frame = Outbound::frame(&ServerFrame::Resync {
            reason: reason.into(),
        });
        let n = self.hub.deliver_all(&frame);
        meters().resync_hints.increment(n);
        n
    }

    /// A push to a connection of this node that does not exist means the
    /// route outlived it: the send path decides, after a failed push,
    /// whether the route is stale. Removes such routes, conditionally:
    /// only while they still name that connection here. A connection that
    /// is merely closing is left to its own clean-up.
    pub(crate) async fn drop_stale_routes(&self, failed: &[ConnAddr]) {
        let gone: Vec<ConnAddr> = failed
            .iter()
            .copied()
            .filter(|(u, c)| !self.hub.has(*u, *c))
            .collect();
        if gone.is_empty() {
            return;
        }
        let users: Vec<UserId> = gone.iter().map(|(u, _)| *u).collect();
        let Ok(routes) = self.state.routes(&users).await else {
            return;
        };
        for route in routes.values().flatten() {
            if route.node == self.node() && gone.contains(&(route.user, route.conn)) {
                let removed = self
                    .state
                    .remove_route(route.user, &route.device, &route.node, route.conn)
                    .await;
                if matches!(removed, Ok(true)) {
                    metrics::counter!(m::STALE_ROUTES).increment(1);
                    tracing::debug!(user = %route.user, conn = route.conn, "stale route removed");
                }
            }
        }
    }

    /// After the state lost this node's record (Redis restarted empty),
    /// writes back the routes of every connection here that are missing,
    /// then tells those clients to sync what was not pushed meanwhile.
    /// Returns (connections here, routes restored).
    pub async fn restore_routes(&self) -> (usize, usize) {
        let routes = self.hub.routes(self.node());
        if routes.is_empty() {
            return (0, 0);
        }
        let mut restored = 0;
        for chunk in routes.chunks(RESTORE_BATCH) {
            match self.state.restore_routes(chunk).await {
                Ok(n) => restored += n,
                Err(e) => {
                    // The connections' own heartbeats re-assert what is left.
                    tracing::warn!(error = %e, "restoring routes failed");
                    break;
                }
            }
        }
        self.resync_all("route_restored");
        (routes.len(), restored)
    }
}
