//! The node's send pipeline: every connection's (and every HTTP call's)
//! checked sends meet here, so one store transaction and one bus append
//! carry all that arrived meanwhile, whoever sent it (group commit at the
//! message level, not per connection).
//!
//! Two stages, each one task, so the store and the bus work at once:
//! 1. `accept`: takes what is queued, one `store.accept` for all of it;
//! 2. `publish`: takes what stage 1 accepted, in order, one `bus.publish`
//!    for all of it, then answers the senders, then pushes.
//!
//! Invariants (ARCHITECTURE.md): a sender is answered only after its
//! messages are in the store AND their events on the bus; events are
//! published in acceptance order, so each conversation's events reach the
//! workers in sequence order; pushes come after the answers and never fail
//! a send.

use super::Messaging;
use crate::error::{Result, ServerError};
use crate::metrics::meters;
use crate::services::delivery::{Stamps, note_stamp};
use crate::services::trace::{Hop, HopKind};
use magpie_bus::Outgoing;
use magpie_core::{
    Accepted, BusEvent, ClientMsgId, DeviceId, EventId, Message, NewMessage, ServerMsgId, UserId,
};
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Messages one store transaction takes at most.
const MAX_BATCH: usize = 1024;
/// Accepted batches waiting for the bus (beyond this stage 1 waits).
const PUBLISH_QUEUE: usize = 4;
/// Messages per bus event, and (roughly) body bytes per event.
const EVENT_MSGS: usize = 256;
const EVENT_BYTES: usize = 256 * 1024;

/// One sender's checked messages and where their answer goes.
struct Submission {
    origin: Option<DeviceId>,
    msgs: Vec<NewMessage>,
    reply: oneshot::Sender<Vec<Result<Accepted>>>,
}

/// A submission after the store: its outcomes, and the messages to publish
/// and push (new ones, and the originals of duplicates the store found).
struct Stored {
    origin: Option<DeviceId>,
    outcomes: Vec<Result<Accepted>>,
    publish: Vec<Message>,
    /// What the idempotency fast path learns: the sender's accepted cmids.
    remember: Option<(UserId, Vec<(ClientMsgId, Accepted)>)>,
    /// New messages, and the rows they wrote (the body, plus one box row per
    /// party of a direct message; a group message is its body alone).
    fresh: u64,
    rows: u64,
    reply: oneshot::Sender<Vec<Result<Accepted>>>,
}

/// The entrance of the pipeline (held by the messaging service).
pub struct Pipeline {
    tx: mpsc::Sender<Submission>,
    rx: Mutex<Option<mpsc::Receiver<Submission>>>,
}

