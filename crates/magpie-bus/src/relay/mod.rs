//! The ephemeral relay: best-effort pub/sub for what may be lost (delivery
//! events for one node, broadcasts to every node, presence, rooms), beside
//! the durable `Bus` for what must not be (ARCHITECTURE.md, `magpie-bus`).
//!
//! The relay's one promise is that **a loss is reported**, not silent (one
//! narrow exception below): a subscription yields [`RelayEvent::Gap`]
//! whenever frames meant for it may have been lost, and the subscriber
//! recovers through sync (the server asks its clients to resync). Gaps are detected in this handle, the same
//! on every backend: each publisher numbers its frames per subject
//! (`publisher.rs`), heartbeats subjects it used recently so a lost last
//! frame shows within about a heartbeat, and each subscription checks the
//! numbering (`track.rs`). Backends add what only they can see: a lagging
//! in-process subscriber, a NATS reconnect or slow consumer (`Gap` with
//! `from: None`). Heartbeats and headers never reach subscribers otherwise.
//!
//! Backends, by URL ([`Relay::open`]):
//! - `mem://[NAME]`: in-process channels; relays opened with the same NAME
//!   in one process share subjects (one node, or several in one test).
//! - `nats://HOST:PORT` (feature `nats`): NATS core subjects, no storage.
//!
//! **Fault injection (tests only):** `?drop=RATIO` on either URL, or
//! [`RelayOptions::drop`], or [`Relay::set_drop`] at run time, makes
//! `publish` throw away that share of frames, heartbeats included, as a
//! lossy link would (the publisher does not know, unlike a refused send).
//! A dropped data frame is still reported: by the next frame's sequence or
//! heartbeat, or, when every heartbeat after it is dropped too, by the
//! missing heartbeat itself.
//!
//! The one loss left unseen, by the knob or a real link: frames a publisher
//! sends on a subject whose numbering had closed (idle for `linger`), when
//! they and every heartbeat for `linger` after them are lost in transit
//! although the publisher's sends succeeded. Sends that fail (connection
//! down) keep the numbering open until a heartbeat gets out, which then
//! shows the loss (`publisher.rs`).

mod frame;
mod inproc;
#[cfg(feature = "nats")]
mod nats;
mod options;
mod publisher;
mod subscription;
mod track;

pub use inproc::MemRelay;
#[cfg(feature = "nats")]
pub use nats::NatsRelay;
pub use options::RelayOptions;
pub use subscription::{RelayStats, RelaySubscription};

use crate::{BusError, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use subscription::Counters;

/// What a relay subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// A payload, in the order its publisher published it.
    Message { from: Arc<str>, payload: Bytes },
    /// Frames meant for this subscription may have been lost: from that
    /// publisher, or from anyone (`None`, e.g. after a reconnect).
    Gap { from: Option<Arc<str>> },
}

/// What a backend's subscription yields: raw frames, and its own losses.
#[derive(Debug)]
pub enum RawEvent {
    Frame(Bytes),
    Lost,
}

/// A transport for frames. Best effort; it reports the losses only it can
/// see as [`RawEvent::Lost`].
#[async_trait]
pub trait RelayBackend: Send + Sync + 'static {
    /// Hands a frame over without waiting for anyone; an error means it
    /// was not sent (a loss the numbering reveals to subscribers).
    fn send(&self, subject: &str, frame: Bytes) -> Result<()>;
    /// Subscribes to `subject`; frames sent after this returns reach it.
    async fn subscribe(&self, subject: &str) -> Result<Box<dyn RawSubscription>>;
    /// Returns once every frame sent before the call left this process.
    async fn flush(&self) -> Result<()>;
}

#[async_trait]
pub trait RawSubscription: Send + 'static {
    /// The next frame or loss; `None` when the backend is gone. Must be
    /// cancel-safe (it is raced against heartbeat deadlines).
    async fn recv(&mut self) -> Option<RawEvent>;
}

/// Cheap, cloneable handle to a relay: one publisher identity, any number
/// of subscriptions. Dropping the last clone closes it gracefully (final
/// heartbeats, so subscribers see no gap).
#[derive(Clone)]
pub struct Relay(Arc<Inner>);

struct Inner {
    backend: Box<dyn RelayBackend>,
    publisher: publisher::Publisher,
    /// The fault knob, as `f64` bits.
    drop: AtomicU64,
    skew: std::time::Duration,
    counters: Arc<Counters>,
    /// Held from numbering a frame until the backend has it, so frames of
    /// one subject leave in number order even when several threads publish
    /// through one handle (else a subscriber would see a loss that did not
    /// happen). Backends' `send` never waits, so this is held briefly.
    order: parking_lot::Mutex<()>,
}

impl Relay {
    /// Opens the relay a URL names (see the module docs), publishing under
    /// a random id.
    pub async fn open(url: &str) -> Result<Relay> {
        Relay::open_with(url, RelayOptions::default()).await
    }

