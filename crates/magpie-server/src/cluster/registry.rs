//! The node's registry record and its heartbeat.

use crate::app::App;
use magpie_core::now_ms;
use magpie_store::NodeInfo;
use std::sync::atomic::Ordering;
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
        load: app.delivery.hub.len() as u64,
        canary: c.canary,
        seen_at: now_ms(),
        draining: app.draining.load(Ordering::Relaxed),
    }
}

/// Writes one heartbeat. A heartbeat that finds the node's previous record
/// gone means the state lost it — Redis restarted empty or was flushed, or
/// the node stalled past its TTL and the sweeper released its routes — so
/// the routes of every connection here are put back at once and each
/// client is told to sync (pushes may have missed it meanwhile). Pushes
/// resume within one `cluster.heartbeat_ms`, instead of waiting for each
/// connection's own heartbeat (docs/deploy.md, "Redis restarted empty").
pub async fn beat(app: &App) {
    match app
        .state
        .node_heartbeat(&node_info(app), app.cfg.cluster.node_ttl_ms)
        .await
    {
        Ok(true) => {}
        Ok(false) => restore_routes(app).await,
        Err(e) => tracing::warn!(error = %e, "registry heartbeat failed"),
    }
}

async fn restore_routes(app: &App) {
    let (connections, restored) = app.delivery.restore_routes().await;
    if connections > 0 {
        tracing::warn!(
            connections,
            restored,
            "the state had lost this node's record: routes restored, clients told to sync"
        );
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

/// Audits the routes of this node's connections every
/// `cluster.route_audit_ms` until shutdown: the connections' own
/// heartbeats write nothing to the state (`services/delivery/audit.rs`).
/// A task of its own, so a long audit never delays the registry heartbeat.
pub async fn run_route_audits(app: App) {
    let every = Duration::from_millis(app.cfg.cluster.route_audit_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {
                app.delivery.audit_routes().await;
            }
            _ = app.shutdown.cancelled() => return,
        }
    }
}
