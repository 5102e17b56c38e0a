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
//!
//! Another node is drained by asking it over the relay (subject
//! `cluster.drain`, `services/roll_call.rs`): the named node acts and
//! answers; the asker reports its answer, or `unavailable` when none came
//! within `trace.gather_ms` (the drain may still have happened: asking
//! again is harmless).

use crate::app::App;
use crate::error::{Result, ServerError};
use crate::services::roll_call;
use magpie_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SUBJECT: &str = "cluster.drain";

#[derive(Serialize, Deserialize)]
struct Order {
    reply: String,
    node: String,
    draining: bool,
}

impl roll_call::Question for Order {
    fn reply(&self) -> &str {
        &self.reply
    }
}

impl roll_call::Answer for DrainReport {
    fn node(&self) -> &str {
        &self.node
    }
}

#[derive(Debug, Serialize, Deserialize)]
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

/// Starts or ends the drain of `node`: this one directly, another over the
/// relay.
pub async fn set_on(app: &App, node: &str, on: bool) -> Result<DrainReport> {
    if node == app.cfg.node {
        return Ok(set(app, on).await);
    }
    let order = Order {
        reply: roll_call::reply_subject("cluster.drained", &app.cfg.node),
        node: node.to_string(),
        draining: on,
    };
    let nodes = BTreeSet::from([node.to_string()]);
    let wait = Duration::from_millis(app.cfg.trace.gather_ms.max(1));
    let mut answers: BTreeMap<String, DrainReport> =
        roll_call::ask(&app.relay, SUBJECT, &order, &nodes, wait).await?;
    answers.remove(node).ok_or_else(|| {
        ServerError::Unavailable(format!(
            "node {node} did not answer; asking again is harmless"
        ))
    })
}

/// Carries out the drain orders addressed to this node until shutdown.
pub async fn answer(app: App) {
    let (relay, shutdown) = (app.relay.clone(), app.shutdown.clone());
    roll_call::answer(relay, SUBJECT, "drain orders", shutdown, |o: Order| {
        let app = app.clone();
        async move {
            if o.node != app.cfg.node {
                return None;
            }
            Some(set(&app, o.draining).await)
        }
    })
    .await
}
