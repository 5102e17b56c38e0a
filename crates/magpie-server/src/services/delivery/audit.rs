//! The node's audit of its routes: the one place routes are re-asserted
//! after registration.
//!
//! A connection's heartbeat stays in memory (no state write per connection
//! per heartbeat, which at 300k connections a node would be ~12k Redis
//! writes a second for nothing). Instead the node reads back the routes of
//! all its connections every `cluster.route_audit_ms`, a batch of users per
//! round trip, and writes only what differs:
//!
//! - a route that is missing (a Redis shard restarted empty, a flush of some
//!   keys, an eviction) is written back where the device still has none, and
//!   that connection is told to `resync`: pushes may have missed it;
//! - a route naming a newer connection of the same device (on another node:
//!   the device reconnected there) closes the connection here with
//!   `replaced`;
//! - a route naming an older connection (a clean-up that raced the
//!   registration) is overwritten with ours, and the client told to sync.
//!
//! A whole-state loss is found sooner, by the registry heartbeat
//! (`cluster/registry.rs`), which restores every route at once. See
//! docs/deploy.md, "What happens when a part fails".

use super::Delivery;
use super::hub::Outbound;
use crate::metrics::{self as m, meters};
use magpie_core::UserId;
use magpie_proto::{ErrorCode, ServerFrame};
use magpie_store::Route;

/// Users whose routes are read per state round trip.
const AUDIT_BATCH: usize = 500;

/// What one audit found and repaired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    /// Connections here whose route was read back.
    pub checked: usize,
    /// Routes written back (missing, or naming an older connection).
    pub restored: usize,
    /// Connections here closed because their device connected again later.
    pub superseded: usize,
}

impl Delivery {
    /// Reads back the routes of every connection here and repairs what
    /// differs (module docs). Stops at the first state error: the next
    /// audit, or the registry heartbeat, tries again.
    pub async fn audit_routes(&self) -> Audit {
        let mut audit = Audit::default();
        let local = self.hub.routes(self.node());
        for chunk in local.chunks(AUDIT_BATCH) {
            let mut users: Vec<UserId> = chunk.iter().map(|r| r.user).collect();
            users.sort_unstable();
            users.dedup();
            let recorded = match self.state.routes(&users).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "route audit could not read the state");
                    break;
                }
            };
            audit.checked += chunk.len();
            let mut missing = Vec::new();
            let mut older = Vec::new();
            for ours in chunk {
                let theirs = recorded
                    .get(&ours.user)
                    .and_then(|v| v.iter().find(|r| r.device == ours.device));
                match theirs {
                    Some(t) if t.node == ours.node && t.conn == ours.conn => {}
                    Some(t) if t.since > ours.since => {
                        if self.hub.kill(ours.user, ours.conn, ErrorCode::Replaced) {
                            audit.superseded += 1;
                        }
                    }
                    Some(_) => older.push(ours.clone()),
                    None => missing.push(ours.clone()),
                }
            }
            audit.restored += self.write_back(&missing, &older).await;
        }
        if audit.restored + audit.superseded > 0 {
            metrics::counter!(m::ROUTE_REPAIRS, "kind" => "restored")
                .increment(audit.restored as u64);
            metrics::counter!(m::ROUTE_REPAIRS, "kind" => "superseded")
                .increment(audit.superseded as u64);
            tracing::info!(?audit, "route audit repaired routes");
        }
        audit
    }

    /// Writes the missing routes (only where the device still has none)
    /// and overwrites the older ones; tells each repaired connection to
    /// sync. Returns how many were written.
    async fn write_back(&self, missing: &[Route], older: &[Route]) -> usize {
        let mut written = 0;
        let mut repaired: Vec<&Route> = Vec::new();
        if !missing.is_empty() {
            match self.state.restore_routes(missing).await {
                // Which ones were written is not reported: each is told to
                // sync (a spare hint costs one sync); a route that a newer
                // connection took meanwhile is closed at the next audit.
                Ok(n) if n > 0 => {
                    written += n;
                    repaired.extend(missing);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "route audit could not restore routes"),
            }
        }
        for route in older {
            match self.state.add_route(route).await {
                Ok(_) => {
                    written += 1;
                    repaired.push(route);
                }
                Err(e) => tracing::warn!(error = %e, "route audit could not rewrite a route"),
            }
        }
        let hint = Outbound::frame(&ServerFrame::Resync {
            reason: "route_restored".into(),
        });
        for route in &repaired {
            if self.hub.deliver(route.user, route.conn, hint.clone()) {
                meters().resync_hints.increment(1);
            }
        }
        written
    }
}
