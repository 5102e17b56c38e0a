//! The NATS core relay (`nats://HOST:PORT`): subject `s` is
//! `{prefix}.{s}` on the server; nothing is stored.
//!
//! `send` never waits: frames go into a bounded queue that one task feeds
//! to the client (whose own publish waits while the connection is down).
//! A full queue or a lost connection refuses the frame; the numbering then
//! shows the loss. Losses only the connection sees are reported to every
//! subscription as `RawEvent::Lost`: a reconnect (frames sent to or by this
//! client meanwhile are gone) and a slow consumer (the client dropped
//! frames a subscription did not take in time, beyond `capacity`).

use super::{RawEvent, RawSubscription, RelayBackend, RelayOptions};
use crate::{BusError, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

/// How long `flush` and `subscribe` wait for the server's echo.
const ROUND_TRIP: std::time::Duration = std::time::Duration::from_secs(10);

enum Cmd {
    Publish(String, Bytes),
    /// Answered once everything queued before it reached the server.
    Flush(oneshot::Sender<()>),
}

/// A relay backend on one NATS connection.
pub struct NatsRelay {
    client: async_nats::Client,
    prefix: String,
    queue: mpsc::Sender<Cmd>,
    /// Bumped on every connection loss the client reports.
    losses: watch::Receiver<u64>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("relay {what}: {e}"))
}

impl NatsRelay {
    /// Connects to `url` (no query: `Relay::open_with` has taken it).
    pub async fn connect(url: &str, opts: &RelayOptions) -> Result<NatsRelay> {
        super::options::check_subject(&opts.prefix)?;
        let options = async_nats::ConnectOptions::new().subscription_capacity(opts.capacity);
        let (client, losses) = crate::nats_conn::connect(url, options, true).await?;
        let (queue, rx) = mpsc::channel(opts.capacity);
        tokio::spawn(pump(client.clone(), rx));
        Ok(NatsRelay {
            client,
            prefix: opts.prefix.clone(),
            queue,
            losses,
        })
    }
}

/// Feeds queued frames to the client in order; ends when the relay is
/// dropped and the queue drained.
async fn pump(client: async_nats::Client, mut rx: mpsc::Receiver<Cmd>) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            // A failed publish is a loss the numbering reports.
            Cmd::Publish(subject, frame) => {
                if let Err(e) = client.publish(subject, frame).await {
                    tracing::debug!("relay publish failed: {e}");
                }
            }
            Cmd::Flush(done) => {
                if let Err(e) = round_trip(&client).await {
                    tracing::debug!("relay flush failed: {e}");
                }
                let _ = done.send(());
            }
        }
    }
}

/// Returns once the server has processed everything this client sent
/// before: it echoes a frame on a private inbox, and a server handles one
/// connection's commands in order. (`Client::flush` only waits for the
/// socket write, which orders nothing against other connections.)
async fn round_trip(client: &async_nats::Client) -> Result<()> {
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| unavailable("round trip", e))?;
    client
        .publish(inbox, Bytes::new())
        .await
        .map_err(|e| unavailable("round trip", e))?;
    match tokio::time::timeout(ROUND_TRIP, echo.next()).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(unavailable("round trip", "no echo from the server")),
    }
}

#[async_trait]
impl RelayBackend for NatsRelay {
    fn send(&self, subject: &str, frame: Bytes) -> Result<()> {
        if self.client.connection_state() == async_nats::connection::State::Disconnected {
            return Err(unavailable("publishing", "not connected to NATS"));
        }
        let subject = format!("{}.{subject}", self.prefix);
        self.queue
            .try_send(Cmd::Publish(subject, frame))
            .map_err(|e| unavailable("publishing", e))
    }

    async fn subscribe(&self, subject: &str) -> Result<Box<dyn RawSubscription>> {
        let mut losses = self.losses.clone();
        losses.mark_unchanged();
        let sub = self
            .client
            .subscribe(format!("{}.{subject}", self.prefix))
            .await
            .map_err(|e| unavailable("subscribing", e))?;
        // The round trip makes the server hold the subscription before
        // this returns, so frames published next reach it.
        round_trip(&self.client).await?;
        Ok(Box::new(NatsSubscription { sub, losses }))
    }

    async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.queue
            .send(Cmd::Flush(done))
            .await
            .map_err(|e| unavailable("flushing", e))?;
        wait.await.map_err(|e| unavailable("flushing", e))
    }
}

struct NatsSubscription {
    sub: async_nats::Subscriber,
    losses: watch::Receiver<u64>,
}

#[async_trait]
impl RawSubscription for NatsSubscription {
    async fn recv(&mut self) -> Option<RawEvent> {
        tokio::select! {
            // Checked first: a loss is reported before frames after it.
            biased;
            changed = self.losses.changed() => match changed {
                Ok(()) => Some(RawEvent::Lost),
                Err(_) => None,
            },
            msg = self.sub.next() => msg.map(|m| RawEvent::Frame(m.payload)),
        }
    }
}
