//! The session's one timer: the idle deadline, the heartbeat (which also
//! re-asserts the route) and the resends of unacknowledged pushes, whichever
//! is due first.

use super::{FAR, Session, encoded};
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
    }

    /// Re-asserts the route: the state is derived and may have been lost (a
    /// Redis restart); this bounds how long pushes miss us. Only while this
    /// connection is still the device's current one. A route that had to be
    /// re-created (or a state that was unreachable) means pushes missed us,
    /// perhaps with no later message to reveal the gap: ask the client to
    /// sync.
    pub(super) async fn on_heartbeat(&mut self) {
        match self.app.delivery.refresh_route(&self.route).await {
            Some(RouteCheck::Superseded) => {
                let text = "this device connected again elsewhere";
                let f = ServerFrame::error(None, ErrorCode::Replaced, text, true);
                self.end(ErrorCode::Replaced, f);
                return;
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
        self.feed(encoded(&ServerFrame::Ping));
    }
}
