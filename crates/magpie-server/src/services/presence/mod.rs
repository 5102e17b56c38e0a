//! Presence: a device's online and offline changes, fanned out by the node
//! where they happen (docs/protocol.md §5.7) to the connections watching
//! the user (`presence_watch`), and with `presence.fan_out = "contacts"`
//! (the default) to every device of the user's direct contacts as well
//! (users who share only a group get none; groups can be large). Watching
//! costs one state read per change whatever the user's number of
//! conversations; contacts cost a conversation-list read.
//!
//! Presence is ephemeral (ARCHITECTURE.md, "two bus paths"): a change is
//! queued here and pushed through Delivery, so contacts on other nodes get
//! it over the relay; nothing is written to the durable log. Invariants:
//! - a user's changes are fanned out in the order they happened here: one
//!   user always maps to the same queue, and each queue is one task;
//! - announcing never waits: a full queue drops the change and counts it
//!   (`magpie_presence_dropped_total`), so a burst of connects is never
//!   slowed by its contacts' pushes;
//! - a node shutting down still tells its devices' contacts: the queues
//!   outlive the node's shutdown signal and are drained on `close`, which
//!   the drain calls after its sessions ended and its routes were released
//!   (`start.rs`).

mod contacts;
mod flaps;

use super::delivery::{Delivery, Notice};
use crate::config::FanOut;
use crate::error::{Result, ServerError};
use crate::metrics as m;
use magpie_core::{DeviceId, UserId, now_ms};
use magpie_store::{State, Store, Watcher};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Fan-out queues (and tasks) per node: contacts' lookups of different
/// users run side by side.
const SHARDS: usize = 4;
/// Changes waiting per queue before new ones are dropped.
const QUEUE: usize = 4096;
/// Users one connection may watch at once (docs/protocol.md §5.7).
pub const MAX_WATCH: usize = 1000;
/// How long a watch lasts after the `presence_watch` that set it (a day;
/// clients re-send their set on every connection and when it changes): also
/// the most an entry outlives its connection when the node dies without
/// removing it.
const WATCH_TTL_MS: u64 = 86_400_000;

pub struct Presence {
    node: String,
    store: Store,
    state: State,
    fan_out: FanOut,
    delivery: Arc<Delivery>,
    /// What each of this node's connections watches (only those that do).
    watching: Mutex<HashMap<u64, HashSet<UserId>>>,
    /// Offline changes held back for `debounce` (`flaps.rs`).
    held: flaps::Held,
    debounce: Duration,
    queues: Vec<mpsc::Sender<magpie_core::Presence>>,
    /// The queues' receiving ends until `spawn` takes them.
    pending: Mutex<Vec<mpsc::Receiver<magpie_core::Presence>>>,
    /// Cancelled by `close`: the tasks fan out what is queued and stop.
    closed: CancellationToken,
    /// Contacts mode's peer lists (`contacts.rs`).
    peers: contacts::PeerLists,
}

impl Presence {
    pub fn new(
        node: String,
        store: Store,
        state: State,
        cfg: &crate::config::PresenceConfig,
        delivery: Arc<Delivery>,
    ) -> Presence {
        let (queues, pending) = (0..SHARDS).map(|_| mpsc::channel(QUEUE)).unzip();
        Presence {
            node,
            store,
            state,
            fan_out: cfg.fan_out,
            delivery,
            watching: Mutex::new(HashMap::new()),
            held: flaps::Held::default(),
            debounce: Duration::from_millis(cfg.debounce_ms),
            queues,
            pending: Mutex::new(pending),
            closed: CancellationToken::new(),
            peers: contacts::PeerLists::new(
                cfg.peer_cache,
                Duration::from_millis(cfg.peer_cache_ms),
            ),
        }
    }

