//! The node-addressed push worker: this node's own consumer group on topic
//! `node.{node}`, through which other nodes push to connections held here
//! (the route names the node; the node pushes). Best effort like every
//! push: a connection that is gone is skipped; the device syncs.

use super::Worker;
use crate::app::App;
use crate::conn::hub::{Outbound, Push};
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::{BusEvent, DeliverPayload, UserId, node_topic};
use magpie_proto::ServerFrame;

/// Hands `out` to each target connection held here; the gone ones are stale.
fn deliver(
    app: &App,
    targets: &[(UserId, u64)],
    out: &Outbound,
    pushed: &mut u64,
    stale: &mut Vec<(UserId, u64)>,
) {
    for (user, conn) in targets {
        if app.hub.deliver(*user, *conn, out.clone()) {
            *pushed += 1;
        } else {
            stale.push((*user, *conn));
        }
    }
}

pub struct Deliver {
    node: String,
}

impl Deliver {
    pub fn for_node(node: &str) -> Self {
        Deliver {
            node: node.to_string(),
        }
    }
}

#[async_trait]
impl Worker for Deliver {
    fn group(&self) -> String {
        format!("node-{}", self.node)
    }
    fn topics(&self) -> Vec<String> {
        vec![node_topic(&self.node)]
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        let mut pushed = 0u64;
        let mut stale = Vec::new();
        for ev in events {
            let BusEvent::Deliver {
                targets, payload, ..
            } = ev
            else {
                continue;
            };
            let out = match payload {
                DeliverPayload::Msg { msg } => Outbound::Push(Push::new(msg.clone())),
                DeliverPayload::Msgs { msgs } => {
                    for (msg, targets) in msgs {
                        let out = Outbound::Push(Push::new(msg.clone()));
                        deliver(app, targets, &out, &mut pushed, &mut stale);
                    }
                    continue;
                }
                // Encoded once by the sending node: written as is.
                DeliverPayload::Frame { frame } => Outbound::Frame(frame.clone().into()),
                DeliverPayload::Settings => Outbound::Settings,
            };
            deliver(app, targets, &out, &mut pushed, &mut stale);
        }
        crate::metrics::meters().pushed.increment(pushed);
        app.drop_stale_routes(&stale).await;
        Ok(())
    }

    /// The bus was unreachable: other nodes' pushes to our clients may have
    /// failed to publish, with no later message to reveal the gap. Every
    /// local connection is asked to sync (one sync per client per outage).
    async fn recovered(&self, app: &App) {
        bus_restored(app);
    }
}

/// Asks every local connection to sync (one sync per client per outage).
fn bus_restored(app: &App) {
    let frame = Outbound::frame(&ServerFrame::Resync {
        reason: "bus_restored".into(),
    });
    let n = app.hub.deliver_all(&frame);
    crate::metrics::meters().resync_hints.increment(n);
}

/// The same hint each time the bus's connection comes back, however short
/// the outage: detected from the connection's own events, so an outage in
/// which no fetch happened to fail (a NATS restart of a few seconds) still
/// reaches the clients (docs/protocol.md, `resync`).
pub async fn resync_after_reconnects(app: App) {
    let Some(mut reconnects) = app.bus.reconnects() else {
        return;
    };
    loop {
        tokio::select! {
            changed = reconnects.changed() => if changed.is_err() { return },
            _ = app.shutdown.cancelled() => return,
        }
        tracing::info!("bus connection restored: clients told to sync");
        bus_restored(&app);
    }
}
