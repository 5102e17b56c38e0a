//! Operator routes for following messages and tuning logs, on the internal
//! listener with the service key (docs/observability.md):
//!
//! - `GET /internal/v1/trace/{server_id}`: the hops of one message, gathered
//!   from every node (`services/trace`), what `magpie trace` prints;
//! - `GET /internal/v1/log` and `PUT /internal/v1/log` `{"filter": …}`: this
//!   node's log filter, read and changed at run time (`crate::logs`);
//! - `GET /internal/v1/workers` and `PUT /internal/v1/workers/{group}`
//!   `{"paused": true}`: worker groups paused on this node
//!   (`workers/paused.rs`);
//! - `GET /internal/v1/nodes` and `GET /internal/v1/metrics`: the live
//!   nodes of the registry and this node's metrics, for the operator
//!   console (docs/web.md);
//! - `GET /internal/v1/alarms`: this node's recent alarms
//!   (`services/alarms.rs`); `GET /internal/v1/cluster`: every node's
//!   metrics and alarms (`cluster/survey.rs`);
//! - `GET /internal/v1/drain` and `PUT /internal/v1/drain`
//!   `{"draining": true}`: drain this node of its clients, or end the
//!   drain (`cluster/drain.rs`).

use super::extract::{ApiJson, Service};
use crate::app::App;
use crate::cluster::drain::DrainReport;
use crate::error::{Result, ServerError};
use axum::Json;
use axum::extract::{Path, State};
use magpie_core::ServerMsgId;
use magpie_proto::http::TraceReport;
use serde::{Deserialize, Serialize};

/// The registry's live nodes and the name of the one answering.
#[derive(Debug, Serialize)]
pub struct NodesReport {
    pub here: String,
    pub nodes: Vec<magpie_store::NodeInfo>,
}

pub async fn nodes(State(app): State<App>, _: Service) -> Result<Json<NodesReport>> {
    let mut nodes = app.state.nodes().await?;
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(Json(NodesReport {
        here: app.cfg.node.clone(),
        nodes,
    }))
}

/// This node's recent alarms, newest first.
#[derive(Debug, Serialize)]
pub struct AlarmsReport {
    pub node: String,
    pub alarms: Vec<crate::services::alarms::Alarm>,
}

pub async fn alarms(State(app): State<App>, _: Service) -> Json<AlarmsReport> {
    Json(AlarmsReport {
        node: app.cfg.node.clone(),
        alarms: app.alarms.recent(),
    })
}

/// Every live node's metrics and alarms, gathered over the relay.
pub async fn cluster(
    State(app): State<App>,
    _: Service,
) -> Result<Json<crate::cluster::survey::ClusterSurvey>> {
    Ok(Json(crate::cluster::survey::gather(&app).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    pub draining: bool,
    /// The node to drain; this one when absent.
    #[serde(default)]
    pub node: Option<String>,
}

pub async fn drain_get(State(app): State<App>, _: Service) -> Json<DrainReport> {
    Json(DrainReport {
        node: app.cfg.node.clone(),
        draining: app.draining.load(std::sync::atomic::Ordering::Relaxed),
        closed: 0,
    })
}

pub async fn drain_put(
    State(app): State<App>,
    _: Service,
    ApiJson(req): ApiJson<DrainRequest>,
) -> Result<Json<DrainReport>> {
    let node = req.node.as_deref().unwrap_or(&app.cfg.node);
    Ok(Json(
        crate::cluster::drain::set_on(&app, node, req.draining).await?,
    ))
}

/// This node's metrics, as `/metrics` serves them on the public address,
/// for the operator console (which reaches only this listener).
pub async fn metrics(_: Service) -> impl axum::response::IntoResponse {
    super::metrics_route().await
}

pub async fn trace(
    State(app): State<App>,
    _: Service,
    Path(id): Path<String>,
) -> Result<Json<TraceReport>> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .map(ServerMsgId)
        .ok_or_else(|| ServerError::bad_field("server_id: a positive integer"))?;
    Ok(Json(app.traces.gather(&app.state, id).await?))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LogFilter {
    pub filter: String,
}

pub async fn log_get(_: Service) -> Result<Json<LogFilter>> {
    let filter = crate::logs::current().ok_or_else(|| {
        ServerError::Unavailable("log levels are not controllable in this process".into())
    })?;
    Ok(Json(LogFilter { filter }))
}

pub async fn log_put(_: Service, ApiJson(req): ApiJson<LogFilter>) -> Result<Json<LogFilter>> {
    Ok(Json(LogFilter {
        filter: crate::logs::set(&req.filter)?,
    }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PauseRequest {
    pub paused: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PausedGroups {
    pub paused: Vec<String>,
}

pub async fn workers_get(State(app): State<App>, _: Service) -> Json<PausedGroups> {
    Json(PausedGroups {
        paused: app.paused.list(),
    })
}

pub async fn workers_put(
    State(app): State<App>,
    _: Service,
    Path(group): Path<String>,
    ApiJson(req): ApiJson<PauseRequest>,
) -> Result<Json<PausedGroups>> {
    if group.is_empty() || group.len() > 200 {
        return Err(ServerError::bad_field("group: 1 to 200 bytes"));
    }
    app.paused.set(&group, req.paused);
    tracing::warn!(
        group,
        paused = req.paused,
        "worker group paused or resumed by an operator"
    );
    Ok(Json(PausedGroups {
        paused: app.paused.list(),
    }))
}
