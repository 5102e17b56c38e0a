//! The node's registry record and its heartbeat.

use crate::app::App;
use magpie_core::now_ms;
use magpie_store::NodeInfo;
use std::time::Duration;

/// This node's record as of now.
pub fn node_info(app: &App) -> NodeInfo {
    let c = &app.cfg.cluster;
    let conn = c.has("conn");
    NodeInfo {
        node: app.cfg.node.clone(),
        roles: c.roles.clone(),
        ws_url: if conn {
            app.ws_url.clone()
        } else {
            String::new()
        },
        tcp_addr: if conn {
            app.tcp_addr.clone().unwrap_or_default()
        } else {
            String::new()
        },
        version: c.version.clone(),
        load: app.hub.len() as u64,
        canary: c.canary,
        seen_at: now_ms(),
    }
}

/// Writes one heartbeat.
pub async fn beat(app: &App) {
    if let Err(e) = app
        .state
        .node_heartbeat(&node_info(app), app.cfg.cluster.node_ttl_ms)
        .await
    {
        tracing::warn!(error = %e, "registry heartbeat failed");
    }
}

/// Heartbeats until shutdown (the drain deregisters the node).
pub async fn run(app: App) {
    let every = Duration::from_millis(app.cfg.cluster.heartbeat_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => beat(&app).await,
            _ = app.shutdown.cancelled() => return,
        }
    }
}
