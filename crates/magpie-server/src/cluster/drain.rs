//! Draining a node on an operator's word (`PUT /internal/v1/drain`,
//! docs/protocol.md §3.13), without stopping it: the registry marks the
//! node draining at once, so `connect` places new connections elsewhere
//! (cluster/placement.rs), and every connection open here is closed with a
//! `reconnect` frame (reason `draining`, a random wait of 0.5–5 s so the
//! clients do not all come back in the same instant). Nothing is lost:
//! clients sync on reconnect, and pushes in flight are resent or synced
//! like after any close.
//!
//! A node with nowhere else to send its clients (the only one, or every
//! node draining) still accepts them: the drain then only says "about to
//! stop". Undraining makes the node a candidate again at the heartbeat
//! written here. Shutdown (SIGTERM) drains too, then exits (`start.rs`).

use crate::app::App;
use magpie_proto::ErrorCode;
use serde::Serialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Serialize)]
pub struct DrainReport {
    pub node: String,
    pub draining: bool,
    /// Connections told to reconnect elsewhere by this call.
    pub closed: u64,
}

/// Starts (`on`) or ends a drain of this node; a repeated drain closes the
/// connections opened since the last one.
pub async fn set(app: &App, on: bool) -> DrainReport {
    app.draining.store(on, Ordering::Relaxed);
    // The registry says so now, not at the next heartbeat.
    super::registry::beat(app).await;
    let closed = if on {
        app.delivery.hub.kill_all(ErrorCode::ShuttingDown)
    } else {
        0
    };
    tracing::warn!(node = %app.cfg.node, draining = on, closed, "drain set by an operator");
    DrainReport {
        node: app.cfg.node.clone(),
        draining: on,
        closed,
    }
}
