//! The companion task of a session: runs the requests that touch the
//! backends, in arrival order, and queues the replies. Started at the
//! session's first request, so a connection that only listens costs no
//! second task.
//!
//! Consecutive `send` requests waiting in the queue are taken together and
//! handed to the node's send pipeline as one submission; deliveries to
//! report (acks of `none`-level messages) are published together too.
//!
//! A chained send (docs/protocol.md, "Ordering chain") may be held until
//! its predecessor arrives — possibly later on this very connection — so it
//! runs in a task of its own and is answered when done, and later requests
//! are not kept waiting behind it. At most `CHAINED_IN_FLIGHT` run at once
//! per connection; beyond that the companion task waits for one to end
//! (and the session stops reading), so a connection's held sends are bounded.

use crate::app::App;
use crate::error::ServerError;
use crate::services::delivery::Notice;
use crate::services::delivery::hub::Outbound;
use crate::services::delivery::mailbox::Mailbox;
use crate::services::{SendDefaults, SendInput};
use magpie_core::{ClientSettings, ConvId, DeviceId, MessageMeta, Seq, TraceContext, UserId};
use magpie_proto::{ClientOp, ServerFrame};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

pub enum Req {
    /// A client request and its id. Boxed: a `ClientOp` is ~220 bytes and
    /// every slot of the connection's queue is as large as its largest
    /// variant, which made the queue ~16 KB per connection that ever sent
    /// (docs/performance.md, "Where the memory under 1,000 pairs goes").
    Client { rid: Option<u64>, op: Box<ClientOp> },
    /// Acknowledged deliveries that retention may act on.
    Delivered { conv: ConvId, seqs: Vec<Seq> },
    /// A delivery receipt for the peer of a direct conversation, due now
    /// (the session paces them: `receipts.rs`).
    Received { conv: ConvId, seq: Seq },
    /// The user's settings changed: read them again.
    Settings,
}

const MAX_BATCH: usize = 256;

/// Chained sends one connection has in flight at most.
const CHAINED_IN_FLIGHT: usize = 256;

/// The permits of one connection's chained sends.
pub fn chained_permits() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(CHAINED_IN_FLIGHT))
}

/// Who the requests are for.
pub struct Requester {
    pub app: App,
    pub user: UserId,
    pub conn: u64,
    pub device: DeviceId,
    pub settings: ClientSettings,
    /// The session's queue: replies wait for room there.
    pub tx: Arc<Mailbox>,
    /// Bounds the chained sends in flight (`chained_permits`).
    pub chained: Arc<tokio::sync::Semaphore>,
    /// The client's address, for the access events of refused requests.
    pub ip: IpAddr,
    pub transport: &'static str,
}

/// A request's refusal: its error frame (with the wait, when there is
/// one), and an access event for the detector (docs/edge.md: failed
/// socket requests are events; successful ones are not).
fn refused(
    app: &App,
    who: (IpAddr, UserId, &str),
    op: &str,
    rid: Option<u64>,
    e: &ServerError,
) -> ServerFrame {
    let (ip, user, transport) = who;
    app.guard
        .socket_event(ip, Some(user), transport, op, Some(e.code()));
    ServerFrame::Error {
        rid,
        code: e.code(),
        message: e.to_string(),
        fatal: false,
        retry_after_ms: e.retry_after_ms(),
    }
}

