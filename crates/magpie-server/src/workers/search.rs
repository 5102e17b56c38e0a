//! The search indexer every node with the `search` role runs: its own
//! consumer group on `msg` (each such node keeps a whole index), writing
//! the messages their senders allowed into the node's index, acknowledged
//! only once the index commit holding them is durable (docs/search.md).
//! Batches are staged and committed together every `search.commit_ms`
//! (`Worker::flush_every`): a commit per batch cost more CPU than the
//! indexing itself (docs/performance.md).
//!
//! Exactly once in the index: a document is keyed by the message's server
//! id and replaced when written again, so a redelivered batch (a kill
//! before the ack) or a rebuild racing the stream leaves one document.
//! A fresh index (none in `search.dir`, or the directory deleted) is first
//! rebuilt from the store, whose rows carry each message's search flag;
//! the stream then goes on from its group's position.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use crate::services::trace::{self, Hop, HopKind, Traces};
use async_trait::async_trait;
use magpie_core::{BusEvent, Message, now_ms};
use magpie_search::{Batch, SearchIndex, schema::indexable};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub struct Indexer {
    node: String,
    index: SearchIndex,
    every: Duration,
    traces: Arc<Traces>,
    /// What was staged since the last commit: each message's hop and
    /// acceptance time, recorded (`indexed`, and the indexing delay) once
    /// a commit made it searchable.
    staged: Mutex<Vec<(Hop, i64)>>,
}

#[async_trait]
impl Worker for Indexer {
    fn group(&self) -> String {
        format!("search-{}", self.node)
    }
    fn topics(&self) -> Vec<String> {
        vec!["msg".to_string()]
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        let mut upsert: Vec<Message> = Vec::new();
        let mut revisions: Vec<&Message> = Vec::new();
        for e in events {
            let msgs = match e {
                BusEvent::Messages { msgs } => msgs.as_slice(),
                BusEvent::Message { msg } => std::slice::from_ref(msg),
                _ => continue,
            };
            for m in msgs {
                if m.meta.as_ref().is_some_and(|x| x.revises().is_some()) {
                    revisions.push(m);
                } else if indexable(m) {
                    upsert.push(m.clone());
                }
            }
        }
        let mut delete = Vec::new();
        for m in revisions {
            revised(app, m, &mut upsert, &mut delete).await?;
        }
        if upsert.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let n = upsert.len() as u64;
        {
            let mut staged = self.staged.lock();
            for m in &upsert {
                let hop = self.traces.enabled().then(|| Hop::of(HopKind::Indexed, m));
                staged.push((hop.unwrap_or_default(), m.sent_at));
            }
        }
        self.index
            .stage(Batch {
                upsert,
                delete,
                expire_before: None,
            })
            .await?;
        metrics::counter!(crate::metrics::SEARCH_INDEXED).increment(n);
        Ok(())
    }
    fn flush_every(&self) -> Option<Duration> {
        Some(self.every)
    }
    fn mark(&self) -> u64 {
        self.index.epoch()
    }
    async fn flush(&self) -> Result<u64> {
        let committed = self.index.commit().await;
        let staged = std::mem::take(&mut *self.staged.lock());
        // A failed commit drops the hops with the staged documents: the
        // events come again, and so will their hops.
        let epoch = committed?;
        let now = now_ms();
        let delay = metrics::histogram!(crate::metrics::SEARCH_DELAY);
        let at_us = trace::now_us();
        let mut hops = Vec::with_capacity(staged.len());
        for (mut hop, sent_at) in staged {
            delay.record((now - sent_at).max(0) as f64 / 1000.0);
            if hop.server_id != 0 {
                hop.at_us = at_us;
                hops.push(hop);
            }
        }
        self.traces.record_all(hops);
        Ok(epoch)
    }
}

