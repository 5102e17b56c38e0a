//! Owns request/reply routing over the socket: request ids, the waiters
//! they resolve (a map under a std Mutex, never held across `.await`), and the
//! link to whichever connection is current. Shared by `Client` and the
//! background tasks.

use crate::client::ClientOptions;
use crate::conn::Welcome;
use crate::dedup::Dedup;
use crate::error::{Result, SdkError};
use magpie_core::{ConvId, Seq};
use magpie_proto::http::SyncResponse;
use magpie_proto::{ClientFrame, ClientOp, ServerFrame};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot, watch};

/// The socket the requests currently go to.
#[derive(Clone)]
pub(crate) enum Link {
    Connecting,
    Up(mpsc::UnboundedSender<ClientFrame>),
    Closed,
}

/// State shared by the `Client` handle and its background tasks.
pub(crate) struct Inner {
    pub(crate) link: watch::Sender<Link>,
    /// Waiters by request id. A std Mutex: it is only held for map operations, never across `.await`.
    pub(crate) pending: Mutex<HashMap<u64, oneshot::Sender<ServerFrame>>>,
    pub(crate) next_rid: AtomicU64,
    pub(crate) dedup: Mutex<Dedup>,
    pub(crate) welcome: Mutex<Welcome>,
    /// The users whose presence the application watches: sent again on
    /// every new connection (a watch ends with its connection).
    pub(crate) watching: Mutex<Vec<magpie_core::UserId>>,
    /// The live rooms the application joined, joined again on reconnect.
    pub(crate) rooms: Mutex<Vec<String>>,
    pub(crate) opts: ClientOptions,
}

/// Removes a waiter when its request gives up (timeout, cancellation).
struct PendingGuard<'a>(&'a Inner, u64);
impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.pending).remove(&self.1);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the session: the data is still consistent
    // because every critical section is a single map/set operation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Sends `op` with a fresh request id and waits for the reply with that id.
    pub(crate) async fn request(&self, op: ClientOp) -> Result<ServerFrame> {
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(rid, tx);
        let _guard = PendingGuard(self, rid);
        let exchange = async {
            let mut link_rx = self.link.subscribe();
            let link = link_rx
                .wait_for(|l| !matches!(l, Link::Connecting))
                .await
                .map_err(|_| SdkError::Closed)?
                .clone();
            match link {
                Link::Up(tx) => tx
                    .send(ClientFrame { rid: Some(rid), op })
                    .map_err(|_| lost())?,
                _ => return Err(SdkError::Closed),
            }
            rx.await.map_err(|_| lost())
        };
        match tokio::time::timeout(self.opts.request_timeout, exchange).await {
            Err(_) => Err(SdkError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(ServerFrame::Error { code, message, .. })) => Err(SdkError::Server {
                code,
                message,
                status: None,
            }),
            Ok(Ok(frame)) => Ok(frame),
        }
    }

    /// Sends a frame that has no reply (ack); dropped when not connected,
    /// which is safe because the server resends or a resync covers it.
    pub(crate) fn send_oneway(&self, op: ClientOp) {
        if let Link::Up(tx) = &*self.link.borrow() {
            let _ = tx.send(ClientFrame { rid: None, op });
        }
    }

    /// Hands a reply to its waiter; replies nobody waits for (timed out) are dropped.
    pub(crate) fn resolve(&self, rid: u64, frame: ServerFrame) {
        if let Some(tx) = lock(&self.pending).remove(&rid) {
            let _ = tx.send(frame);
        }
    }

    /// Fails every in-flight request: their connection is gone.
    pub(crate) fn fail_pending(&self) {
        lock(&self.pending).clear();
    }
}

fn lost() -> SdkError {
    SdkError::Transport("connection lost before the reply".into())
}

pub(crate) fn unexpected(frame: ServerFrame) -> SdkError {
    SdkError::Protocol(format!("unexpected reply: {frame:?}"))
}

impl Inner {
    pub(crate) async fn sync(
        &self,
        convs: BTreeMap<ConvId, Seq>,
        limit: Option<usize>,
    ) -> Result<SyncResponse> {
        match self.request(ClientOp::Sync { convs, limit }).await? {
            ServerFrame::SyncResult { convs, .. } => Ok(SyncResponse { convs }),
            other => Err(unexpected(other)),
        }
    }
}
