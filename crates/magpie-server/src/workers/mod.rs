//! The worker role: consumers of the bus, one durable group each
//! (retention; the offline index and unread cache as one `state` worker,
//! which decodes each event once; the feed fan-out; the offline push
//! webhook when configured), and the retention sweeper. Presence
//! is not here: it is ephemeral and fanned out by the node where it
//! happens (`services/presence.rs`).
//!
//! Invariant: a worker acknowledges an event only after applying it. An
//! event that keeps failing is parked on `dead.<group>` after
//! `workers.max_attempts` attempts, with a metric — never silently skipped.

mod fanout;
mod lag;
mod members;
mod paused;
mod push;
mod retention;
mod search;
mod staged;
mod state;

use crate::app::App;
use crate::error::Result;
use async_trait::async_trait;
use magpie_bus::{ConsumerOptions, Delivery, Outgoing};
use magpie_core::{Backoff, BusEvent, Envelope, EventId};
use std::sync::Arc;

pub use paused::Paused;
pub use push::PushConfig;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// One kind of worker: its group, its topics and how it applies events.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    fn group(&self) -> String;
    fn topics(&self) -> Vec<String>;
    /// Applies a batch; on error every event is retried one by one.
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()>;
    /// For a worker whose `apply` only stages its work (the search index,
    /// where one commit per batch would cost more than the indexing): the
    /// longest staged work waits for a `flush`. The runner acknowledges
    /// staged events only once a flush that holds them has returned.
    fn flush_every(&self) -> Option<Duration> {
        None
    }
    /// Changes whenever staged work is lost (a failed flush rolled it
    /// back): events staged under another mark are not acknowledged.
    fn mark(&self) -> u64 {
        0
    }
    /// Makes everything staged so far durable; returns the mark it holds.
    async fn flush(&self) -> Result<u64> {
        Ok(self.mark())
    }
}

/// Starts every worker kind; they stop after their current batch once the
/// app's shutdown token is cancelled.
pub fn spawn_all(app: &App) -> Vec<(String, JoinHandle<()>)> {
    let workers: Vec<Box<dyn Worker>> = vec![
        Box::new(state::DerivedState),
        Box::new(retention::Retention),
        Box::new(fanout::Fanout),
    ];
    let mut handles: Vec<(String, JoinHandle<()>)> = workers
        .into_iter()
        .map(|w| (w.group(), tokio::spawn(run(app.clone(), w))))
        .collect();
    handles.push((
        "retention-sweeper".into(),
        tokio::spawn(retention::sweep(app.clone())),
    ));
    // The offline push webhook, when configured (`push.webhook_url`).
    handles.extend(push::spawn(app));
    handles
}

/// The search role's tasks: the indexer of this node's index (rebuilt
/// first when fresh) and its sweep (`workers/search.rs`).
pub fn spawn_search(app: &App, index: magpie_search::SearchIndex) -> Vec<(String, JoinHandle<()>)> {
    search::spawn(app, index)
}

/// The membership consumer of every connection node: keeps its local
/// group index current (`workers/members.rs`).
pub async fn run_members(app: App) {
    let node = app.node().to_string();
    run(app, Box::new(members::Members::for_node(&node))).await
}

/// Consumes every partition of the bus, one loop each: a partition's
/// events are applied in order, partitions independently of one another
/// (one conversation's events share a partition: `magpie_bus::partition_of`).
async fn run(app: App, worker: Box<dyn Worker>) {
    let worker: Arc<dyn Worker> = worker.into();
    let loops =
        (0..app.events.bus().partitions()).map(|p| run_partition(app.clone(), worker.clone(), p));
    futures_util::future::join_all(loops).await;
}