/// An edit or recall event (`magpie_core::meta`): the message it revises,
/// as the store has it now (the store commits before the event is
/// published, docs/protocol.md §5.10), is indexed again after this batch's
/// messages, or dropped once recalled. The event itself is not indexed.
/// One store read per revision: they are rare beside messages.
async fn revised(
    app: &App,
    event: &Message,
    upsert: &mut Vec<Message>,
    delete: &mut Vec<i64>,
) -> Result<()> {
    let Some(seq) = event.meta.as_ref().and_then(|m| m.revises()) else {
        return Ok(());
    };
    let page = app
        .store
        .messages()
        .messages_after(event.from, &event.conv, seq - 1, 1)
        .await?;
    let Some(target) = page.into_iter().find(|t| t.seq == seq) else {
        return Ok(()); // gone (retention): nothing left to index
    };
    if target.meta.as_ref().is_some_and(|m| m.recalled) {
        delete.push(target.server_id.0);
    } else if indexable(&target) {
        upsert.push(target);
    }
    Ok(())
}

/// The indexer (after a rebuild when the index is fresh) and the sweep of
/// expired documents.
pub fn spawn(app: &App, index: SearchIndex) -> Vec<(String, JoinHandle<()>)> {
    let indexer = Indexer {
        node: app.node().to_string(),
        index: index.clone(),
        every: Duration::from_millis(app.cfg.search.commit_ms.max(1)),
        traces: app.traces.clone(),
        staged: Mutex::new(Vec::new()),
    };
    let run = {
        let app = app.clone();
        let index = index.clone();
        async move {
            if index.fresh() && !rebuild(&app, &index).await {
                return;
            }
            super::run(app, Box::new(indexer)).await
        }
    };
    let sweep = sweep(app.clone(), index);
    vec![
        ("search-indexer".into(), tokio::spawn(run)),
        ("search-sweep".into(), tokio::spawn(sweep)),
    ]
}

/// Reads every searchable message from the store into the index, page by
/// page, retrying a failed page; false if shutdown came first.
async fn rebuild(app: &App, index: &SearchIndex) -> bool {
    let gauge = metrics::gauge!(crate::metrics::SEARCH_REBUILDING);
    index.set_rebuilding(true);
    gauge.set(1.0);
    tracing::info!(node = %app.node(), "search index missing: rebuilding it from the store");
    let batch = app.cfg.search.rebuild_batch.max(1);
    let mut after = None;
    let mut total = 0u64;
    let mut backoff = magpie_core::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        if app.shutdown.is_cancelled() {
            return false;
        }
        let page = match app
            .store
            .messages()
            .scan_searchable(after.clone(), batch)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "search rebuild: store read failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let Some(last) = page.last() else { break };
        let next = Some((last.conv.clone(), last.seq));
        let upsert: Vec<Message> = page.into_iter().filter(indexable).collect();
        let n = upsert.len() as u64;
        if let Err(e) = index
            .apply(Batch {
                delete: Vec::new(),
                upsert,
                expire_before: Some(now_ms()),
            })
            .await
        {
            // The same page again: the cursor moves only past what is in.
            tracing::warn!(error = %e, "search rebuild: index write failed; retrying");
            tokio::time::sleep(backoff.next_delay()).await;
            continue;
        }
        after = next;
        backoff.reset();
        total += n;
        metrics::counter!(crate::metrics::SEARCH_INDEXED).increment(n);
    }
    index.set_rebuilding(false);
    gauge.set(0.0);
    metrics::gauge!(crate::metrics::SEARCH_DOCS).set(index.num_docs() as f64);
    tracing::info!(node = %app.node(), messages = total, "search index rebuilt");
    true
}

/// Deletes the documents of expired (`days:N`) messages now and then, and
/// publishes the document count.
async fn sweep(app: App, index: SearchIndex) {
    let every = Duration::from_millis(app.cfg.search.sweep_ms.max(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = app.shutdown.cancelled() => return,
        }
        let expired = Batch {
            delete: Vec::new(),
            upsert: Vec::new(),
            expire_before: Some(now_ms()),
        };
        if let Err(e) = index.apply(expired).await {
            tracing::warn!(error = %e, "search sweep failed");
        }
        metrics::gauge!(crate::metrics::SEARCH_DOCS).set(index.num_docs() as f64);
    }
}
