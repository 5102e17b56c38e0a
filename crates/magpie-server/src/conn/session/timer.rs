//! The session's one timer: the idle deadline, the heartbeat (a `ping`,
//! and a retry of the route only if recording it failed) and the resends
//! of unacknowledged pushes and the delivery receipts held back
//! (`conn/receipts.rs`), whichever is due first.

use super::{FAR, Session, encoded};
use crate::conn::requests::Req;
use crate::conn::transport::Transport;
use crate::metrics::meters;
use crate::services::delivery::RouteCheck;
use bytes::Bytes;
use magpie_proto::{ErrorCode, ServerFrame};
use tokio::time::Instant;

impl<T: Transport> Session<T> {
    pub(super) fn next_wake(&self) -> Instant {
        let idle_at = self.last_inbound + self.idle;
        let mut at = idle_at.min(self.heartbeat_at);
        if let Some(due) = self.inflight.next_due() {
            at = at.min(due);
        }
        if let Some(due) = self.receipts.as_ref().and_then(|r| r.due()) {
            at = at.min(due);
        }
        at.min(Instant::now() + FAR)
    }

    pub(super) async fn on_timer(&mut self) {
        let now = Instant::now();
        if now >= self.last_inbound + self.idle {
            let text = "nothing received within the idle timeout";
            let f = ServerFrame::error(None, ErrorCode::IdleTimeout, text, true);
            self.end(ErrorCode::IdleTimeout, f);
            return;
        }
        if now >= self.heartbeat_at {
            self.heartbeat_at = now + self.heartbeat;
            self.on_heartbeat().await;
        }
        if self.inflight.next_due().is_some_and(|d| d <= now) {
            for (push, attempt) in self.inflight.due(now) {
                meters().resent.increment(1);
                let frame = magpie_proto::encode_push(&push.msg, attempt);
                self.feed(Bytes::from(frame));
            }
        }
        let held = match self.receipts.as_mut() {
            Some(r) if r.due().is_some_and(|d| d <= now) => r.take_due(now),
            _ => Vec::new(),
        };
        for (conv, seq) in held {
            self.queue(Req::Received { conv, seq });
        }
    }

    /// Pings the client. The route is the node's to keep (its registry
    /// heartbeat and route audit, `services/delivery/audit.rs`): a heartbeat
    /// writes nothing to the state, except to retry a route that could not
    /// be recorded (`route_doubt`). A route that had to be re-created (or a
    /// state that was unreachable) means pushes missed us, perhaps with no
    /// later message to reveal the gap: ask the client to sync.
    pub(super) async fn on_heartbeat(&mut self) {
        if self.route_doubt {
            self.retry_route().await;
        }
        if !self.done {
            self.feed(encoded(&ServerFrame::Ping));
        }
    }

    async fn retry_route(&mut self) {
        match self.app.delivery.refresh_route(&self.route).await {
            Some(RouteCheck::Superseded) => {
                let text = "this device connected again elsewhere";
                let f = ServerFrame::error(None, ErrorCode::Replaced, text, true);
                self.end(ErrorCode::Replaced, f);
            }
            Some(RouteCheck::Held { lost }) => {
                if lost || self.route_doubt {
                    meters().resync_hints.increment(1);
                    let f = ServerFrame::Resync {
                        reason: "route_restored".into(),
                    };
                    self.feed(encoded(&f));
                }
                self.route_doubt = false;
            }
            Some(RouteCheck::Unknown) => self.route_doubt = true,
            None => {}
        }
    }
}
