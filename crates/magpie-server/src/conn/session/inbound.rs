//! What the client sends: frames decoded, answered at once when the session
//! can (ping, ack), otherwise handed to the companion task (`requests.rs`)
//! without waiting.

use super::{Session, encoded};
use crate::conn::requests::{Req, Requester};
use crate::conn::transport::{Inbound, Transport};
use crate::metrics::{meters, transport_index};
use crate::services::trace::HopKind;
use magpie_core::{Seq, UserId};
use magpie_proto::{ClientFrame, ClientOp, ErrorCode, ServerFrame, decode_client};
use tokio::sync::mpsc;
use tokio::time::Instant;

impl<T: Transport> Session<T> {
    pub(super) fn on_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Closed => self.done = true,
            Inbound::TooLarge => {
                meters().bad_frames.increment(1);
                let msg = format!("frame over {} bytes", self.app.cfg.limits.max_frame_bytes);
                let f = ServerFrame::error(None, ErrorCode::FrameTooLarge, msg, true);
                self.end(ErrorCode::FrameTooLarge, f);
            }
            Inbound::Invalid(code, what) => {
                meters().bad_frames.increment(1);
                let f = ServerFrame::error(None, code, what.to_string(), true);
                self.end(code, f);
            }
            Inbound::Frame(bytes) => {
                self.last_inbound = Instant::now();
                match decode_client(&bytes) {
                    Err(e) => {
                        meters().bad_frames.increment(1);
                        let f = ServerFrame::error(e.rid, e.code, e.message, false);
                        self.feed(encoded(&f));
                    }
                    Ok(frame) => self.on_request(frame),
                }
            }
        }
    }

    /// The guard's word on a request: a ban ends the connection; a request
    /// over the user's rate is answered `rate_limited` and not done (a
    /// send is not accepted: the client sends it again, same client id,
    /// after the wait). Pings and acks are never limited: an ack refused
    /// would only bring the message back.
    fn admitted(&mut self, frame: &ClientFrame) -> bool {
        let guard = &self.app.guard;
        let verdict = guard
            .check_banned(self.ip, self.user)
            .and_then(|()| match &frame.op {
                ClientOp::Ping | ClientOp::Pong | ClientOp::Ack { .. } | ClientOp::Logout => Ok(()),
                ClientOp::Send { .. } => guard.admit_sends(self.user, 1),
                _ => guard.admit_frame(self.user),
            });
        let Err(e) = verdict else { return true };
        let code = e.code();
        guard.socket_event(
            self.ip,
            Some(self.user),
            self.transport,
            frame.op.name(),
            Some(code),
        );
        if code == ErrorCode::Banned {
            let f = ServerFrame::error(None, code, e.to_string(), true);
            self.end(code, f);
        } else {
            let f = ServerFrame::Error {
                rid: frame.rid,
                code,
                message: e.to_string(),
                fatal: false,
                retry_after_ms: e.retry_after_ms(),
            };
            self.feed(encoded(&f));
        }
        false
    }

    pub(super) fn on_request(&mut self, frame: ClientFrame) {
        if !self.admitted(&frame) {
            return;
        }
        match frame.op {
            ClientOp::Ping => self.feed(encoded(&ServerFrame::Pong { rid: frame.rid })),
            ClientOp::Pong => {}
            ClientOp::Logout => {
                self.logout = true;
                self.done = true;
            }
            ClientOp::Hello { .. } => {
                let f = ServerFrame::error(
                    frame.rid,
                    ErrorCode::BadField,
                    "already authenticated",
                    false,
                );
                self.feed(encoded(&f));
            }
            ClientOp::Ack { conv, seqs } => {
                let acked = self.inflight.ack(&conv, &seqs);
                let m = meters();
                let now = magpie_core::now_ms();
                let latency = &m.delivery_latency[transport_index(self.transport)];
                let mut hops = Vec::new();
                // The highest of the peer's messages acknowledged here: a
                // delivery receipt for a direct conversation (`receipts.rs`;
                // one's own messages echoed to this device and system
                // messages are not the peer's).
                let mut received: Option<Seq> = None;
                for push in &acked.pushes {
                    if push.msg.from != self.user && push.msg.from != UserId::SYSTEM {
                        received = received.max(Some(push.msg.seq));
                    }
                    latency.record((now - push.msg.sent_at).max(0) as f64 / 1000.0);
                    hops.extend(self.hop_of(HopKind::Delivered, &push.msg));
                }
                self.app.traces.record_all(hops);
                m.acked.increment(seqs.len() as u64);
                // Groups have no delivery receipts: their read counts say more.
                if conv.group_id().is_none()
                    && let Some(seq) = received
                {
                    let receipts = self.receipts.get_or_insert_with(Default::default);
                    if receipts.offer(&conv, seq, Instant::now()) {
                        self.queue(Req::Received {
                            conv: conv.clone(),
                            seq,
                        });
                    }
                }
                // Group messages are kept for every member (read diffusion):
                // their deliveries change nothing, so they are not published.
                if conv.group_id().is_none() && !acked.deliveries.is_empty() {
                    self.queue(Req::Delivered {
                        conv,
                        seqs: acked.deliveries,
                    });
                }
            }
            op => self.queue(Req::Client {
                rid: frame.rid,
                op: Box::new(op),
            }),
        }
    }

    /// Hands a request to the companion task (started on first use) without
    /// waiting; when its queue is full the request is parked in `pending`
    /// and reading stops until there is room.
    pub(super) fn queue(&mut self, req: Req) {
        let tx = &self
            .requests
            .get_or_insert_with(|| {
                let (tx, rx) = mpsc::channel(64);
                let requester = Requester {
                    app: self.app.clone(),
                    user: self.user,
                    conn: self.conn,
                    device: self.device.clone(),
                    settings: self.settings,
                    tx: self.mailbox.clone(),
                    chained: super::super::requests::chained_permits(),
                    ip: self.ip,
                    transport: self.transport,
                };
                (tx, tokio::spawn(requester.run(rx)))
            })
            .0;
        match tx.try_send(req) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(req)) => self.pending = Some(req),
            Err(mpsc::error::TrySendError::Closed(_)) => self.done = true,
        }
    }
}
