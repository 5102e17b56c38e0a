//! "What happened to message N", asked of every node: the asking node
//! publishes a query on the relay subject `trace.query` with a reply
//! subject of its own; every node (itself included: one path, embedded or
//! not) answers with the hops its buffer holds. The asker waits until
//! every node live in the registry answered, or `trace.gather_ms`.
//!
//! Two rounds: the first finds the message's own hops (by server id),
//! among them `durable`, which names its conversation and sequence; the
//! second also finds the reads that cover that sequence (a read names a
//! position, not a message). The relay is best effort: a node that did not
//! answer is listed as `missing`, never silently left out.

use super::ring::Wanted;
use super::{HopKind, Traces, conv_key};
use crate::error::Result;
use crate::services::roll_call;
use magpie_core::trace::{TraceHop, TraceReport};
use magpie_core::{ConvId, ServerMsgId};
use magpie_store::State;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const TRACE_SUBJECT: &str = "trace.query";
/// Hops one node answers with at most (a read-heavy group's reads).
const MAX_HOPS: usize = 2_000;

#[derive(Serialize, Deserialize)]
struct Query {
    reply: String,
    id: i64,
    #[serde(default)]
    conv: Option<u64>,
    #[serde(default)]
    seq: i64,
}

impl roll_call::Question for Query {
    fn reply(&self) -> &str {
        &self.reply
    }
}

#[derive(Serialize, Deserialize)]
struct Answer {
    node: String,
    hops: Vec<TraceHop>,
}

impl roll_call::Answer for Answer {
    fn node(&self) -> &str {
        &self.node
    }
}

impl Traces {
    /// Answers the trace queries of every node until shutdown.
    pub async fn answer_queries(self: Arc<Self>, shutdown: CancellationToken) {
        let relay = self.relay.clone();
        roll_call::answer(
            relay,
            TRACE_SUBJECT,
            "trace queries",
            shutdown,
            |q: Query| {
                let w = Wanted {
                    id: q.id,
                    conv: q.conv,
                    seq: q.seq,
                };
                let hops = self.ring.find(w, MAX_HOPS);
                std::future::ready(Some(Answer {
                    node: self.node.to_string(),
                    hops: hops.iter().map(|h| self.view(&self.node, h)).collect(),
                }))
            },
        )
        .await
    }

    /// The hops of message `id` on every node, oldest first.
    pub async fn gather(&self, state: &State, id: ServerMsgId) -> Result<TraceReport> {
        let nodes = roll_call::live_nodes(state).await?;
        let first = self.ask(&nodes, id.0, None, 0).await?;
        let durable = first
            .values()
            .flatten()
            .find(|h| h.hop == HopKind::Durable.as_str());
        let conv = durable.and_then(|h| h.detail.as_deref().and_then(|c| ConvId::parse(c).ok()));
        let seq = durable.and_then(|h| h.seq);
        let answers = match (&conv, seq) {
            (Some(c), Some(s)) => {
                let mut second = self.ask(&nodes, id.0, Some(conv_key(c)), s).await?;
                // A node heard in the first round only keeps that answer.
                for (node, hops) in first {
                    second.entry(node).or_insert(hops);
                }
                second
            }
            _ => first,
        };
        let missing = nodes
            .iter()
            .filter(|n| !answers.contains_key(*n))
            .cloned()
            .collect();
        let mut hops: Vec<TraceHop> = answers.values().flatten().cloned().collect();
        hops.sort_by_key(|h| h.at_us);
        Ok(TraceReport {
            server_id: id,
            trace_id: hops.iter().find_map(|h| h.trace_id.clone()),
            conv,
            seq,
            nodes: answers.into_keys().collect(),
            missing,
            hops,
        })
    }

    /// One round: the answers by node, until every node answered or the wait
    /// is over.
    async fn ask(
        &self,
        nodes: &BTreeSet<String>,
        id: i64,
        conv: Option<u64>,
        seq: i64,
    ) -> Result<BTreeMap<String, Vec<TraceHop>>> {
        let q = Query {
            reply: roll_call::reply_subject("trace.reply", &self.node),
            id,
            conv,
            seq,
        };
        let answers: BTreeMap<String, Answer> =
            roll_call::ask(&self.relay, TRACE_SUBJECT, &q, nodes, self.wait).await?;
        Ok(answers.into_iter().map(|(n, a)| (n, a.hops)).collect())
    }
}
