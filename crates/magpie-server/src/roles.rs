//! The roles a node runs (`cluster.roles`: `edge`, `conn`, `workers`) and
//! the background tasks each needs. Every node runs the send pipeline, the
//! group receipts and the registry heartbeat; `workers` runs the bus
//! consumers and the sweeper (a node without it still consumes the pushes
//! addressed to it); `conn` consumes the broadcasts.

use crate::app::App;
use crate::config::Config;
use crate::error::{Result, ServerError};
use tokio::task::JoinHandle;

const ROLES: [&str; 3] = ["edge", "conn", "workers"];

/// Refuses a configuration naming a role this server does not have.
pub fn check(cfg: &Config) -> Result<()> {
    match cfg
        .cluster
        .roles
        .iter()
        .find(|r| !ROLES.contains(&r.as_str()))
    {
        Some(role) => Err(ServerError::Internal(format!(
            "unknown role {role:?}: expected edge, conn or workers"
        ))),
        None => Ok(()),
    }
}

/// Starts the tasks of the node's roles; they stop on `app.shutdown`.
pub async fn spawn(app: &App) -> Vec<(String, JoinHandle<()>)> {
    let mut tasks = app.messaging.spawn(app.shutdown.clone());
    if app.cfg.cluster.has("workers") {
        tasks.extend(crate::workers::spawn_all(app));
        let sweeper = tokio::spawn(crate::cluster::sweeper::run(app.clone()));
        tasks.push(("sweeper".into(), sweeper));
    } else {
        // Pushes addressed to this node still need their consumer.
        let deliver = tokio::spawn(crate::workers::run_deliver(app.clone()));
        tasks.push(("deliver".into(), deliver));
    }
    if app.cfg.cluster.has("conn") {
        let broadcast = tokio::spawn(crate::workers::run_broadcast(app.clone()));
        tasks.push(("broadcast".into(), broadcast));
    }
    let receipts = app.messaging.clone();
    let receipts = tokio::spawn(receipts.run_group_receipts(app.shutdown.clone()));
    tasks.push(("group-receipts".into(), receipts));
    // Registered before serving, so `connect` can place users here at once.
    crate::cluster::registry::beat(app).await;
    let registry = tokio::spawn(crate::cluster::registry::run(app.clone()));
    tasks.push(("registry".into(), registry));
    tasks
}
