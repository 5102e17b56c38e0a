//! Owns handing messages to the application exactly once and in order: it
//! drops duplicates, fills gaps by syncing before delivering what follows,
//! resyncs after reconnects, and acknowledges each message right after the
//! application has it.
//!
//! It runs as its own task (not in the socket loop) because filling a gap
//! waits for a sync reply that the socket loop itself has to read.

use crate::client::Event;
use crate::dedup::Verdict;
use crate::error::Result;
use crate::requests::{Inner, lock};
use magpie_core::Message;
use magpie_proto::{ClientOp, SyncConv};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Upper bound on sync pages per catch-up, so a server that keeps saying
/// `more` without progress cannot spin us forever.
const MAX_PAGES: usize = 10_000;

/// What the socket loop hands to the delivery task, in arrival order.
pub(crate) enum Inbound {
    Push(Message),
    Event(Event),
    /// A (re)connection is up: fetch what was missed, then emit `Resynced`.
    Resync,
}

/// The application stopped listening (dropped the client).
struct AppGone;

pub(crate) async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Inbound>,
    events: mpsc::Sender<Event>,
) {
    let d = Delivery { inner, events };
    while let Some(item) = rx.recv().await {
        let step = match item {
            Inbound::Push(msg) => d.on_push(msg).await,
            Inbound::Event(ev) => d.emit(ev).await,
            Inbound::Resync => match d.catch_up().await {
                Ok(Ok(())) => d.emit(Event::Resynced).await,
                Ok(Err(e)) => {
                    // The connection most likely dropped again; the next one resyncs.
                    tracing::warn!(error = %e, "resync failed");
                    Ok(())
                }
                Err(gone) => Err(gone),
            },
        };
        if step.is_err() {
            return;
        }
    }
}

struct Delivery {
    inner: Arc<Inner>,
    events: mpsc::Sender<Event>,
}

impl Delivery {
    async fn emit(&self, ev: Event) -> Result<(), AppGone> {
        self.events.send(ev).await.map_err(|_| AppGone)
    }

    async fn on_push(&self, msg: Message) -> Result<(), AppGone> {
        let verdict = lock(&self.inner.dedup).check(&msg);
        if let Verdict::Gap { from, to } = verdict {
            tracing::debug!(conv = %msg.conv, from, to, "gap before pushed message, syncing");
            if let Err(e) = self.catch_up().await? {
                // Deliver anyway: losing nothing beats strict order. The hole
                // stays below the contiguous mark and the next sync fills it.
                tracing::warn!(error = %e, conv = %msg.conv, "gap fill failed");
            }
        }
        // The sync may have delivered this very message; `deliver` re-checks.
        self.deliver(msg).await
    }

    /// Hands `msg` to the application unless it already has it, then acks it.
    /// Duplicates are acked too: the server resent because our ack was lost.
    async fn deliver(&self, msg: Message) -> Result<(), AppGone> {
        let ack = ClientOp::Ack {
            conv: msg.conv.clone(),
            seqs: vec![msg.seq],
        };
        self.hand_over(msg).await?;
        self.inner.send_oneway(ack);
        Ok(())
    }

    /// Hands `msg` to the application unless it already has it (no ack).
    async fn hand_over(&self, msg: Message) -> Result<(), AppGone> {
        let (verdict, own) = {
            let d = lock(&self.inner.dedup);
            (d.check(&msg), d.is_unresolved_own(&msg))
        };
        if verdict != Verdict::Duplicate {
            let record = msg.clone();
            // An own send still waiting for its reply: the reply (or the
            // application's retry with the same id) delivers it, not an event.
            if !own {
                self.emit(Event::Message(msg)).await?;
            }
            lock(&self.inner.dedup).mark(&record);
        }
        Ok(())
    }

    /// Syncs from the current positions until nothing is left (`more` false
    /// everywhere), delivering in order. Every page lists every known
    /// conversation: the server syncs unlisted ones from 0.
    async fn catch_up(&self) -> Result<Result<()>, AppGone> {
        for _ in 0..MAX_PAGES {
            let positions = lock(&self.inner.dedup).positions();
            let resp = match self.inner.sync(positions.clone(), None).await {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let mut more = false;
            for conv in resp.convs {
                more |= conv.more;
                self.apply(conv).await?;
            }
            if !more || lock(&self.inner.dedup).positions() == positions {
                return Ok(Ok(()));
            }
        }
        Ok(Ok(()))
    }

    async fn apply(&self, mut sc: SyncConv) -> Result<(), AppGone> {
        sc.messages.sort_by_key(|m| m.seq);
        // One ack for the page, once the application has all of it.
        let seqs: Vec<_> = sc.messages.iter().map(|m| m.seq).collect();
        for msg in sc.messages {
            self.hand_over(msg).await?;
        }
        if !seqs.is_empty() {
            self.inner.send_oneway(ClientOp::Ack {
                conv: sc.conv.clone(),
                seqs,
            });
        }
        sc.unavailable.sort();
        for &(from, to) in &sc.unavailable {
            lock(&self.inner.dedup).skip_range(&sc.conv, from, to);
            self.emit(Event::Unavailable {
                conv: sc.conv.clone(),
                from,
                to,
            })
            .await?;
        }
        if !sc.more {
            // Everything up to last_seq was either returned or reported
            // unavailable; anything else missing must not be waited for.
            let skipped = lock(&self.inner.dedup).advance(&sc.conv, sc.last_seq);
            for (from, to) in skipped {
                self.emit(Event::Unavailable {
                    conv: sc.conv.clone(),
                    from,
                    to,
                })
                .await?;
            }
        }
        Ok(())
    }
}
