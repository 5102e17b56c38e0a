//! "How is every node doing", for the operator console's cluster view
//! (`GET /internal/v1/cluster`, docs/protocol.md §3.13): the asking node
//! publishes a query on the relay subject `cluster.survey` with a reply
//! subject of its own, and every node — itself included, one path embedded
//! or not — answers with its metrics (the Prometheus text of its
//! `/metrics`) and its recent alarms. The asker waits until every node live
//! in the registry answered, or `trace.gather_ms` (the wait of trace
//! queries, which travel the same way). The relay is best effort: a node
//! that did not answer is listed as `missing`, never silently left out.

use crate::app::App;
use crate::error::Result;
use crate::services::alarms::Alarm;
use crate::services::roll_call;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const SUBJECT: &str = "cluster.survey";

#[derive(Serialize, Deserialize)]
struct Query {
    reply: String,
}

impl roll_call::Question for Query {
    fn reply(&self) -> &str {
        &self.reply
    }
}

/// One node's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeSurvey {
    pub node: String,
    pub draining: bool,
    /// The node's metrics in the Prometheus text format.
    pub metrics: String,
    /// Its recent alarms, newest first (`services/alarms.rs`).
    pub alarms: Vec<SurveyAlarm>,
}

/// An alarm as it travels (the kind is owned here).
impl roll_call::Answer for NodeSurvey {
    fn node(&self) -> &str {
        &self.node
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SurveyAlarm {
    pub at: i64,
    pub kind: String,
    pub detail: String,
}

impl From<Alarm> for SurveyAlarm {
    fn from(a: Alarm) -> Self {
        SurveyAlarm {
            at: a.at,
            kind: a.kind.to_string(),
            detail: a.detail,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ClusterSurvey {
    /// The answers, by node name.
    pub nodes: Vec<NodeSurvey>,
    /// Live nodes of the registry that did not answer in time.
    pub missing: Vec<String>,
}

fn here(app: &App) -> NodeSurvey {
    NodeSurvey {
        node: app.cfg.node.clone(),
        draining: app.draining.load(std::sync::atomic::Ordering::Relaxed),
        metrics: crate::metrics::render(),
        alarms: app.alarms.recent().into_iter().map(Into::into).collect(),
    }
}

/// Answers the survey queries of every node until shutdown.
pub async fn answer(app: App) {
    let (relay, shutdown) = (app.relay.clone(), app.shutdown.clone());
    roll_call::answer(relay, SUBJECT, "cluster surveys", shutdown, |_: Query| {
        std::future::ready(Some(here(&app)))
    })
    .await
}

/// Every live node's answer, by name.
pub async fn gather(app: &App) -> Result<ClusterSurvey> {
    let nodes = roll_call::live_nodes(&app.state).await?;
    let q = Query {
        reply: roll_call::reply_subject("cluster.reply", &app.cfg.node),
    };
    let wait = Duration::from_millis(app.cfg.trace.gather_ms.max(1));
    let answers: BTreeMap<String, NodeSurvey> =
        roll_call::ask(&app.relay, SUBJECT, &q, &nodes, wait).await?;
    let missing = nodes
        .into_iter()
        .filter(|n| !answers.contains_key(n))
        .collect();
    Ok(ClusterSurvey {
        nodes: answers.into_values().collect(),
        missing,
    })
}
