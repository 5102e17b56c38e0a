//! A puller of one durable JetStream consumer (a group member).
//!
//! JetStream keeps the group's delivery state; this side only remembers,
//! per offset it was handed, the message's ack subject, so that `ack` and
//! `nak` (which take offsets) can answer the right delivery.

use super::unavailable;
use crate::{Consumer, Delivery, Result};
use async_nats::Subject;
use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::PullConsumer;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::join_all;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Shorter waits are not worth a server-side pull request.
const MIN_WAIT: Duration = Duration::from_millis(1);
/// How long past its expiry a pull may stay unanswered. A pull request
/// lost with the connection (the server restarted) is never answered: the
/// client would wait on it forever, and this consumer would stop consuming.
const PULL_GRACE: Duration = Duration::from_secs(5);

/// The longest a pull that found no responder waits before answering
/// "nothing ready".
const NO_RESPONDER_PAUSE: Duration = Duration::from_millis(100);

/// Whether a pull's error is a 503 status (no responders). The client
/// reports a fetch's status only as text (`"… from the stream: 503, …"`).
fn no_responders(e: &(dyn std::error::Error + Send + Sync)) -> bool {
    e.to_string().contains(": 503,")
}

/// The ack subject of a delivery we handed out, and when.
struct Held {
    reply: Subject,
    at: Instant,
}

pub(super) struct JetStreamConsumer {
    client: async_nats::Client,
    pull: PullConsumer,
    /// `{stream}.`, stripped from subjects to give topics back.
    prefix: String,
    ack_wait: Duration,
    /// (partition count, this partition): offsets are `names::offset`.
    partition: (u32, u32),
    held: HashMap<u64, Held>,
    /// What the last fetch said remains (`Consumer::pending`).
    pending: Option<u64>,
}

impl JetStreamConsumer {
    pub fn new(
        client: async_nats::Client,
        pull: PullConsumer,
        prefix: String,
        ack_wait: Duration,
        partition: (u32, u32),
    ) -> Self {
        JetStreamConsumer {
            client,
            pull,
            prefix,
            ack_wait,
            partition,
            held: HashMap::new(),
            pending: None,
        }
    }

    /// One pull request: `wait: None` takes what is ready now (no_wait);
    /// otherwise the server holds the request up to `wait`.
    async fn pull(&self, max: usize, wait: Option<Duration>) -> Result<Vec<Message>> {
        let deadline = Instant::now() + wait.unwrap_or_default() + PULL_GRACE;
        let request = async {
            match wait {
                None => self.pull.fetch().max_messages(max).messages().await,
                Some(w) => {
                    self.pull
                        .batch()
                        .max_messages(max)
                        .expires(w)
                        .messages()
                        .await
                }
            }
        };
        let batch = tokio::time::timeout_at(deadline, request)
            .await
            .map_err(|_| unavailable("pull request", "no answer"))?
            .map_err(|e| unavailable("pull request", e))?;
        futures_util::pin_mut!(batch);
        let mut out = Vec::new();
        loop {
            let item = match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) if out.is_empty() => {
                    return Err(unavailable("pulling", "no answer past the pull's expiry"));
                }
                Err(_) => break,
            };
            match item {
                Ok(m) => out.push(m),
                // Nobody answered the pull: the consumer's leader is being
                // elected, or its interest has not reached our server yet.
                // That is "nothing ready", after a pause the length of the
                // wait asked for (bounded), so a fetch loop does not spin.
                Err(e) if out.is_empty() && no_responders(&*e) => {
                    let pause = wait.unwrap_or_default().min(NO_RESPONDER_PAUSE);
                    tokio::time::sleep(pause.max(MIN_WAIT)).await;
                    return Ok(Vec::new());
                }
                Err(e) if out.is_empty() => return Err(unavailable("pulling", e)),
                // Messages already received are in flight for us: hand them
                // out rather than leave them to wait for ack_wait.
                Err(e) => {
                    tracing::warn!(error = %e, "pull ended early");
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Turns a JetStream message into a delivery and remembers its ack
    /// subject; `None` (logged) for a message that is not a JetStream one.
    fn deliver(&mut self, m: Message) -> Option<Delivery> {
        let (offset, attempt) = match m.info() {
            Ok(info) => (
                super::names::offset(info.stream_sequence, self.partition.0, self.partition.1),
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
            ),
            Err(e) => {
                tracing::warn!(subject = %m.subject, error = %e, "not a jetstream delivery");
                return None;
            }
        };
        let reply = m.reply.clone()?;
        let topic = m.subject.strip_prefix(self.prefix.as_str())?.to_string();
        let at = Instant::now();
        self.held.insert(offset, Held { reply, at });
        Some(Delivery {
            offset,
            topic,
            payload: m.payload.clone(),
            attempt,
        })
    }

    /// Forgets deliveries held past twice their ack wait: by then the server
    /// has redelivered them (to us, replacing the entry, or to a competitor),
    /// so keeping them only grows the map.
    fn prune(&mut self) {
        let horizon = self.ack_wait.saturating_mul(2);
        self.held.retain(|_, h| h.at.elapsed() < horizon);
    }
}

#[async_trait]
impl Consumer for JetStreamConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.prune();
        let mut got = self.pull(max, None).await?;
        // A server-held pull for `max` would only return once `max` events
        // came or `wait` passed. Waiting for just one, then taking what else
        // is ready, returns as soon as anything arrives, and never leaves a
        // request open that could deliver to nobody.
        if got.is_empty() && wait >= MIN_WAIT {
            got = self.pull(1, Some(wait)).await?;
            if !got.is_empty() && max > 1 {
                got.extend(self.pull(max - 1, None).await?);
            }
        }
        // The server says with each message how many remain after it.
        self.pending = Some(match got.last().and_then(|m| m.info().ok()) {
            Some(info) => info.pending,
            None => 0,
        });
        Ok(got.into_iter().filter_map(|m| self.deliver(m)).collect())
    }

