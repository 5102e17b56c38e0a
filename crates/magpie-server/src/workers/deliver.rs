//! The consumer of this node's delivery topic (`node.{node}`): pushes other
//! nodes address to connections here, handed to the delivery service.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_core::{BusEvent, node_topic};

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
        app.delivery.arrive_delivery(events).await;
        Ok(())
    }

    /// Pushes that could not even be published meanwhile are lost: the
    /// clients here sync.
    async fn recovered(&self, app: &App) {
        app.delivery.resync_all("bus_restored");
    }
}

/// A reconnect of the bus's connection, however brief, may have lost
/// publishes of pushes to this node: the clients here are told to sync.
pub async fn resync_after_reconnects(app: App) {
    let Some(mut reconnects) = app.events.bus().reconnects() else {
        return;
    };
    loop {
        tokio::select! {
            changed = reconnects.changed() => if changed.is_err() { return },
            _ = app.shutdown.cancelled() => return,
        }
        tracing::info!("bus connection restored: clients told to sync");
        app.delivery.resync_all("bus_restored");
    }
}
