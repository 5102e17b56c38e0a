//! What the server sends into the connection: frames written as they are,
//! pushes tracked in the unacknowledged window (`inflight.rs`) until acked.

use super::Session;
use crate::conn::requests::Req;
use crate::conn::transport::Transport;
use crate::metrics::{meters, transport_index};
use crate::services::delivery::hub::{Outbound, Push};
use crate::services::trace::{Hop, HopKind, trace_hex};
use magpie_core::Message;
use magpie_proto::{ErrorCode, ServerFrame};
use std::sync::Arc;
use tokio::time::Instant;

impl<T: Transport> Session<T> {
    pub(super) fn on_outbound(&mut self, out: Outbound) {
        match out {
            Outbound::Frame(bytes) => self.feed(bytes),
            Outbound::Frames(frames) => {
                for f in frames {
                    self.feed(f);
                }
            }
            Outbound::Push(push) => self.on_push(push),
            Outbound::Settings => self.queue(Req::Settings),
        }
    }

    pub(super) fn on_push(&mut self, push: Arc<Push>) {
        let full = self.inflight.track(push.clone(), Instant::now()).is_err();
        if full && self.pending.is_some() {
            // We stopped reading (our own request queue is full), so the
            // client's acks sit unread: not its fault. Skip the push; a
            // resync hint follows once we read again.
            self.skipped_pushes = true;
        } else if full {
            meters().slow_consumers.increment(1);
            let text = "too many unacknowledged messages: reconnect and sync";
            let f = ServerFrame::error(None, ErrorCode::SlowConsumer, text, true);
            self.end(ErrorCode::SlowConsumer, f);
        } else {
            self.app
                .presence
                .conversation_started(&push.msg.conv, push.msg.seq);
            self.feed(push.frame.clone());
            let late = (magpie_core::now_ms() - push.msg.sent_at).max(0) as f64 / 1000.0;
            meters().delivery_written[transport_index(self.transport)].record(late);
            self.hop(HopKind::Pushed, &push.msg);
            if tracing::enabled!(tracing::Level::DEBUG) {
                let msg = &push.msg;
                tracing::debug!(
                    trace_id = %trace_hex(msg),
                    server_id = msg.server_id.0,
                    user = self.user.0,
                    device = %self.device,
                    transport = self.transport,
                    node = %self.app.cfg.node,
                    roles = %self.app.cfg.cluster.roles.join(","),
                    "message pushed"
                );
            }
        }
    }

    /// Records a hop of `msg` at this device (`services/trace`).
    pub(super) fn hop(&self, kind: HopKind, msg: &Message) {
        if let Some(hop) = self.hop_of(kind, msg) {
            self.app.traces.record(hop);
        }
    }

    /// A hop of `msg` at this device, if traces go anywhere.
    pub(super) fn hop_of(&self, kind: HopKind, msg: &Message) -> Option<Hop> {
        self.app.traces.enabled().then(|| {
            Hop::of(kind, msg)
                .user(self.user)
                .device(Some(&self.device_key))
                .transport(self.transport)
        })
    }
}
