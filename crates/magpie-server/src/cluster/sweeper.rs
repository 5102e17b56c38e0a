//! Clean-up after nodes: a periodic job for nodes that died, and the
//! last steps of a planned drain. For every route still pointing at the
//! node: remove it and publish an offline event; then forget the node.

use crate::app::App;
use crate::error::Result;
use magpie_core::{Presence, now_ms};
use std::collections::BTreeSet;
use std::time::Duration;

const LEASE: &str = "sweeper";

/// Removes every route held by `node` and announces those devices offline.
/// Returns how many routes it removed.
pub async fn release_node(app: &App, node: &str, reason: &str) -> Result<usize> {
    let mut removed = 0;
    for r in app.state.node_routes(node).await? {
        if app
            .state
            .remove_route(r.user, &r.device, node, r.conn)
            .await?
        {
            removed += 1;
            app.presence.announce(Presence {
                user: r.user,
                device: r.device.clone(),
                online: false,
                node: node.into(),
                at: now_ms(),
                reason: Some(reason.into()),
            });
        }
    }
    app.state.forget_node(node).await?;
    Ok(removed)
}

/// One pass: nodes that registered but whose heartbeat expired are cleaned.
pub async fn sweep_once(app: &App) -> Result<Vec<String>> {
    let live: BTreeSet<String> = app
        .state
        .nodes()
        .await?
        .into_iter()
        .map(|n| n.node)
        .collect();
    let mut cleaned = Vec::new();
    for node in app.state.known_nodes().await? {
        if node == app.cfg.node || live.contains(&node) {
            continue;
        }
        let n = release_node(app, &node, "node_lost").await?;
        tracing::info!(%node, routes = n, "cleaned up after a dead node");
        cleaned.push(node);
    }
    Ok(cleaned)
}

/// Sweeps every `sweep_interval_ms` while holding the cluster-wide lease.
pub async fn run(app: App) {
    let every = Duration::from_millis(app.cfg.cluster.sweep_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = app.shutdown.cancelled() => return,
        }
        match app
            .state
            .lease(LEASE, &app.cfg.node, app.cfg.cluster.sweep_interval_ms * 2)
            .await
        {
            Ok(true) => {
                if let Err(e) = sweep_once(&app).await {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "sweeper lease failed"),
        }
    }
}