    fn pending(&self) -> Option<u64> {
        self.pending
    }

    async fn ack(&mut self, offsets: &[u64]) -> Result<()> {
        let mut asked = Vec::with_capacity(offsets.len());
        for &offset in offsets {
            match self.held.get(&offset) {
                Some(h) => asked.push((offset, h.reply.clone())),
                // Not ours (or long expired): the event will be redelivered,
                // which is the at-least-once side.
                None => tracing::warn!(offset, "ack for an event this consumer does not hold"),
            }
        }
        // A request, not a plain publish: the server answers once the ack is
        // stored (a "double ack"), which is what makes `ack` durable. All are
        // sent before any answer is awaited.
        let answers = join_all(asked.iter().map(|(_, reply)| {
            self.client
                .request(reply.clone(), Bytes::from_static(b"+ACK"))
        }))
        .await;
        let mut failed = None;
        for ((offset, _), answer) in asked.iter().zip(answers) {
            match answer {
                Ok(_) => {
                    self.held.remove(offset);
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(unavailable("acknowledging", e)),
            None => Ok(()),
        }
    }

    async fn nak(&mut self, offset: u64) -> Result<()> {
        let Some(held) = self.held.remove(&offset) else {
            return Ok(());
        };
        self.client
            .publish(held.reply, Bytes::from_static(b"-NAK"))
            .await
            .map_err(|e| unavailable("nak", e))?;
        // Flush so "as soon as possible" does not wait on client batching.
        self.client.flush().await.map_err(|e| unavailable("nak", e))
    }
}

impl Drop for JetStreamConsumer {
    /// Hands unacked deliveries back (nak) so another member, or this
    /// process after a restart, gets them now rather than after `ack_wait`.
    /// Best effort: after a crash the server redelivers them on its own.
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        let replies: Vec<Subject> = self.held.drain().map(|(_, h)| h.reply).collect();
        // The task owns a client handle, so the connection lives until the
        // naks are flushed.
        runtime.spawn(async move {
            for reply in replies {
                if let Err(e) = client.publish(reply, Bytes::from_static(b"-NAK")).await {
                    tracing::debug!(error = %e, "nak on drop");
                    return;
                }
            }
            if let Err(e) = client.flush().await {
                tracing::debug!(error = %e, "flushing naks on drop");
            }
        });
    }
}
