//! A question asked of every node at once over the relay, and the answers
//! gathered by node: what `trace` (`trace/gather.rs`), the console's
//! cluster survey (`cluster/survey.rs`) and a drain of another node
//! (`cluster/drain.rs`) are made of.
//!
//! The asker subscribes a reply subject of its own, publishes the question
//! (which names that subject) on the question's subject, and reads answers
//! until every node it expects answered or the wait is over. Every node —
//! the asker included, one path embedded or not — answers each question it
//! hears on the reply subject it names. The relay is best effort: the
//! caller lists the nodes that did not answer, never leaves them out
//! silently.

use crate::error::{Result, ServerError};
use bytes::Bytes;
use magpie_bus::{Relay, RelayEvent};
use magpie_store::State;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A question: where to answer, and what is asked.
pub trait Question: Serialize + DeserializeOwned {
    fn reply(&self) -> &str;
}

/// An answer: which node gave it.
pub trait Answer: Serialize + DeserializeOwned {
    fn node(&self) -> &str;
}

/// The nodes to expect answers from: the live ones of the registry.
pub async fn live_nodes(state: &State) -> Result<BTreeSet<String>> {
    let nodes = state
        .nodes()
        .await
        .map_err(|e| ServerError::Unavailable(format!("registry: {e}")))?;
    Ok(nodes.into_iter().map(|n| n.node).collect())
}

/// A reply subject no other asker uses: `{prefix}.{node}.{random}`.
pub fn reply_subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.{node}.{:016x}", rand::random::<u64>())
}

/// Asks `q` on `subject` (its reply subject subscribed first, so no answer
/// is missed); the answers by node, once every node of `nodes` answered or
/// after `wait`.
pub async fn ask<Q: Question, A: Answer>(
    relay: &Relay,
    subject: &str,
    q: &Q,
    nodes: &BTreeSet<String>,
    wait: Duration,
) -> Result<BTreeMap<String, A>> {
    let down = |e: magpie_bus::BusError| ServerError::Unavailable(format!("relay: {e}"));
    let mut sub = relay.subscribe(q.reply()).await.map_err(down)?;
    let body = serde_json::to_vec(q).map_err(|e| ServerError::Internal(e.to_string()))?;
    relay.publish(subject, Bytes::from(body)).map_err(down)?;
    let mut answers = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    while !nodes.iter().all(|n| answers.contains_key(n)) {
        let ev = tokio::select! {
            ev = sub.next() => ev,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match ev {
            Some(RelayEvent::Message { payload, .. }) => {
                if let Ok(a) = serde_json::from_slice::<A>(&payload) {
                    answers.insert(a.node().to_string(), a);
                }
            }
            Some(RelayEvent::Gap { .. }) => {}
            None => break,
        }
    }
    Ok(answers)
}

/// Answers the questions heard on `subject` with `answer` until shutdown,
/// one at a time (`None`: no answer, the question was not this node's);
/// `what` names them in the warning when the relay cannot be subscribed.
pub async fn answer<Q, A, F, Fut>(
    relay: Relay,
    subject: &str,
    what: &str,
    shutdown: CancellationToken,
    answer: F,
) where
    Q: Question,
    A: Answer,
    F: Fn(Q) -> Fut,
    Fut: Future<Output = Option<A>>,
{
    let mut sub = match relay.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "{what} not answered on this node");
            return;
        }
    };
    loop {
        let ev = tokio::select! {
            ev = sub.next() => ev,
            _ = shutdown.cancelled() => return,
        };
        let payload = match ev {
            Some(RelayEvent::Message { payload, .. }) => payload,
            Some(RelayEvent::Gap { .. }) => continue,
            None => return,
        };
        let Ok(q) = serde_json::from_slice::<Q>(&payload) else {
            continue;
        };
        let reply = q.reply().to_string();
        if let Some(a) = answer(q).await
            && let Ok(body) = serde_json::to_vec(&a)
        {
            let _ = relay.publish(&reply, Bytes::from(body));
        }
    }
}
