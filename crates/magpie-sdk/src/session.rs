//! Owns the background side of a `Client`: the supervisor task that keeps a
//! socket open (handshake, keepalive, reconnect with backoff, fresh tickets)
//! and the per-connection loop that reads frames and routes them — replies to
//! their waiters, pushes and events to the delivery task.

use crate::backoff::jitter;
use crate::client::Event;
use crate::conn::{Conn, Welcome};
use crate::connector::{Connector, establish};
use crate::delivery::{self, Inbound};
use crate::error::SdkError;
use crate::requests::{Inner, Link, lock};
use futures_util::{SinkExt, StreamExt};
use magpie_proto::{ClientFrame, ClientOp, ErrorCode, ServerFrame};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, interval_at, sleep};

/// Used when the welcome carries no heartbeat.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(25);
/// A connection that lived this long resets the reconnect backoff; shorter ones
/// (accepted, then dropped at once) keep backing off instead of hammering.
const STABLE_AFTER: Duration = Duration::from_secs(5);

/// How a connection ended.
enum Ended {
    Shutdown,
    Lost(String),
    /// A fatal `error` frame.
    Fatal(SdkError),
    /// The server asked us to reconnect after a delay.
    Moved {
        reason: String,
        after: Duration,
    },
}

/// Starts the supervisor (and through it the delivery task) on the first connection.
pub(crate) fn spawn<C: Connector>(
    inner: Arc<Inner>,
    connector: C,
    first: Conn,
    events: mpsc::Sender<Event>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
    tokio::spawn(delivery::run(inner.clone(), inbound_rx, events));
    tokio::spawn(supervise(inner, connector, first, inbound_tx, shutdown))
}

async fn supervise<C: Connector>(
    inner: Arc<Inner>,
    connector: C,
    first: Conn,
    inbound: mpsc::UnboundedSender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = inner.opts.reconnect_backoff.clone();
    let mut conn = first;
    let mut resync = inner.opts.sync_on_connect;
    loop {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        // A new connection watches nothing: repeat the application's watch
        // (its answer, without an id, is ignored; presence frames follow).
        let watching = lock(&inner.watching).clone();
        if resync && !watching.is_empty() {
            let op = ClientOp::PresenceWatch { users: watching };
            let _ = out_tx.send(ClientFrame { rid: None, op });
        }
        // Nor is it in any room: join the application's rooms again (what
        // was said between is not recovered: rooms keep no history).
        if resync {
            for room in lock(&inner.rooms).iter().cloned() {
                let _ = out_tx.send(ClientFrame {
                    rid: None,
                    op: ClientOp::RoomJoin { room },
                });
            }
        }
        inner.link.send_replace(Link::Up(out_tx));
        if resync {
            let _ = inbound.send(Inbound::Resync);
        }
        let started = Instant::now();
        let welcome = lock(&inner.welcome).clone();
        let ended = run_connection(&inner, conn, &welcome, out_rx, &inbound, &mut shutdown).await;
        // The order matters: the outgoing queue is gone (dropped above), so failing
        // the waiters now catches every request that made it into that queue.
        inner.link.send_replace(Link::Connecting);
        inner.fail_pending();
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let (reason, mut delay) = match ended {
            Ended::Shutdown => {
                return finish(&inner, &inbound, None, "closed by the client".into());
            }
            Ended::Fatal(e) if e.is_terminal() => {
                return finish(&inner, &inbound, e.code(), e.message());
            }
            Ended::Fatal(e) => (e.to_string(), backoff.next_delay()),
            Ended::Lost(reason) => (reason, backoff.next_delay()),
            Ended::Moved { reason, after } => (reason, jitter(after)),
        };
        tracing::info!(%reason, ?delay, "connection ended, reconnecting");
        let _ = inbound.send(Inbound::Event(Event::Reconnecting {
            reason,
            after: delay,
        }));
        conn = loop {
            tokio::select! {
                _ = sleep(delay) => {}
                _ = shutdown.changed() => return finish(&inner, &inbound, None, "closed by the client".into()),
            }
            match establish(&connector, inner.opts.request_timeout).await {
                Ok((c, w)) => {
                    *lock(&inner.welcome) = w;
                    break c;
                }
                Err(e) if e.is_terminal() => {
                    return finish(&inner, &inbound, e.code(), e.message());
                }
                Err(e) => {
                    delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "reconnect failed");
                }
            }
        };
        resync = true;
    }
}

fn finish(
    inner: &Inner,
    inbound: &mpsc::UnboundedSender<Inbound>,
    code: Option<ErrorCode>,
    reason: String,
) {
    inner.link.send_replace(Link::Closed);
    inner.fail_pending();
    let _ = inbound.send(Inbound::Event(Event::Closed { code, reason }));
}

