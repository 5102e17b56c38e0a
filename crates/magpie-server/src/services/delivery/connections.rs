//! A client connection's life as the delivery service sees it: registered
//! in the hub (replacing the device's older connection), its user indexed
//! for super-group broadcasts, its route recorded in state (re-asserted by
//! the node's route audit, `audit.rs`, or by the connection's heartbeat
//! after a write that failed); all of it removed at close.
//!
//! Invariant: the state's routes are derived. A route that had to be
//! re-created, or a state that could not be reached, means pushes may have
//! missed the connection: the caller asks its client to sync.

use super::Delivery;
use super::hub::{ConnEntry, Kill};
use super::mailbox::Mailbox;
use magpie_core::{DeviceId, UserId, now_ms};
use magpie_store::Route;
use std::sync::Arc;

/// A registered connection: its queue, its kill switch and its route.
pub struct Registered {
    pub conn: u64,
    pub route: Route,
    pub mailbox: Arc<Mailbox>,
    pub kill: Arc<Kill>,
    /// The route could not be recorded: pushes wait for the next heartbeat.
    pub route_doubt: bool,
}

/// What a heartbeat's route refresh found.
pub enum RouteCheck {
    /// The route is in place; `lost` when it had to be written again (or
    /// an earlier refresh failed): pushes may have been missed.
    Held { lost: bool },
    /// The device connected again elsewhere, later: this connection is stale.
    Superseded,
    /// The state could not be reached.
    Unknown,
}

impl Delivery {
    /// Registers a new connection of `device` (queue of `queue` frames).
    pub async fn register(&self, user: UserId, device: &DeviceId, queue: usize) -> Registered {
        let mailbox = Arc::new(Mailbox::new(queue));
        let kill = Arc::new(Kill::default());
        let conn = self.hub.next_conn_id();
        let since = now_ms();
        let entry = ConnEntry {
            id: conn,
            since,
            user,
            device: device.clone(),
            mailbox: mailbox.clone(),
            kill: kill.clone(),
        };
        if let Some(old) = self.hub.register(entry) {
            old.kill.fire(magpie_proto::ErrorCode::Replaced);
        }
        if self.groups.open(user) {
            match self.store.groups().user_groups(user).await {
                Ok(groups) => {
                    let gained = self.groups.add_groups(user, groups);
                    // Listening before the client is welcomed (interest.rs).
                    self.reconcile_groups(gained).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, %user, "groups not indexed; super-group pushes will wait for sync")
                }
            }
        }
        let route = Route {
            user,
            device: device.clone(),
            node: self.node().to_string(),
            conn,
            since,
        };
        let route_doubt = match self.state.add_route(&route).await {
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, %user, "route not recorded; pushes will wait for sync");
                true
            }
        };
        Registered {
            conn,
            route,
            mailbox,
            kill,
            route_doubt,
        }
    }

    /// Re-asserts a connection's route while it is still registered here
    /// (`None` once it is not), after its first write failed: until it is
    /// recorded, pushes miss the connection.
    pub async fn refresh_route(&self, route: &Route) -> Option<RouteCheck> {
        if !self.hub.has(route.user, route.conn) {
            return None;
        }
        Some(match self.state.add_route(route).await {
            Ok(Some(newer))
                if newer.since > route.since
                    && (newer.node != route.node || newer.conn != route.conn) =>
            {
                // The newer connection owns the route: put it back.
                let _ = self.state.add_route(&newer).await;
                RouteCheck::Superseded
            }
            Ok(prev) => RouteCheck::Held {
                lost: prev.is_none_or(|p| p.node != route.node || p.conn != route.conn),
            },
            Err(e) => {
                tracing::debug!(error = %e, "route refresh failed");
                RouteCheck::Unknown
            }
        })
    }

    /// Removes a closed connection from the hub, the local indexes and the
    /// state's routes (only while the route still names it).
    pub async fn unregister(&self, user: UserId, device: &DeviceId, conn: u64) {
        self.hub.unregister(user, conn);
        for room in self.rooms.leave_all((user, conn)) {
            self.reconcile_room(&room).await;
        }
        let emptied = self.groups.close(user);
        self.reconcile_groups(emptied).await;
        let _ = self
            .state
            .remove_route(user, device, self.node(), conn)
            .await;
    }
}