async fn run_partition(app: App, worker: Arc<dyn Worker>, partition: u32) {
    let opts = ConsumerOptions {
        ack_wait: Duration::from_millis(app.cfg.workers.ack_wait_ms),
    };
    let (group, topics) = (worker.group(), worker.topics());
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    // Shown at 0 from the start (docs/observability.md), before the group
    // is joined: a join can take a while (a replicated stream's consumer,
    // a Kafka rebalance), and a series that appears late misleads
    // dashboards and absence-based alerts.
    let applied = metrics::counter!(crate::metrics::WORKER_EVENTS, "group" => group.clone());
    metrics::counter!(crate::metrics::DEAD_LETTERS, "group" => group.clone()).increment(0);
    applied.increment(0);
    let mut lag = lag::Lag::new(&group, partition);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut consumer = loop {
        match app
            .events
            .bus()
            .consumer(&group, &topics, partition, opts.clone())
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(group = %group, partition, error = %e, "cannot join consumer group; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = app.shutdown.cancelled() => return,
                }
            }
        }
    };
    backoff.reset();
    let mut staged = staged::Staged::new(worker.flush_every());
    let mut failing = false;
    loop {
        if app.paused.is_paused(&group) {
            // An operator paused the group here (docs/observability.md):
            // what is staged still becomes durable; nothing new is taken.
            staged
                .flush(worker.as_ref(), consumer.as_mut(), &group)
                .await;
            lag.idle();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = app.shutdown.cancelled() => return,
            }
            continue;
        }
        if staged.due() {
            staged
                .flush(worker.as_ref(), consumer.as_mut(), &group)
                .await;
        }
        let wait = staged.wait(Duration::from_millis(500));
        let batch = tokio::select! {
            b = consumer.fetch(app.cfg.workers.batch, wait) => b,
            _ = app.shutdown.cancelled() => {
                // What is staged is made durable and acknowledged now
                // rather than applied again after the restart.
                staged.flush(worker.as_ref(), consumer.as_mut(), &group).await;
                return;
            }
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                crate::metrics::meters().bus_errors.increment(1);
                tracing::warn!(group = %group, error = %e, "fetch failed");
                failing = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = app.shutdown.cancelled() => return,
                }
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            backoff.reset();
            tracing::info!(group = %group, "fetching again");
        }
        lag.fetched(consumer.as_ref(), batch.len(), app.cfg.workers.batch);
        if batch.is_empty() {
            continue;
        }
        let mark = worker.mark();
        // A span per batch (debug: free unless the log filter asks for it,
        // GET/PUT /internal/v1/log), so each line logged while applying it
        // names the group and partition.
        let span = tracing::debug_span!("apply", group = %group, partition, events = batch.len());
        let acks = process(&app, worker.as_ref(), batch).instrument(span).await;
        applied.increment(acks.len() as u64);
        if staged.enabled() {
            staged.add(acks, mark);
            continue;
        }
        if let Err(e) = consumer.ack(&acks).await {
            // Not acknowledged: the events come back and are applied again,
            // which every worker tolerates (idempotent apply).
            crate::metrics::meters().bus_errors.increment(1);
            tracing::warn!(group = %group, error = %e, "ack failed");
        }
    }
}

/// Applies a batch; returns the offsets to acknowledge.
async fn process(app: &App, worker: &dyn Worker, batch: Vec<Delivery>) -> Vec<u64> {
    let group = worker.group();
    let mut acks = Vec::with_capacity(batch.len());
    let mut events = Vec::with_capacity(batch.len());
    let mut decoded = Vec::with_capacity(batch.len());
    for d in batch {
        match Envelope::open(&d.payload) {
            Ok(ev) => {
                events.push(ev);
                decoded.push(d);
            }
            Err(e) => {
                // Undecodable: it can never succeed, park it right away.
                dead_letter(app, &group, &d, "", &e.to_string()).await;
                acks.push(d.offset);
            }
        }
    }
    if worker.apply(app, &events).await.is_ok() {
        acks.extend(decoded.iter().map(|d| d.offset));
        return acks;
    }
    for (d, ev) in decoded.into_iter().zip(events) {
        match worker.apply(app, std::slice::from_ref(&ev)).await {
            Ok(()) => acks.push(d.offset),
            Err(e) if d.attempt >= app.cfg.workers.max_attempts => {
                dead_letter(app, &group, &d, &trace_ids(&ev), &e.to_string()).await;
                acks.push(d.offset);
            }
            Err(e) => {
                tracing::warn!(group = %group, offset = d.offset, attempt = d.attempt,
                    trace_id = %trace_ids(&ev), node = %app.cfg.node, error = %e,
                    "event failed; will retry")
            }
        }
    }
    acks
}

/// The trace ids of the messages an event carries, for the lines logged
/// about it (docs/observability.md "Logs"); empty for other events.
fn trace_ids(ev: &BusEvent) -> String {
    let ids: Vec<String> = match ev {
        BusEvent::Message { msg } | BusEvent::GroupBroadcast { msg, .. } => {
            vec![msg.trace_context().trace_hex()]
        }
        BusEvent::Messages { msgs } => msgs.iter().map(|m| m.trace_context().trace_hex()).collect(),
        _ => Vec::new(),
    };
    ids.join(",")
}

async fn dead_letter(app: &App, group: &str, d: &Delivery, trace_id: &str, why: &str) {
    metrics::counter!(crate::metrics::DEAD_LETTERS, "group" => group.to_string()).increment(1);
    tracing::error!(group, offset = d.offset, topic = %d.topic, trace_id, node = %app.cfg.node,
        error = why, "event parked on the dead-letter topic");
    app.alarms.raise(
        "dead_letter",
        format!(
            "{group}: the event at offset {} of {} parked on dead.{group}: {why}",
            d.offset, d.topic
        ),
    );
    let id = EventId::DeadLetter {
        group: group.to_string(),
        offset: d.offset,
    };
    let out = Outgoing {
        topic: format!("dead.{group}"),
        key: String::new(),
        msg_id: id.to_string(),
        payload: d.payload.clone(),
    };
    crate::metrics::meters().bus_appends.increment(1);
    if let Err(e) = app.events.bus().publish(vec![out]).await {
        tracing::error!(group, error = %e, "dead-letter publish failed");
    }
}