/// Runs one connection until it ends: writes queued frames, keeps it alive,
/// and routes what the server sends.
async fn run_connection(
    inner: &Inner,
    conn: Conn,
    welcome: &Welcome,
    mut out_rx: mpsc::UnboundedReceiver<ClientFrame>,
    inbound: &mpsc::UnboundedSender<Inbound>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let Conn {
        mut sink,
        mut stream,
    } = conn;
    let heartbeat = match welcome.heartbeat_ms {
        0 => DEFAULT_HEARTBEAT,
        ms => Duration::from_millis(ms),
    };
    // Our pings draw pongs, so silence this long means the path is dead even if
    // TCP has not noticed (half-open connection).
    let idle = Duration::from_millis(welcome.idle_timeout_ms).max(heartbeat * 2) + heartbeat / 2;
    let mut ping = interval_at(Instant::now() + heartbeat, heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle_timer = sleep(idle);
    tokio::pin!(idle_timer);
    let frame = |op| ClientFrame { rid: None, op };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                // Flush what is queued (acks) before saying goodbye.
                while let Ok(f) = out_rx.try_recv() {
                    let _ = sink.feed(f).await;
                }
                let _ = sink.send(frame(ClientOp::Logout)).await;
                let _ = sink.close().await;
                return Ended::Shutdown;
            }
            Some(f) = out_rx.recv() => {
                if let Err(e) = sink.send(f).await {
                    return Ended::Lost(e.to_string());
                }
            }
            _ = ping.tick() => {
                if let Err(e) = sink.send(frame(ClientOp::Ping)).await {
                    return Ended::Lost(e.to_string());
                }
            }
            _ = &mut idle_timer => return Ended::Lost(format!("nothing received for {idle:?}")),
            item = stream.next() => {
                idle_timer.as_mut().reset(Instant::now() + idle);
                let f = match item {
                    None => return Ended::Lost("closed by the server".into()),
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    Some(Ok(f)) => f,
                };
                match route(inner, f, inbound) {
                    Routed::Done => {}
                    Routed::Pong => {
                        if let Err(e) = sink.send(frame(ClientOp::Pong)).await {
                            return Ended::Lost(e.to_string());
                        }
                    }
                    Routed::End(ended) => return ended,
                }
            }
        }
    }
}

enum Routed {
    Done,
    Pong,
    End(Ended),
}

fn route(inner: &Inner, frame: ServerFrame, inbound: &mpsc::UnboundedSender<Inbound>) -> Routed {
    let to_app = |inb| {
        let _ = inbound.send(inb);
        Routed::Done
    };
    match frame {
        ServerFrame::Ping => Routed::Pong,
        ServerFrame::Msg { msg, .. } => to_app(Inbound::Push(msg)),
        ServerFrame::GroupReceipt {
            conv,
            seq,
            read,
            unread,
        } => to_app(Inbound::Event(Event::GroupReceipt {
            conv,
            seq,
            read,
            unread,
        })),
        ServerFrame::Receipt { conv, reader, seq } => {
            to_app(Inbound::Event(Event::Receipt { conv, reader, seq }))
        }
        ServerFrame::Delivered {
            conv,
            receiver,
            seq,
        } => to_app(Inbound::Event(Event::Delivered {
            conv,
            receiver,
            seq,
        })),
        ServerFrame::Presence {
            user,
            device,
            online,
            reason,
        } => to_app(Inbound::Event(Event::Presence {
            user,
            device,
            online,
            reason,
        })),
        ServerFrame::Post { post } => to_app(Inbound::Event(Event::Post(post))),
        ServerFrame::RoomMsg { msg } => to_app(Inbound::Event(Event::Room(msg))),
        ServerFrame::Typing {
            conv,
            user,
            name,
            active,
            ttl_ms,
        } => to_app(Inbound::Event(Event::Typing {
            conv,
            user,
            name,
            active,
            ttl: Duration::from_millis(ttl_ms),
        })),
        ServerFrame::ReadSync { conv, seq } => {
            to_app(Inbound::Event(Event::ReadSync { conv, seq }))
        }
        ServerFrame::Resync { reason } => {
            tracing::debug!(%reason, "server asked for a resync");
            to_app(Inbound::Resync)
        }
        ServerFrame::Reconnect { reason, after_ms } => Routed::End(Ended::Moved {
            reason,
            after: Duration::from_millis(after_ms),
        }),
        ServerFrame::Error {
            rid,
            code,
            message,
            fatal,
            ..
        } => route_error(inner, rid, code, message, fatal),
        ServerFrame::Sent { rid: Some(rid), .. }
        | ServerFrame::ReadOk { rid: Some(rid), .. }
        | ServerFrame::SyncResult { rid: Some(rid), .. }
        | ServerFrame::HistoryResult { rid: Some(rid), .. }
        | ServerFrame::UnreadResult { rid: Some(rid), .. }
        | ServerFrame::PresenceWatchOk { rid: Some(rid), .. }
        | ServerFrame::ChainResult { rid: Some(rid), .. }
        | ServerFrame::FollowOk { rid: Some(rid), .. }
        | ServerFrame::UnfollowOk { rid: Some(rid), .. }
        | ServerFrame::Posted { rid: Some(rid), .. }
        | ServerFrame::PostDeleted { rid: Some(rid), .. }
        | ServerFrame::FeedResult { rid: Some(rid), .. }
        | ServerFrame::SearchResult { rid: Some(rid), .. }
        | ServerFrame::RoomJoined { rid: Some(rid), .. }
        | ServerFrame::RoomLeft { rid: Some(rid), .. }
        | ServerFrame::RoomSent { rid: Some(rid), .. }
        | ServerFrame::Pong { rid: Some(rid) } => {
            inner.resolve(rid, frame);
            Routed::Done
        }
        // Pongs to keepalive pings, a stray welcome, replies without an id.
        other => {
            tracing::trace!(?other, "frame ignored");
            Routed::Done
        }
    }
}

/// An error frame: the answer to request `rid` if it has one; a fatal one
/// ends the session.
fn route_error(
    inner: &Inner,
    rid: Option<u64>,
    code: ErrorCode,
    message: String,
    fatal: bool,
) -> Routed {
    let err = SdkError::Server {
        code,
        message: message.clone(),
        status: None,
    };
    if let Some(rid) = rid {
        inner.resolve(
            rid,
            ServerFrame::Error {
                rid: Some(rid),
                code,
                message,
                fatal,
                retry_after_ms: None,
            },
        );
    } else if !fatal {
        tracing::warn!(error = %err, "error frame without request id");
    }
    if fatal {
        Routed::End(Ended::Fatal(err))
    } else {
        Routed::Done
    }
}
