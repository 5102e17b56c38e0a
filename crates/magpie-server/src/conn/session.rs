//! One client connection from `hello` to close, written once for both
//! transports.
//!
//! The loop races, in one `select!`: a kill (slow consumer, replaced), the
//! node's shutdown, the next inbound frame, outbound frames and pushes, the
//! idle deadline, the heartbeat and the resend timer. Requests that touch the
//! backends run in a companion task (`requests.rs`) so a slow store never
//! stops this loop from answering pings and taking acks.

use super::handshake::{Handshake, handshake};
use super::hub::{ConnEntry, Kill, Outbound};
use super::inflight::Inflight;
use super::requests::{Req, run_requests};
use super::transport::{FrameReader, FrameWriter, Inbound};
use crate::app::App;
use crate::metrics as m;
use magpie_proto::{ClientOp, ErrorCode, ServerFrame, decode_client};
use magpie_store::Route;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

/// Why the session ended, as reported in the offline presence event.
fn reason(code: Option<ErrorCode>) -> &'static str {
    match code {
        None => "closed",
        Some(ErrorCode::IdleTimeout) => "idle",
        Some(ErrorCode::ShuttingDown) => "shutdown",
        Some(ErrorCode::Replaced) => "replaced",
        Some(ErrorCode::SlowConsumer) => "slow_consumer",
        Some(_) => "error",
    }
}