impl Requester {
    fn who(&self) -> (IpAddr, UserId, &'static str) {
        (self.ip, self.user, self.transport)
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Req>) {
        while let Some(first) = rx.recv().await {
            let mut queue = vec![first];
            while queue.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => queue.push(r),
                    Err(_) => break,
                }
            }
            if !self.serve_batch(queue).await {
                return;
            }
        }
    }

    /// Serves a batch in order: consecutive sends go to the pipeline
    /// together, deliveries are gathered into one call. False once the
    /// connection is gone.
    async fn serve_batch(&mut self, queue: Vec<Req>) -> bool {
        let mut sends: Vec<(Option<u64>, SendInput)> = Vec::new();
        let mut delivered: BTreeMap<ConvId, Vec<Seq>> = BTreeMap::new();
        let mut received: BTreeMap<ConvId, Seq> = BTreeMap::new();
        for req in queue {
            match req {
                Req::Received { conv, seq } => {
                    let top = received.entry(conv).or_default();
                    *top = (*top).max(seq);
                }
                // Deliveries reply nothing and touch only retention:
                // gathering them across other requests reorders nothing a
                // client sees.
                Req::Delivered { conv, seqs } => delivered.entry(conv).or_default().extend(seqs),
                Req::Client { rid, op } => match send_input(op) {
                    Ok(input) if input.chain.is_none() => sends.push((rid, input)),
                    Ok(input) => {
                        if !self.spawn_chained(rid, input).await {
                            return false;
                        }
                    }
                    // Keep order: pending sends go before any other request.
                    Err(op) => {
                        if !self.flush_sends(&mut sends).await || !self.reply(rid, *op).await {
                            return false;
                        }
                    }
                },
                // Keep order: pending sends go before any other request
                // (sends queued before a settings change keep the old default).
                other => {
                    if !self.flush_sends(&mut sends).await || !self.serve_one(other).await {
                        return false;
                    }
                }
            }
        }
        if !self.flush_sends(&mut sends).await {
            return false;
        }
        if !delivered.is_empty()
            && let Err(e) = self
                .app
                .messaging
                .delivered(self.user, &self.device, delivered)
                .await
        {
            // Deliveries feed retention only; a failure here loses nothing.
            tracing::warn!(error = %e, "delivery events not published");
        }
        self.send_receipts(received).await;
        true
    }

    /// Tells each conversation's peer what this device received (best
    /// effort, like every push).
    async fn send_receipts(&self, receipts: BTreeMap<ConvId, Seq>) {
        for (conv, seq) in receipts {
            if let Some(peer) = conv.peer_of(self.user) {
                let notice = Notice::Delivered {
                    conv,
                    receiver: self.user,
                    seq,
                };
                self.app.delivery.notify(peer, notice).await;
            }
        }
    }

    /// A request other than a send or a delivery; false once the
    /// connection is gone.
    async fn serve_one(&mut self, req: Req) -> bool {
        match req {
            Req::Settings => {
                let device = Some(&self.device);
                match self
                    .app
                    .store
                    .accounts()
                    .get_settings(self.user, device)
                    .await
                {
                    Ok(s) => self.settings = s,
                    Err(e) => tracing::warn!(error = %e, "settings not reloaded"),
                }
                true
            }
            Req::Client { rid, op } => self.reply(rid, *op).await,
            Req::Delivered { .. } | Req::Received { .. } => true,
        }
    }

    /// Answers a client request other than a send; false once the
    /// connection is gone.
    async fn reply(&mut self, rid: Option<u64>, op: ClientOp) -> bool {
        match self.answer(rid, op).await {
            Some(frame) => self.tx.send(Outbound::frame(&frame)).await.is_ok(),
            None => true,
        }
    }

    /// Sends what is gathered; false once the connection is gone.
    async fn flush_sends(&self, sends: &mut Vec<(Option<u64>, SendInput)>) -> bool {
        if sends.is_empty() {
            return true;
        }
        let batch = std::mem::take(sends);
        let rids: Vec<Option<u64>> = batch.iter().map(|(r, _)| *r).collect();
        let cmids: Vec<_> = batch.iter().map(|(_, s)| s.cmid).collect();
        let results = self
            .app
            .messaging
            .send_batch(
                self.user,
                Some(&self.device),
                self.settings.into(),
                batch.into_iter().map(|(_, s)| s).collect(),
            )
            .await;
        let mut frames = Vec::with_capacity(results.len());
        for ((rid, cmid), result) in rids.into_iter().zip(cmids).zip(results) {
            let frame = match result {
                Ok(a) => {
                    self.app.presence.conversation_started(&a.conv, a.seq);
                    ServerFrame::sent(rid, cmid, a)
                }
                Err(e) => refused(&self.app, self.who(), "send", rid, &e),
            };
            frames.push(bytes::Bytes::from(frame.encode()));
        }
        self.tx.send(Outbound::Frames(frames)).await.is_ok()
    }

    /// Runs one chained send in a task of its own, answered when it is
    /// done; false once the connection is gone.
    async fn spawn_chained(&self, rid: Option<u64>, input: SendInput) -> bool {
        let Ok(permit) = Arc::clone(&self.chained).acquire_owned().await else {
            return false;
        };
        let (app, user, device) = (self.app.clone(), self.user, self.device.clone());
        let (defaults, tx) = (SendDefaults::from(self.settings), Arc::clone(&self.tx));
        let (ip, transport) = (self.ip, self.transport);
        tokio::spawn(async move {
            let cmid = input.cmid;
            let result = app
                .messaging
                .send_batch(user, Some(&device), defaults, vec![input])
                .await
                .pop()
                .unwrap_or_else(|| Err(ServerError::Internal("send result missing".into())));
            let frame = match result {
                Ok(a) => ServerFrame::sent(rid, cmid, a),
                Err(e) => refused(&app, (ip, user, transport), "send", rid, &e),
            };
            // A closed connection drops the answer; the client's retry
            // (same cmid) gets the original result.
            let _ = tx.send(Outbound::frame(&frame)).await;
            drop(permit);
        });
        true
    }

    async fn answer(&self, rid: Option<u64>, op: ClientOp) -> Option<ServerFrame> {
        let (app, user, conn) = (&self.app, self.user, self.conn);
        let name = op.name();
        let result = match op {
            ClientOp::RoomJoin { room } => app
                .rooms
                .join(user, conn, &room)
                .await
                .map(|recent| ServerFrame::RoomJoined { rid, room, recent }),
            ClientOp::RoomLeave { room } => app
                .rooms
                .leave(user, conn, &room)
                .await
                .map(|()| ServerFrame::RoomLeft { rid, room }),
            ClientOp::RoomSend { room, body, to } => app
                .rooms
                .send(user, conn, &room, body, to)
                .await
                .map(|(id, shed)| ServerFrame::RoomSent {
                    rid,
                    room,
                    id,
                    shed,
                }),
            ClientOp::Read { conv, seq } => app
                .messaging
                .read(user, &self.device, &conv, seq)
                .await
                .map(|seq| ServerFrame::ReadOk { rid, conv, seq }),
            ClientOp::Sync { convs, limit } => app
                .messaging
                .sync(user, &convs, limit)
                .await
                .map(|convs| ServerFrame::SyncResult { rid, convs }),
            ClientOp::History {
                conv,
                before,
                limit,
            } => app
                .messaging
                .history(user, &conv, before, None, limit)
                .await
                .map(|p| ServerFrame::HistoryResult {
                    rid,
                    conv: p.conv,
                    messages: p.messages,
                    more: p.more,
                    peer_read_seq: p.peer_read_seq,
                }),
            ClientOp::PresenceWatch { users } => app
                .presence
                .watch(user, conn, users)
                .await
                .map(|online| ServerFrame::PresenceWatchOk { rid, online }),
            // Answered only when refused (docs/protocol.md, "Typing").
            ClientOp::Typing { conv, active } => match app.typing.typing(user, &conv, active).await
            {
                Ok(()) => return None,
                Err(e) => Err(e),
            },
            ClientOp::Chain => app
                .messaging
                .chain_next(user, &self.device)
                .await
                .map(|next| ServerFrame::ChainResult { rid, next }),
            ClientOp::Unread => app
                .messaging
                .unread(user, self.settings.unread_mode)
                .await
                .map(|(total, convs)| ServerFrame::UnreadResult { rid, total, convs }),
            op @ (ClientOp::Follow { .. }
            | ClientOp::Unfollow { .. }
            | ClientOp::Post { .. }
            | ClientOp::PostDelete { .. }
            | ClientOp::Feed { .. }
            | ClientOp::Search { .. }) => self.feed_op(rid, op).await?,
            // Handled by the session loop itself.
            ClientOp::Hello { .. }
            | ClientOp::Ping
            | ClientOp::Pong
            | ClientOp::Logout
            | ClientOp::Ack { .. }
            | ClientOp::Send { .. } => return None,
        };
        Some(result.unwrap_or_else(|e| refused(app, self.who(), name, rid, &e)))
    }
}

/// The send a client op carries, ready for the pipeline; any other op back
/// as it came.
fn send_input(op: Box<ClientOp>) -> Result<SendInput, Box<ClientOp>> {
    let ClientOp::Send {
        to,
        cmid,
        body,
        persistence,
        group,
        chain,
        traceparent,
        sample,
        reply_to,
        edit,
        recall,
        mentions,
        mention_all,
    } = *op
    else {
        return Err(op);
    };
    Ok(SendInput {
        to,
        cmid,
        body,
        persistence,
        group,
        chain,
        trace: traceparent.as_deref().and_then(TraceContext::parse),
        sample,
        refs: MessageMeta::with_mentions(
            MessageMeta::references(reply_to, edit, recall),
            mentions,
            mention_all,
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queued_request_is_small() {
        // Each slot of a connection's request queue is this large, 32
        // slots to a block (docs/performance.md).
        assert!(
            std::mem::size_of::<super::Req>() <= 64,
            "{}",
            std::mem::size_of::<super::Req>()
        );
    }
}
