//! The companion task of a session: runs the requests that touch the
//! backends, in arrival order, and queues the replies.
//!
//! Consecutive `send` requests waiting in the queue are taken together and
//! accepted as one batch (one store transaction, one bus append); the acks
//! among them are published together too (a client acks every message, so
//! one bus round trip per ack would queue its other requests behind them).

use super::hub::Outbound;
use crate::app::App;
use crate::error::ServerError;
use crate::logic::SendInput;
use magpie_core::{ConvId, DeviceId, Seq, UserId};
use magpie_proto::{ClientOp, ServerFrame};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

pub struct Req {
    pub rid: Option<u64>,
    pub op: ClientOp,
}

const MAX_BATCH: usize = 256;

fn error_frame(rid: Option<u64>, e: &ServerError) -> ServerFrame {
    ServerFrame::error(rid, e.code(), e.to_string(), false)
}

pub async fn run_requests(
    app: App,
    user: UserId,
    conn: u64,
    device: DeviceId,
    mut rx: mpsc::Receiver<Req>,
    tx: mpsc::Sender<Outbound>,
) {
    while let Some(first) = rx.recv().await {
        let mut queue = vec![first];
        while queue.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => queue.push(r),
                Err(_) => break,
            }
        }
        let mut sends: Vec<(Option<u64>, SendInput)> = Vec::new();
        let mut acks: BTreeMap<ConvId, Vec<Seq>> = BTreeMap::new();
        for req in queue {
            match req.op {
                // Acks reply nothing and touch only retention: gathering them
                // across the other requests reorders nothing a client sees.
                // Group messages are kept for every member (read diffusion):
                // their deliveries change nothing, so they are not published.
                ClientOp::Ack { conv, .. } if conv.group_id().is_some() => {}
                ClientOp::Ack { conv, seqs } => acks.entry(conv).or_default().extend(seqs),
                ClientOp::Send {
                    to,
                    cmid,
                    body,
                    persistence,
                    group,
                } => {
                    sends.push((
                        req.rid,
                        SendInput {
                            to,
                            cmid,
                            body,
                            persistence,
                            group,
                        },
                    ));
                }
                op => {
                    // Keep order: flush pending sends before any other request.
                    flush_sends(&app, user, &device, &mut sends, &tx).await;
                    let reply = handle(&app, (user, conn), &device, req.rid, op).await;
                    if let Some(frame) = reply
                        && tx.send(Outbound::Frame(frame)).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        flush_sends(&app, user, &device, &mut sends, &tx).await;
        if !acks.is_empty()
            && let Err(e) = app.delivered(user, &device, acks).await
        {
            // Deliveries feed retention only; a failure here loses nothing.
            tracing::warn!(error = %e, "delivery events not published");
        }
    }
}

async fn flush_sends(
    app: &App,
    user: UserId,
    device: &DeviceId,
    sends: &mut Vec<(Option<u64>, SendInput)>,
    tx: &mpsc::Sender<Outbound>,
) {
    if sends.is_empty() {
        return;
    }
    let batch = std::mem::take(sends);
    let rids: Vec<Option<u64>> = batch.iter().map(|(r, _)| *r).collect();
    let cmids: Vec<_> = batch.iter().map(|(_, s)| s.cmid).collect();
    let results = app
        .send_batch(
            user,
            Some(device),
            batch.into_iter().map(|(_, s)| s).collect(),
        )
        .await;
    for ((rid, cmid), result) in rids.into_iter().zip(cmids).zip(results) {
        let frame = match result {
            Ok(a) => ServerFrame::Sent {
                rid,
                cmid,
                server_id: a.server_id,
                conv: a.conv,
                seq: a.seq,
                sent_at: a.sent_at,
                duplicate: a.duplicate,
            },
            Err(e) => error_frame(rid, &e),
        };
        if tx.send(Outbound::Frame(frame)).await.is_err() {
            return;
        }
    }
}

async fn handle(
    app: &App,
    (user, conn): (UserId, u64),
    device: &DeviceId,
    rid: Option<u64>,
    op: ClientOp,
) -> Option<ServerFrame> {
    let result = match op {
        ClientOp::RoomJoin { room } => app
            .room_join(user, conn, &room)
            .map(|recent| ServerFrame::RoomJoined { rid, room, recent }),
        ClientOp::RoomLeave { room } => app
            .room_leave(user, conn, &room)
            .map(|()| ServerFrame::RoomLeft { rid, room }),
        ClientOp::RoomSend { room, body, to } => app
            .room_send(user, conn, &room, body, to)
            .await
            .map(|(id, shed)| ServerFrame::RoomSent {
                rid,
                room,
                id,
                shed,
            }),
        ClientOp::Read { conv, seq } => app
            .read(user, &conv, seq)
            .await
            .map(|seq| ServerFrame::ReadOk { rid, conv, seq }),
        ClientOp::Sync { convs, limit } => app
            .sync(user, &convs, limit)
            .await
            .map(|convs| ServerFrame::SyncResult { rid, convs }),
        ClientOp::History {
            conv,
            before,
            limit,
        } => app
            .history(user, &conv, before, None, limit)
            .await
            .map(|p| ServerFrame::HistoryResult {
                rid,
                conv: p.conv,
                messages: p.messages,
                more: p.more,
            }),
        ClientOp::Unread => match app.store.get_settings(user, Some(device)).await {
            Ok(s) => app
                .unread(user, s.unread_mode)
                .await
                .map(|(total, convs)| ServerFrame::UnreadResult { rid, total, convs }),
            Err(e) => Err(e.into()),
        },
        // Handled by the session loop itself.
        ClientOp::Hello { .. }
        | ClientOp::Ping
        | ClientOp::Pong
        | ClientOp::Logout
        | ClientOp::Ack { .. }
        | ClientOp::Send { .. } => return None,
    };
    Some(result.unwrap_or_else(|e| error_frame(rid, &e)))
}