    /// Starts the fan-out tasks; they stop after `close`.
    pub fn spawn(self: &Arc<Self>) -> Vec<(String, JoinHandle<()>)> {
        let pending = std::mem::take(&mut *self.pending.lock());
        pending
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let task = Arc::clone(self).run(rx);
                (format!("presence-{i}"), tokio::spawn(task))
            })
            .chain((!self.debounce.is_zero()).then(|| {
                (
                    "presence-held".to_string(),
                    tokio::spawn(Arc::clone(self).release()),
                )
            }))
            .collect()
    }

    /// Announces what is held, fans out what is queued, then stops the
    /// tasks; later changes are dropped.
    pub fn close(&self) {
        for p in self.held.all() {
            self.announce(p);
        }
        self.closed.cancel();
    }

    /// Announces that `device` of `user` came online or went offline here.
    /// An offline change waits `presence.debounce_ms` (not a logout: that
    /// one is meant), and a comeback here meanwhile drops both (`flaps.rs`).
    pub fn changed(&self, user: UserId, device: &DeviceId, online: bool, reason: Option<&str>) {
        let p = magpie_core::Presence {
            user,
            device: device.clone(),
            online,
            node: self.node.clone(),
            at: now_ms(),
            reason: reason.map(Into::into),
        };
        if online {
            if self.held.cancel(user, device) {
                return;
            }
        } else if !self.debounce.is_zero() && reason != Some("logout") {
            self.held
                .hold(p, tokio::time::Instant::now() + self.debounce);
            return;
        }
        self.announce(p);
    }

    /// Announces held offline changes as they come due, unless the device
    /// is connected again somewhere (it may have come back on another node).
    async fn release(self: Arc<Self>) {
        let every = (self.debounce / 4).max(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.closed.cancelled() => return,
            }
            for p in self.held.due(tokio::time::Instant::now()) {
                let back = match self.state.routes(&[p.user]).await {
                    Ok(routes) => routes
                        .get(&p.user)
                        .is_some_and(|r| r.iter().any(|r| r.device == p.device)),
                    // Unknown: announce, as without debouncing.
                    Err(_) => false,
                };
                if !back {
                    self.announce(p);
                }
            }
        }
    }

    /// Queues a change (also one the sweeper makes for a dead node's devices).
    pub fn announce(&self, p: magpie_core::Presence) {
        let shard = p.user.0.unsigned_abs() as usize % SHARDS;
        if self.queues[shard].try_send(p).is_err() {
            metrics::counter!(m::PRESENCE_DROPPED).increment(1);
        }
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<magpie_core::Presence>) {
        loop {
            let p = tokio::select! {
                p = rx.recv() => p,
                _ = self.closed.cancelled() => {
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(p) = p else { return };
            if let Err(e) = self.fan_out(&p).await {
                tracing::debug!(user = %p.user, error = %e, "presence fan-out failed");
            }
        }
    }

    /// Tells the connections watching the change's user and, in contacts
    /// mode, every direct contact (a watcher who is a contact is told once).
    async fn fan_out(&self, p: &magpie_core::Presence) -> Result<()> {
        let notice = Notice::Presence {
            user: p.user,
            device: p.device.clone(),
            online: p.online,
            reason: p.reason.clone(),
        };
        let mut told = HashSet::new();
        if self.fan_out == FanOut::Contacts {
            let peers = self.contacts(p.user).await?;
            told.extend(peers.iter().copied());
            // Every contact's routes in one lookup.
            self.delivery.notify_users(&peers, notice.clone()).await;
        }
        let watchers = self.state.presence_watchers(p.user).await?;
        let conns: Vec<(&str, (UserId, u64))> = watchers
            .iter()
            .filter(|w| w.user != p.user && !told.contains(&w.user))
            .map(|w| (w.node.as_str(), (w.user, w.conn)))
            .collect();
        if !conns.is_empty() {
            self.delivery.notify_conns(&conns, notice);
        }
        Ok(())
    }

    /// Replaces what connection `conn` of `user` watches with `users`;
    /// returns those of them with a device online now.
    pub async fn watch(&self, user: UserId, conn: u64, users: Vec<UserId>) -> Result<Vec<UserId>> {
        if users.len() > MAX_WATCH {
            return Err(ServerError::bad_field(format!(
                "users: at most {MAX_WATCH} at once"
            )));
        }
        let wanted: HashSet<UserId> = users.into_iter().collect();
        let had = self.watching.lock().get(&conn).cloned().unwrap_or_default();
        // Every wanted entry is written again, so a watch lasts
        // `WATCH_TTL_MS` from the latest `presence_watch`.
        let add: Vec<UserId> = wanted.iter().copied().collect();
        let remove: Vec<UserId> = had.difference(&wanted).copied().collect();
        let me = self.watcher(user, conn);
        self.state
            .presence_watch(&me, &add, &remove, WATCH_TTL_MS)
            .await?;
        // Recorded before anything else can fail, so `unwatch` removes
        // exactly what the state holds.
        if wanted.is_empty() {
            self.watching.lock().remove(&conn);
        } else {
            self.watching.lock().insert(conn, wanted);
        }
        if add.is_empty() {
            return Ok(Vec::new());
        }
        let routes = self.state.routes(&add).await?;
        let mut online: Vec<UserId> = add
            .into_iter()
            .filter(|u| routes.get(u).is_some_and(|r| !r.is_empty()))
            .collect();
        online.sort_by_key(|u| u.0);
        Ok(online)
    }

    /// Forgets what a closing connection watched (best effort: an entry
    /// left behind expires, and pushes to a closed connection go nowhere).
    pub async fn unwatch(&self, user: UserId, conn: u64) {
        let Some(had) = self.watching.lock().remove(&conn) else {
            return;
        };
        let remove: Vec<UserId> = had.into_iter().collect();
        let me = self.watcher(user, conn);
        if let Err(e) = self
            .state
            .presence_watch(&me, &[], &remove, WATCH_TTL_MS)
            .await
        {
            tracing::debug!(%user, conn, error = %e, "presence watches not removed");
        }
    }

    fn watcher(&self, user: UserId, conn: u64) -> Watcher {
        Watcher {
            user,
            node: self.node.clone(),
            conn,
        }
    }
}