/// Hands a request to the request task without waiting; when its queue is
/// full the request is parked in `pending` (the loop then stops reading).
/// Returns false when the request task is gone.
fn queue(tx: &mpsc::Sender<Req>, pending: &mut Option<Req>, req: Req) -> bool {
    match tx.try_send(req) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(req)) => {
            *pending = Some(req);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

pub async fn run<R: FrameReader, W: FrameWriter>(
    app: App,
    transport: &'static str,
    mut rd: R,
    mut wr: W,
) {
    let Some(Handshake {
        user,
        device,
        settings,
    }) = handshake(&app, &mut rd, &mut wr).await
    else {
        return;
    };
    let cfg = &app.cfg.session;
    let (tx, mut rx) = mpsc::channel::<Outbound>(cfg.outbound_queue);
    let kill = Arc::new(Kill::default());
    let conn = app.hub.next_conn_id();
    let entry = ConnEntry {
        id: conn,
        user,
        device: device.clone(),
        tx: tx.clone(),
        kill: kill.clone(),
    };
    if let Some(old) = app.hub.register(entry) {
        old.kill.fire(ErrorCode::Replaced);
    }
    if app.group_index.open(user) {
        match app.store.user_groups(user).await {
            Ok(groups) => app.group_index.add_groups(user, groups),
            Err(e) => {
                tracing::warn!(error = %e, %user, "groups not indexed; super-group pushes will wait for sync")
            }
        }
    }
    let route = Route {
        user,
        device: device.clone(),
        node: app.cfg.node.clone(),
        conn,
        since: magpie_core::now_ms(),
    };
    // Whether pushes may have missed this connection since the last
    // refresh: the route was not recorded, or the state was unreachable.
    let mut route_doubt = false;
    if let Err(e) = app.state.add_route(&route).await {
        tracing::warn!(error = %e, %user, "route not recorded; pushes will wait for sync");
        route_doubt = true;
    }
    let _ = app.presence(user, &device, true, None).await;
    metrics::gauge!(m::CONNECTIONS, "transport" => transport).increment(1.0);

    let welcome = ServerFrame::Welcome {
        user,
        device: device.clone(),
        node: app.cfg.node.clone(),
        heartbeat_ms: cfg.heartbeat_ms,
        idle_timeout_ms: cfg.idle_timeout_ms,
        max_frame: app.cfg.limits.max_frame_bytes,
        window: cfg.window,
    };
    let (req_tx, req_rx) = mpsc::channel::<Req>(64);
    let requests = tokio::spawn(run_requests(
        app.clone(),
        user,
        conn,
        device.clone(),
        req_rx,
        tx.clone(),
    ));
    drop(tx);

    let mut inflight = Inflight::new(cfg.window, settings.resend.policy());
    let idle = Duration::from_millis(cfg.idle_timeout_ms);
    let mut idle_deadline = Instant::now() + idle;
    let mut heartbeat = interval(Duration::from_millis(cfg.heartbeat_ms.max(10)));
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    heartbeat.reset();
    let mut resend = interval(Duration::from_millis(200));
    resend.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let mut ended: Option<ErrorCode> = None;
    let mut logout = false;
    let mut pending: Option<Req> = None;
    // Pushes dropped while we were not reading: the client gets a resync hint.
    let mut skipped_pushes = false;
    let mut ok = wr.send(welcome.encode()).await.is_ok();
    while ok {
        tokio::select! {
            code = kill.fired() => {
                ended = Some(code);
                let _ = wr.send(ServerFrame::error(None, code, code.as_str(), true).encode()).await;
                break;
            }
            _ = app.shutdown.cancelled() => {
                ended = Some(ErrorCode::ShuttingDown);
                let frame = ServerFrame::Reconnect { reason: "shutting_down".into(), after_ms: 500 };
                let _ = wr.send(frame.encode()).await;
                break;
            }
            // Backpressure: while a request waits for room, stop reading but
            // keep writing, so replies drain and the request task moves on.
            permit = req_tx.reserve(), if pending.is_some() => match (permit, pending.take()) {
                (Ok(p), Some(req)) => {
                    p.send(req);
                    if std::mem::take(&mut skipped_pushes) {
                        let f = ServerFrame::Resync { reason: "pushes_skipped".into() };
                        ok = wr.send(f.encode()).await.is_ok();
                    }
                }
                _ => break,
            },
            inbound = rd.recv(), if pending.is_none() => match inbound {
                Inbound::Closed => break,
                Inbound::TooLarge => {
                    metrics::counter!(m::BAD_FRAMES).increment(1);
                    ended = Some(ErrorCode::FrameTooLarge);
                    let msg = format!("frame over {} bytes", app.cfg.limits.max_frame_bytes);
                    let _ = wr.send(ServerFrame::error(None, ErrorCode::FrameTooLarge, msg, true).encode()).await;
                    break;
                }
                Inbound::Frame(bytes) => {
                    idle_deadline = Instant::now() + idle;
                    match decode_client(&bytes) {
                        Err(e) => {
                            metrics::counter!(m::BAD_FRAMES).increment(1);
                            ok = wr.send(ServerFrame::error(e.rid, e.code, e.message, false).encode()).await.is_ok();
                        }
                        Ok(frame) => match frame.op {
                            ClientOp::Ping => ok = wr.send(ServerFrame::Pong { rid: frame.rid }.encode()).await.is_ok(),
                            ClientOp::Pong => {}
                            ClientOp::Logout => { logout = true; break; }
                            ClientOp::Hello { .. } => {
                                let f = ServerFrame::error(frame.rid, ErrorCode::BadField, "already authenticated", false);
                                ok = wr.send(f.encode()).await.is_ok();
                            }
                            ClientOp::Ack { conv, seqs } => {
                                let now = magpie_core::now_ms();
                                for msg in inflight.ack(&conv, &seqs) {
                                    let secs = (now - msg.sent_at).max(0) as f64 / 1000.0;
                                    metrics::histogram!(m::DELIVERY_LATENCY).record(secs);
                                }
                                metrics::counter!(m::ACKED).increment(seqs.len() as u64);
                                if !queue(&req_tx, &mut pending, Req { rid: None, op: ClientOp::Ack { conv, seqs } }) { break; }
                            }
                            op => if !queue(&req_tx, &mut pending, Req { rid: frame.rid, op }) { break; },
                        },
                    }
                }
            },
            out = rx.recv() => match out {
                None => break,
                Some(Outbound::Frame(f)) => ok = wr.send(f.encode()).await.is_ok(),
                Some(Outbound::Push(msg)) => {
                    let full = inflight.track(msg.clone(), Instant::now()).is_err();
                    if full && pending.is_some() {
                        // We stopped reading (our own request queue is full),
                        // so the client's acks sit unread: not its fault. Skip
                        // the push; a resync hint follows once we read again.
                        skipped_pushes = true;
                    } else if full {
                        metrics::counter!(m::SLOW_CONSUMERS).increment(1);
                        ended = Some(ErrorCode::SlowConsumer);
                        let text = "too many unacknowledged messages: reconnect and sync";
                        let _ = wr.send(ServerFrame::error(None, ErrorCode::SlowConsumer, text, true).encode()).await;
                        break;
                    } else {
                        ok = wr.send(ServerFrame::Msg { msg: (*msg).clone(), attempt: 1 }.encode()).await.is_ok();
                    }
                }
            },
            _ = sleep_until(idle_deadline) => {
                ended = Some(ErrorCode::IdleTimeout);
                let f = ServerFrame::error(None, ErrorCode::IdleTimeout, "nothing received within the idle timeout", true);
                let _ = wr.send(f.encode()).await;
                break;
            }
            _ = heartbeat.tick() => {
                // Re-assert the route: the state is derived and may have been
                // lost (a Redis restart); this bounds how long pushes miss us.
                // Only while this connection is still the device's current one.
                // A route that had to be re-created (or a state that was
                // unreachable) means pushes missed us, perhaps with no later
                // message to reveal the gap: ask the client to sync.
                if app.hub.get(user, conn).is_some() {
                    match app.state.add_route(&route).await {
                        Ok(Some(newer)) if newer.since > route.since && (newer.node != route.node || newer.conn != route.conn) => {
                            // The device connected again elsewhere: that
                            // connection owns the route, this one is stale.
                            let _ = app.state.add_route(&newer).await;
                            ended = Some(ErrorCode::Replaced);
                            let f = ServerFrame::error(None, ErrorCode::Replaced, "this device connected again elsewhere", true);
                            let _ = wr.send(f.encode()).await;
                            break;
                        }
                        Ok(prev) => {
                            let lost = prev.is_none_or(|p| p.node != route.node || p.conn != route.conn);
                            if lost || route_doubt {
                                metrics::counter!(m::RESYNC_HINTS).increment(1);
                                let f = ServerFrame::Resync { reason: "route_restored".into() };
                                ok = wr.send(f.encode()).await.is_ok();
                            }
                            route_doubt = false;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "route refresh failed");
                            route_doubt = true;
                        }
                    }
                }
                ok = ok && wr.send(ServerFrame::Ping.encode()).await.is_ok();
            }
            _ = resend.tick() => {
                for (msg, attempt) in inflight.due(Instant::now()) {
                    metrics::counter!(m::RESENT).increment(1);
                    ok = wr.send(ServerFrame::Msg { msg: (*msg).clone(), attempt }.encode()).await.is_ok();
                    if !ok { break; }
                }
            }
        }
    }

    wr.close(ended).await;
    if ended.is_some() {
        // Linger briefly, reading, so the peer gets our error and close
        // frames: dropping a socket with unread input sends a reset that
        // can overtake them.
        let drain = async { while !matches!(rd.recv().await, Inbound::Closed) {} };
        let _ = tokio::time::timeout(Duration::from_millis(300), drain).await;
    }
    drop(req_tx);
    let _ = requests.await;
    app.hub.unregister(user, conn);
    app.rooms.leave_all((user, conn));
    app.group_index.close(user);
    let _ = app
        .state
        .remove_route(user, &device, &app.cfg.node, conn)
        .await;
    let why = if logout { "logout" } else { reason(ended) };
    // A replaced connection's device is still online (on its new
    // connection): announcing it offline would be false.
    if ended != Some(ErrorCode::Replaced) {
        let _ = app.presence(user, &device, false, Some(why)).await;
    }
    metrics::gauge!(m::CONNECTIONS, "transport" => transport).decrement(1.0);
    tracing::debug!(%user, %device, reason = why, "session ended");
}
