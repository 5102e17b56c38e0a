//! Coalescing per (user, conversation): the first message for a pair opens
//! a window of `push.coalesce_ms`; every message for the pair within it
//! joins the same call, which goes to the sender when the window closes
//! with the count and the latest message (docs/protocol.md, "Offline push
//! webhook").
//!
//! Invariants: every window has the same length, so windows close in the
//! order they opened (a queue, not a timer per pair); at most `push.queue`
//! windows are open at once, a message for a new pair beyond it is dropped
//! and counted. Open windows live in memory only: lost with the process.

use super::payload::{Call, Last};
use super::sender::{Sender, outcome};
use magpie_core::{ConvId, DeviceId, UserId};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One message for one recipient, ready to coalesce.
pub struct Item {
    pub user: UserId,
    pub conv: ConvId,
    pub devices: Vec<DeviceId>,
    pub others: bool,
    pub last: Last,
    pub mentioned: bool,
}

struct Open {
    call: Call,
}

#[derive(Default)]
struct Windows {
    open: HashMap<(UserId, ConvId), Open>,
    /// When each open window closes, in opening order.
    closing: VecDeque<(Instant, (UserId, ConvId))>,
}

#[derive(Clone)]
pub struct Coalescer {
    windows: Arc<Mutex<Windows>>,
    wake: Arc<Notify>,
    window: Duration,
    cap: usize,
}

impl Coalescer {
    /// Starts the task that closes windows and hands their calls to `sender`.
    pub fn start(
        window: Duration,
        cap: usize,
        sender: Sender,
        shutdown: CancellationToken,
    ) -> Coalescer {
        let c = Coalescer {
            windows: Arc::default(),
            wake: Arc::new(Notify::new()),
            window,
            cap: cap.max(1),
        };
        tokio::spawn(c.clone().close_windows(sender, shutdown));
        c
    }

    /// Adds one message: joins its pair's open window, or opens one.
    pub fn add(&self, item: Item) {
        let key = (item.user, item.conv.clone());
        let mut w = self.windows.lock();
        if let Some(open) = w.open.get_mut(&key) {
            let call = &mut open.call;
            call.count = call.count.saturating_add(1);
            call.mentioned |= item.mentioned;
            // The newest settings and message win (a conversation's events
            // arrive in sequence order, a redelivery may repeat one).
            call.devices = item.devices;
            call.others = item.others;
            if item.last.seq >= call.last.seq {
                call.last = item.last;
            }
            return;
        }
        if w.open.len() >= self.cap {
            drop(w);
            outcome("dropped");
            return;
        }
        let call = Call {
            id: String::new(),
            user: item.user,
            devices: item.devices,
            others: item.others,
            conv: item.conv,
            count: 1,
            last: item.last,
            mentioned: item.mentioned,
        };
        let first = w.closing.is_empty();
        w.closing
            .push_back((Instant::now() + self.window, key.clone()));
        w.open.insert(key, Open { call });
        drop(w);
        if first {
            self.wake.notify_one();
        }
    }

    async fn close_windows(self, sender: Sender, shutdown: CancellationToken) {
        loop {
            let next = self.windows.lock().closing.front().map(|(at, _)| *at);
            let wait = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => self.wake.notified().await,
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = shutdown.cancelled() => return,
            }
            for call in self.due(Instant::now()) {
                sender.enqueue(call);
            }
        }
    }

    /// Takes the calls of the windows closed by `now`.
    fn due(&self, now: Instant) -> Vec<Call> {
        let mut w = self.windows.lock();
        let mut out = Vec::new();
        while w.closing.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, key)) = w.closing.pop_front() else {
                break;
            };
            if let Some(Open { mut call }) = w.open.remove(&key) {
                // The same messages give the same id, so a call repeated
                // after a redelivery is recognised by the relay.
                call.id = format!("{}:{}:{}", call.user, call.conv, call.last.seq);
                out.push(call);
            }
        }
        out
    }
}
