//! The local connection table of a connection node: which sockets on this
//! process belong to which user and device, and a bounded queue into each.
//!
//! Why a std mutex: every critical section is a map lookup, an insert or a
//! `try_send` into a queue, never an await, so a blocking lock is cheaper
//! than an async one. Delivering does not clone the entry.

use super::mailbox::{Mailbox, Refused};
use bytes::Bytes;
use magpie_core::{DeviceId, Message, UserId};
use magpie_proto::{ErrorCode, ServerFrame};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// A message to push, with its `msg` frame encoded once for every
/// connection it goes to.
#[derive(Debug)]
pub struct Push {
    pub msg: Message,
    /// The first attempt's frame (`attempt: 1`); resends encode their own.
    pub frame: Bytes,
}

impl Push {
    pub fn new(msg: Message) -> Arc<Push> {
        let frame = Bytes::from(magpie_proto::encode_push(&msg, 1));
        Arc::new(Push { msg, frame })
    }
}

/// What the rest of the server sends into a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Write this encoded frame as is (encoded once, wherever it goes).
    Frame(Bytes),
    /// Several frames in order (one queue slot for a batch's replies).
    Frames(Vec<Bytes>),
    /// Push a message: the connection tracks it until the client acknowledges it.
    Push(Arc<Push>),
    /// The user's settings changed: the session reads them again.
    Settings,
}

impl Outbound {
    pub fn frame(f: &ServerFrame) -> Outbound {
        Outbound::Frame(Bytes::from(f.encode()))
    }
}

/// Asks one connection to close with a reason; usable even when its queue is full.
#[derive(Debug, Default)]
pub struct Kill {
    reason: Mutex<Option<ErrorCode>>,
    notify: Notify,
}

impl Kill {
    pub fn fire(&self, code: ErrorCode) {
        let mut r = self.reason.lock();
        if r.is_none() {
            *r = Some(code);
        }
        drop(r);
        self.notify.notify_one();
    }
    /// Resolves once `fire` was called; returns the first reason.
    pub async fn fired(&self) -> ErrorCode {
        loop {
            if let Some(code) = *self.reason.lock() {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

#[derive(Clone)]
pub struct ConnEntry {
    pub id: u64,
    /// When the connection was registered (its route's `since`), epoch ms.
    pub since: i64,
    pub user: UserId,
    pub device: DeviceId,
    pub mailbox: Arc<Mailbox>,
    pub kill: Arc<Kill>,
}

impl ConnEntry {
    /// Queues `out`. A full queue means the client is not reading: it is
    /// closed with `slow_consumer` and will resync on reconnect.
    fn offer(&self, out: Outbound) -> bool {
        match self.mailbox.try_send(out) {
            Ok(()) => true,
            Err(Refused::Full) => {
                crate::metrics::meters().slow_consumers.increment(1);
                self.kill.fire(ErrorCode::SlowConsumer);
                false
            }
            Err(Refused::Closed) => false,
        }
    }
}

#[derive(Default)]
pub struct Hub {
    by_user: Mutex<HashMap<UserId, Vec<ConnEntry>>>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a connection; an older connection of the same device is
    /// returned so the caller can close it (`replaced`).
    pub fn register(&self, entry: ConnEntry) -> Option<ConnEntry> {
        let mut map = self.by_user.lock();
        let list = map.entry(entry.user).or_default();
        let old = list
            .iter()
            .position(|c| c.device == entry.device)
            .map(|i| list.swap_remove(i));
        list.push(entry);
        old
    }

    pub fn unregister(&self, user: UserId, conn: u64) {
        let mut map = self.by_user.lock();
        if let Some(list) = map.get_mut(&user) {
            list.retain(|c| c.id != conn);
            if list.is_empty() {
                map.remove(&user);
            }
        }
    }

    /// Whether this connection is registered here.
    pub fn has(&self, user: UserId, conn: u64) -> bool {
        self.by_user
            .lock()
            .get(&user)
            .is_some_and(|l| l.iter().any(|c| c.id == conn))
    }

    /// Closes one connection with `code`; false if it is not here.
    pub fn kill(&self, user: UserId, conn: u64, code: ErrorCode) -> bool {
        let map = self.by_user.lock();
        match map.get(&user).and_then(|l| l.iter().find(|c| c.id == conn)) {
            Some(entry) => {
                entry.kill.fire(code);
                true
            }
            None => false,
        }
    }

    /// Closes every connection here with `code`; returns how many.
    pub fn kill_all(&self, code: ErrorCode) -> u64 {
        let map = self.by_user.lock();
        let mut n = 0;
        for c in map.values().flatten() {
            c.kill.fire(code);
            n += 1;
        }
        n
    }

    /// Queues `out` for one connection; false if it is not here (or full).
    pub fn deliver(&self, user: UserId, conn: u64, out: Outbound) -> bool {
        let map = self.by_user.lock();
        match map.get(&user).and_then(|l| l.iter().find(|c| c.id == conn)) {
            Some(entry) => entry.offer(out),
            None => false,
        }
    }

    /// Queues `out` for every connection of `user` here except the device
    /// `skip`; returns how many took it.
    pub fn deliver_user(&self, user: UserId, skip: Option<&DeviceId>, out: &Outbound) -> u64 {
        let map = self.by_user.lock();
        let Some(list) = map.get(&user) else { return 0 };
        list.iter()
            .filter(|c| Some(&c.device) != skip)
            .map(|c| u64::from(c.offer(out.clone())))
            .sum()
    }

    /// Queues `out` for every connection here (resync hints, shutdown).
    pub fn deliver_all(&self, out: &Outbound) -> u64 {
        let map = self.by_user.lock();
        map.values()
            .flatten()
            .map(|c| u64::from(c.offer(out.clone())))
            .sum()
    }

    /// The routes of every connection here, as `node` records them (the
    /// state's copy is restored from this after the state lost it).
    pub fn routes(&self, node: &str) -> Vec<magpie_store::Route> {
        let map = self.by_user.lock();
        map.values()
            .flatten()
            .map(|c| magpie_store::Route {
                user: c.user,
                device: c.device.clone(),
                node: node.to_string(),
                conn: c.id,
                since: c.since,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_user.lock().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
