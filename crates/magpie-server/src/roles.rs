//! The roles a node runs (`cluster.roles`: `edge`, `conn`, `workers`,
//! `search`) and
//! the background tasks each needs. Every node runs the send pipeline, the
//! group receipts, the registry heartbeat and the relay subscription of
//! the pushes other nodes address to it; `workers` runs the bus consumers
//! and the sweeper; `conn` also takes the relay's broadcasts, consumes
//! membership changes for its local group index and audits the routes of
//! its connections; `search` keeps a search index of its own (its own
//! consumer group, rebuilt from the store when missing) and answers queries.

use crate::app::App;
use crate::config::Config;
use crate::error::{Result, ServerError};
use tokio::task::JoinHandle;

const ROLES: [&str; 4] = ["edge", "conn", "workers", "search"];

/// Refuses a configuration naming a role this server does not have.
pub fn check(cfg: &Config) -> Result<()> {
    match cfg
        .cluster
        .roles
        .iter()
        .find(|r| !ROLES.contains(&r.as_str()))
    {
        Some(role) => Err(ServerError::Internal(format!(
            "unknown role {role:?}: expected edge, conn, workers or search"
        ))),
        None => Ok(()),
    }
}

/// Starts the tasks of the node's roles; they stop on `app.shutdown`.
pub async fn spawn(app: &App) -> Vec<(String, JoinHandle<()>)> {
    let mut tasks = app.messaging.spawn(app.shutdown.clone());
    tasks.extend(app.presence.spawn());
    if app.cfg.cluster.has("workers") {
        tasks.extend(crate::workers::spawn_all(app));
        let sweeper = tokio::spawn(crate::cluster::sweeper::run(app.clone()));
        tasks.push(("sweeper".into(), sweeper));
    }
    if let Some(index) = app.search.index() {
        tasks.extend(crate::workers::spawn_search(app, index.clone()));
    }
    let conn = app.cfg.cluster.has("conn");
    if conn {
        let members = tokio::spawn(crate::workers::run_members(app.clone()));
        tasks.push(("members".into(), members));
        let audits = tokio::spawn(crate::cluster::registry::run_route_audits(app.clone()));
        tasks.push(("route-audit".into(), audits));
    }
    // Pushes other nodes address here, and (connection nodes) broadcasts.
    let relay = app.delivery.clone().run_relay(app.shutdown.clone());
    tasks.push(("relay".into(), tokio::spawn(relay)));
    // Every node answers trace queries (`services/trace/gather.rs`).
    let traces = tokio::spawn(app.traces.clone().answer_queries(app.shutdown.clone()));
    tasks.push(("trace-queries".into(), traces));
    // And the console's cluster surveys and drain orders (`cluster/`).
    let survey = tokio::spawn(crate::cluster::survey::answer(app.clone()));
    tasks.push(("survey-queries".into(), survey));
    let drains = tokio::spawn(crate::cluster::drain::answer(app.clone()));
    tasks.push(("drain-orders".into(), drains));
    let receipts = app.messaging.clone();
    let receipts = tokio::spawn(receipts.run_group_receipts(app.shutdown.clone()));
    tasks.push(("group-receipts".into(), receipts));
    // Registered before serving, so `connect` can place users here at once.
    crate::cluster::registry::beat(app).await;
    let registry = tokio::spawn(crate::cluster::registry::run(app.clone()));
    tasks.push(("registry".into(), registry));
    let gauges = tokio::spawn(crate::cluster::gauges::run(app.clone()));
    tasks.push(("node-gauges".into(), gauges));
    tasks
}