    /// Like [`open`](Self::open) with `opts`, which the URL's query overrides.
    pub async fn open_with(url: &str, mut opts: RelayOptions) -> Result<Relay> {
        let base = opts.apply_query(url)?;
        if let Some(name) = base.strip_prefix("mem://") {
            return Relay::new(MemRelay::open(name, opts.capacity), opts);
        }
        #[cfg(feature = "nats")]
        if base.starts_with("nats://") {
            let backend = NatsRelay::connect(&base, &opts).await?;
            return Relay::new(backend, opts);
        }
        Err(BusError::Config(format!(
            "unknown relay url {base:?}: expected mem://[NAME] or nats://HOST:PORT"
        )))
    }

    /// A relay over `backend`; starts the heartbeat task, so it panics
    /// outside a Tokio runtime.
    pub fn new(backend: impl RelayBackend, opts: RelayOptions) -> Result<Relay> {
        opts.check()?;
        let id: Arc<str> = match &opts.publisher {
            Some(id) => Arc::from(id.as_str()),
            None => Arc::from(format!("r{:016x}", rand::random::<u64>())),
        };
        let inner = Arc::new(Inner {
            backend: Box::new(backend),
            publisher: publisher::Publisher::new(id, opts.heartbeat, opts.linger),
            drop: AtomicU64::new(opts.drop.to_bits()),
            skew: opts.skew,
            counters: Arc::default(),
            order: parking_lot::Mutex::new(()),
        });
        tokio::spawn(heartbeats(Arc::downgrade(&inner), opts.heartbeat));
        Ok(Relay(inner))
    }

    /// The id subscribers see in `from` for this relay's messages.
    pub fn id(&self) -> &str {
        self.0.publisher.id()
    }

    /// Publishes best effort, without waiting for any subscriber. An error
    /// (a broken connection, a full send queue) is a loss like any other:
    /// subscribers get a `Gap` for it.
    pub fn publish(&self, subject: &str, payload: Bytes) -> Result<()> {
        options::check_subject(subject)?;
        let order = self.0.order.lock();
        let frame = self.0.publisher.data(subject, payload);
        let sent = self.0.send(subject, frame);
        drop(order);
        self.0.counters.published.fetch_add(1, Ordering::Relaxed);
        if sent.is_err() {
            self.0.publisher.sent(subject, false);
        }
        sent
    }

    /// Subscribes to `subject`; nothing published before is delivered, and
    /// its absence is no gap.
    pub async fn subscribe(&self, subject: &str) -> Result<RelaySubscription> {
        options::check_subject(subject)?;
        let since = frame::wall_ns();
        let raw = self.0.backend.subscribe(subject).await?;
        let tracker = track::Tracker::new(since, self.0.skew);
        Ok(RelaySubscription::new(
            raw,
            tracker,
            self.0.counters.clone(),
        ))
    }

    /// Returns once everything published so far left this process.
    pub async fn flush(&self) -> Result<()> {
        self.0.backend.flush().await
    }

    /// Closes every subject's numbering (final heartbeats) and flushes, so
    /// subscribers see no gap; the handle stays usable.
    pub async fn close(&self) -> Result<()> {
        self.0.close_all();
        self.flush().await
    }

    /// FAULT INJECTION, for tests only: from now on drop this share of
    /// frames (0 to 1; see the module docs).
    pub fn set_drop(&self, ratio: f64) {
        self.0
            .drop
            .store(ratio.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// Counters of this relay and its subscriptions.
    pub fn stats(&self) -> RelayStats {
        self.0.counters.snapshot()
    }
}

impl Inner {
    /// Sends one frame unless the fault knob drops it.
    fn send(&self, subject: &str, frame: Bytes) -> Result<()> {
        let ratio = f64::from_bits(self.drop.load(Ordering::Relaxed));
        if ratio > 0.0 && rand::random::<f64>() < ratio {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let sent = self.backend.send(subject, frame);
        if sent.is_err() {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    fn close_all(&self) {
        let _order = self.order.lock();
        for (subject, hb) in self.publisher.close_all() {
            // A close that cannot be sent leaves subscribers a gap: fine.
            let _ = self.send(&subject, hb);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// Sends each tick's heartbeats until the relay is dropped. Holds the relay
/// only while sending, so dropping the last handle ends the task.
async fn heartbeats(relay: std::sync::Weak<Inner>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = tick.tick().await;
        let Some(relay) = relay.upgrade() else {
            return;
        };
        // Numbered and sent under the order lock, like data frames: a
        // heartbeat never overtakes the frame it counts.
        let _order = relay.order.lock();
        for (subject, hb) in relay.publisher.heartbeats(now) {
            let ok = relay.send(&subject, hb).is_ok();
            relay.publisher.sent(&subject, ok);
        }
    }
}