impl Default for Pipeline {
    fn default() -> Self {
        // Bounded: when the store falls behind, senders wait here (and stop
        // reading their sockets), instead of queueing without limit.
        let (tx, rx) = mpsc::channel(4096);
        Pipeline {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Pipeline {
    /// Sends checked messages of one sender; one outcome per message once
    /// they are durable (or refused, or failed).
    pub(crate) async fn submit(
        &self,
        origin: Option<&DeviceId>,
        msgs: Vec<NewMessage>,
    ) -> Vec<Result<Accepted>> {
        let n = msgs.len();
        let gone = || {
            (0..n)
                .map(|_| Err(ServerError::Unavailable("shutting down".into())))
                .collect()
        };
        let (reply, answer) = oneshot::channel();
        let sub = Submission {
            origin: origin.cloned(),
            msgs,
            reply,
        };
        if self.tx.send(sub).await.is_err() {
            return gone();
        }
        answer.await.unwrap_or_else(|_| gone())
    }
}

/// Starts both stages; they stop once the node shuts down, after finishing
/// what they hold.
pub(super) fn spawn(
    app: &Arc<Messaging>,
    shutdown: CancellationToken,
) -> Vec<(String, JoinHandle<()>)> {
    let Some(rx) = app.pipeline.rx.lock().take() else {
        return Vec::new();
    };
    let (stored_tx, stored_rx) = mpsc::channel(PUBLISH_QUEUE);
    vec![
        (
            "send-accept".into(),
            tokio::spawn(accept_stage(Arc::clone(app), shutdown, rx, stored_tx)),
        ),
        (
            "send-publish".into(),
            tokio::spawn(publish_stage(Arc::clone(app), stored_rx)),
        ),
    ]
}

async fn accept_stage(
    app: Arc<Messaging>,
    shutdown: CancellationToken,
    mut rx: mpsc::Receiver<Submission>,
    out: mpsc::Sender<Vec<Stored>>,
) {
    loop {
        let first = tokio::select! {
            s = rx.recv() => s,
            _ = shutdown.cancelled() => {
                // Take nothing new; what is queued still gets an answer.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        let mut subs = vec![first];
        let mut n = subs[0].msgs.len();
        while n < MAX_BATCH {
            match rx.try_recv() {
                Ok(s) => {
                    n += s.msgs.len();
                    subs.push(s);
                }
                Err(_) => break,
            }
        }
        let stored = accept(&app, subs).await;
        if !stored.is_empty() && out.send(stored).await.is_err() {
            return;
        }
    }
}

/// One store transaction for every submission; duplicates the store found
/// are read back so their events and pushes can be repeated (the first
/// attempt may have died between the store and the bus).
async fn accept(app: &Messaging, subs: Vec<Submission>) -> Vec<Stored> {
    let counts: Vec<usize> = subs.iter().map(|s| s.msgs.len()).collect();
    let all: Vec<NewMessage> = subs.iter().flat_map(|s| s.msgs.iter().cloned()).collect();
    let started = std::time::Instant::now();
    let accepted = app.store.messages().accept(all).await;
    meters().stage_store.record(started.elapsed().as_secs_f64());
    let outcomes = match accepted {
        Ok(o) => o,
        Err(e) => {
            meters().store_errors.increment(1);
            let msg = e.to_string();
            for (sub, n) in subs.into_iter().zip(counts) {
                let err = || Err(ServerError::Unavailable(format!("storage: {msg}")));
                let _ = sub.reply.send((0..n).map(|_| err()).collect());
            }
            return Vec::new();
        }
    };
    let mut outcomes = outcomes.into_iter();
    let mut stored = Vec::with_capacity(subs.len());
    // The `durable` hops of the batch, recorded together.
    let mut hops = app.traces.enabled().then(Vec::new);
    for sub in subs {
        let from = sub.msgs.first().map(|m| m.from);
        let mut s = Stored {
            origin: sub.origin,
            outcomes: Vec::with_capacity(sub.msgs.len()),
            publish: Vec::with_capacity(sub.msgs.len()),
            remember: None,
            fresh: 0,
            rows: 0,
            reply: sub.reply,
        };
        let mut remember = Vec::new();
        for nm in sub.msgs {
            let Some(outcome) = outcomes.next() else {
                s.outcomes
                    .push(Err(ServerError::Internal("store answered short".into())));
                continue;
            };
            let acc = match outcome {
                Ok(acc) => acc,
                Err(e) => {
                    s.outcomes.push(Err(e.into()));
                    continue;
                }
            };
            // The fast path answers retries: the group stamp is for pushes.
            remember.push((
                nm.cmid,
                Accepted {
                    group: None,
                    ..acc.clone()
                },
            ));
            if acc.duplicate {
                match original(app, &nm, &acc).await {
                    Ok(Some(orig)) => s.publish.push(orig),
                    // Removed by retention: nothing left to deliver.
                    Ok(None) => {}
                    Err(e) => {
                        s.outcomes.push(Err(e));
                        continue;
                    }
                }
            } else {
                s.fresh += 1;
                s.rows += match nm.conv.group_id() {
                    Some(_) => 1,
                    None if nm.from == nm.to => 2,
                    None => 3,
                };
                let msg = Message::from_new(nm, acc.seq);
                if let Some(hops) = &mut hops {
                    let conv: Arc<str> = msg.conv.as_str().into();
                    hops.push(Hop::of(HopKind::Durable, &msg).detail(conv));
                }
                s.publish.push(msg);
            }
            s.outcomes.push(Ok(acc));
        }
        s.remember = from.filter(|_| !remember.is_empty()).map(|f| (f, remember));
        stored.push(s);
    }
    if let Some(hops) = hops {
        app.traces.record_all(hops);
    }
    stored
}

async fn original(app: &Messaging, nm: &NewMessage, acc: &Accepted) -> Result<Option<Message>> {
    let found = app
        .store
        .messages()
        .messages_after(nm.from, &acc.conv, acc.seq - 1, 1)
        .await?;
    Ok(found.into_iter().next().filter(|m| m.seq == acc.seq))
}

async fn publish_stage(app: Arc<Messaging>, mut rx: mpsc::Receiver<Vec<Stored>>) {
    while let Some(mut batch) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            batch.extend(more);
        }
        publish(&app, batch).await;
    }
}

/// One bus append for the batch, then the answers, then the pushes.
async fn publish(app: &Messaging, batch: Vec<Stored>) {
    let msgs: Vec<&Message> = batch.iter().flat_map(|s| s.publish.iter()).collect();
    let mut events = Vec::new();
    for part in by_partition(msgs, app.events.bus().partitions()) {
        for chunk in chunks(&part) {
            match encode(chunk) {
                Ok(e) => events.push(e),
                Err(e) => tracing::error!(error = %e, "message event not encodable"),
            }
        }
    }
    let started = std::time::Instant::now();
    let published = if events.is_empty() {
        Ok(())
    } else {
        app.events.publish_sealed(events.clone()).await
    };
    meters().stage_bus.record(started.elapsed().as_secs_f64());
    if let Err(e) = published {
        // Stored but not published: the senders retry, and so do we.
        meters().bus_errors.increment(1);
        app.events.republish_later(events);
        let msg = format!("bus: {e}");
        for s in batch {
            let outs = s
                .outcomes
                .into_iter()
                .map(|o| o.and_then(|_| Err(ServerError::Unavailable(msg.clone()))))
                .collect();
            let _ = s.reply.send(outs);
        }
        return;
    }
    let m = meters();
    let mut pushes = Vec::new();
    let mut remembered = Vec::new();
    let mut stamps = Stamps::new();
    for s in batch {
        for acc in s.outcomes.iter().flatten() {
            if let (Some(g), Some(stamp)) = (acc.conv.group_id(), acc.group) {
                note_stamp(&mut stamps, g, stamp);
            }
        }
        m.accepted.increment(s.fresh);
        m.store_rows.increment(s.rows);
        remembered.extend(s.remember);
        let _ = s.reply.send(s.outcomes);
        app.traces.published(&s.publish, &app.cfg);
        pushes.extend(s.publish.into_iter().map(|msg| (msg, s.origin.clone())));
    }
    app.delivery.push_messages(pushes, &stamps).await;
    // The idempotency fast path, after the answers and off this stage (on
    // failure, or if it lands late, the store's durable key still answers a
    // retry); one call per sender, all at once.
    if !remembered.is_empty() {
        let state = app.state.clone();
        let ttl = app.cfg.limits.idempotency_ttl_secs * 1000;
        tokio::spawn(async move {
            let puts = remembered
                .iter()
                .map(|(from, items)| state.idem_put_many(*from, items, ttl));
            futures_util::future::join_all(puts).await;
        });
    }
}

/// Splits messages by bus partition, keeping their order in each: an event
/// is keyed by its first message's conversation, so an event of several
/// conversations must hold only conversations of one partition, or some
/// would leave their partition and their order (`magpie_bus::partition_of`).
fn by_partition(msgs: Vec<&Message>, partitions: u32) -> Vec<Vec<&Message>> {
    if partitions <= 1 {
        return vec![msgs];
    }
    let mut parts = vec![Vec::new(); partitions as usize];
    for m in msgs {
        parts[magpie_bus::partition_of(&m.conv.to_string(), partitions) as usize].push(m);
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// Splits a batch into events of at most `EVENT_MSGS` messages and about
/// `EVENT_BYTES` of bodies, keeping acceptance order.
fn chunks<'a>(msgs: &'a [&'a Message]) -> Vec<&'a [&'a Message]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in msgs.iter().enumerate() {
        if i > start && (i - start >= EVENT_MSGS || bytes + m.body.len() > EVENT_BYTES) {
            out.push(&msgs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += m.body.len();
    }
    if start < msgs.len() {
        out.push(&msgs[start..]);
    }
    out
}

/// One event for messages accepted together; its id names the first
/// message and the count, so a republished event is the same event.
fn encode(msgs: &[&Message]) -> Result<Outgoing> {
    let id = EventId::Messages {
        first: msgs.first().map_or(ServerMsgId(0), |m| m.server_id),
        count: msgs.len(),
    };
    let event = BusEvent::Messages {
        msgs: msgs.iter().map(|m| (*m).clone()).collect(),
    };
    crate::services::events::seal(&event, &id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_core::{ClientMsgId, ConvId, Persistence, ServerMsgId};

    fn msg(id: i64, body: usize) -> Message {
        Message {
            meta: None,
            trace: None,
            server_id: ServerMsgId(id),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq: id,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: "x".repeat(body),
            persistence: Persistence::Forever,
            sent_at: 0,
            search: false,
        }
    }

    #[test]
    fn an_event_holds_one_partition_of_conversations() {
        let msgs: Vec<Message> = (1..=40)
            .map(|i| Message {
                conv: ConvId::direct(UserId(i % 9), UserId(100)),
                ..msg(i, 10)
            })
            .collect();
        let refs: Vec<&Message> = msgs.iter().collect();
        let parts = by_partition(refs, 4);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 40);
        for part in &parts {
            let key = part[0].conv.to_string();
            let home = magpie_bus::partition_of(&key, 4);
            assert!(
                part.iter()
                    .all(|m| magpie_bus::partition_of(&m.conv.to_string(), 4) == home)
            );
            assert!(part.windows(2).all(|w| w[0].seq < w[1].seq), "order kept");
        }
    }

    #[test]
    fn events_are_bounded_and_keep_order() {
        let small: Vec<Message> = (1..=EVENT_MSGS as i64 * 2 + 1)
            .map(|i| msg(i, 10))
            .collect();
        let refs: Vec<&Message> = small.iter().collect();
        let parts = chunks(&refs);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [EVENT_MSGS, EVENT_MSGS, 1]
        );
        let big: Vec<Message> = (1..=3).map(|i| msg(i, EVENT_BYTES / 2 + 1)).collect();
        let refs: Vec<&Message> = big.iter().collect();
        assert_eq!(chunks(&refs).len(), 3, "one oversized body per event");
        let seqs: Vec<i64> = chunks(&refs)
            .iter()
            .flat_map(|p| p.iter().map(|m| m.seq))
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        let e = encode(&refs[..2]).expect("encodes");
        assert_eq!((e.topic.as_str(), e.msg_id.as_str()), ("msg", "m:1:2"));
    }
}
