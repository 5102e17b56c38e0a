//! The local connection table of a connection node: which sockets on this
//! process belong to which user and device, and a bounded queue into each.
//!
//! Why a std mutex: every critical section is a map lookup or insert, never
//! an await, so a blocking lock is cheaper than an async one.

use magpie_core::{DeviceId, Message, UserId};
use magpie_proto::{ErrorCode, ServerFrame};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, mpsc};

/// What the rest of the server sends into a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Write this frame as is.
    Frame(ServerFrame),
    /// Push a message: the connection tracks it until the client acknowledges it.
    Push(Arc<Message>),
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
    pub user: UserId,
    pub device: DeviceId,
    pub tx: mpsc::Sender<Outbound>,
    pub kill: Arc<Kill>,
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

    /// Every connection of `user` on this node.
    pub fn user_conns(&self, user: UserId) -> Vec<ConnEntry> {
        self.by_user.lock().get(&user).cloned().unwrap_or_default()
    }

    pub fn get(&self, user: UserId, conn: u64) -> Option<ConnEntry> {
        self.by_user
            .lock()
            .get(&user)
            .and_then(|l| l.iter().find(|c| c.id == conn).cloned())
    }

    /// Queues `out` for one connection. A full queue means the client is not
    /// reading: it is closed with `slow_consumer` and will resync on reconnect.
    pub fn deliver(&self, user: UserId, conn: u64, out: Outbound) -> bool {
        let Some(entry) = self.get(user, conn) else {
            return false;
        };
        match entry.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(crate::metrics::SLOW_CONSUMERS).increment(1);
                entry.kill.fire(ErrorCode::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Every connection (for shutdown).
    pub fn all(&self) -> Vec<ConnEntry> {
        self.by_user.lock().values().flatten().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_user.lock().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
