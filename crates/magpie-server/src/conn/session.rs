//! One client connection from `hello` to close, written once for both
//! transports.
//!
//! The loop races, in one `select!`: a kill (slow consumer, replaced), the
//! node's shutdown, the next inbound frame, outbound frames and pushes, and
//! one timer for whatever is due next (the idle deadline, the heartbeat, a
//! resend). Each arm is a method. Frames are fed to the transport as they
//! come and flushed once per turn, so a burst costs one write. Requests
//! that touch the backends run in a companion task (`requests.rs`), so a
//! slow store never stops this loop from answering pings and taking acks.

use super::handshake::{Handshake, handshake};
use super::hub::{ConnEntry, Kill, Outbound, Push};
use super::inflight::Inflight;
use super::mailbox::Mailbox;
use super::requests::{Req, Requester};
use super::transport::{Inbound, Transport};
use crate::app::App;
use crate::metrics::{self as m, meters};
use bytes::Bytes;
use magpie_core::{ClientSettings, DeviceId, UserId};
use magpie_proto::{ClientFrame, ClientOp, ErrorCode, ServerFrame, decode_client};
use magpie_store::Route;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

/// Outbound frames taken in one turn before flushing.
const MAX_TURN: usize = 256;
/// A bound on how long nothing is looked at: the timer's farthest wake-up.
const FAR: Duration = Duration::from_secs(3600);

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

fn encoded(f: &ServerFrame) -> Bytes {
    Bytes::from(f.encode())
}

pub async fn run<T: Transport>(app: App, transport: &'static str, mut io: T) {
    // The one-off steps are boxed: their futures then live only while they
    // run, instead of widening the state every idle connection keeps.
    let Some(hs) = Box::pin(handshake(&app, &mut io)).await else {
        return;
    };
    let mut s = Box::pin(Session::open(app, transport, io, hs)).await;
    s.serve().await;
    Box::pin(s.close()).await;
}

struct Session<T> {
    app: App,
    transport: &'static str,
    io: T,
    user: UserId,
    device: DeviceId,
    conn: u64,
    route: Route,
    settings: ClientSettings,
    mailbox: Arc<Mailbox>,
    kill: Arc<Kill>,
    inflight: Inflight,
    /// The companion task, once the first request came.
    requests: Option<(mpsc::Sender<Req>, JoinHandle<()>)>,
    /// A request waiting for room in the companion's queue (reading stops).
    pending: Option<Req>,
    idle: Duration,
    last_inbound: Instant,
    heartbeat: Duration,
    heartbeat_at: Instant,
    /// Whether pushes may have missed this connection since the last
    /// refresh: the route was not recorded, or the state was unreachable.
    route_doubt: bool,
    /// Pushes dropped while we were not reading: the client gets a resync hint.
    skipped_pushes: bool,
    /// Frames fed since the last flush.
    dirty: bool,
    done: bool,
    ended: Option<ErrorCode>,
    logout: bool,
}

impl<T: Transport> Session<T> {
    /// Registers the connection (hub, group index, route, presence) and
    /// queues the welcome.
    async fn open(app: App, transport: &'static str, io: T, hs: Handshake) -> Session<T> {
        let Handshake {
            user,
            device,
            settings,
        } = hs;
        let cfg = app.cfg.session.clone();
        let mailbox = Arc::new(Mailbox::new(cfg.outbound_queue));
        let kill = Arc::new(Kill::default());
        let conn = app.hub.next_conn_id();
        let since = magpie_core::now_ms();
        let entry = ConnEntry {
            id: conn,
            since,
            user,
            device: device.clone(),
            mailbox: mailbox.clone(),
            kill: kill.clone(),
        };
        if let Some(old) = app.hub.register(entry) {
            old.kill.fire(ErrorCode::Replaced);
        }
        if app.group_index.open(user) {
            match app.store.groups().user_groups(user).await {
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
            since,
        };
        let mut route_doubt = false;
        if let Err(e) = app.state.add_route(&route).await {
            tracing::warn!(error = %e, %user, "route not recorded; pushes will wait for sync");
            route_doubt = true;
        }
        let _ = app.presence(user, &device, true, None).await;
        metrics::gauge!(m::CONNECTIONS, "transport" => transport).increment(1.0);
        let now = Instant::now();
        let heartbeat = Duration::from_millis(cfg.heartbeat_ms.max(10));
        let mut s = Session {
            transport,
            io,
            user,
            device: device.clone(),
            conn,
            route,
            inflight: Inflight::new(cfg.window, settings.resend.policy()),
            settings,
            mailbox,
            kill,
            requests: None,
            pending: None,
            idle: Duration::from_millis(cfg.idle_timeout_ms),
            last_inbound: now,
            heartbeat,
            heartbeat_at: now + heartbeat,
            route_doubt,
            skipped_pushes: false,
            dirty: false,
            done: false,
            ended: None,
            logout: false,
            app,
        };
        let welcome = ServerFrame::Welcome {
            user,
            device,
            node: s.app.cfg.node.clone(),
            heartbeat_ms: cfg.heartbeat_ms,
            idle_timeout_ms: cfg.idle_timeout_ms,
            max_frame: s.app.cfg.limits.max_frame_bytes,
            window: cfg.window,
        };
        s.feed(encoded(&welcome));
        s
    }

    fn next_wake(&self) -> Instant {
        let idle_at = self.last_inbound + self.idle;
        let mut at = idle_at.min(self.heartbeat_at);
        if let Some(due) = self.inflight.next_due() {
            at = at.min(due);
        }
        at.min(Instant::now() + FAR)
    }

    async fn serve(&mut self) {
        let kill = self.kill.clone();
        let killed = kill.fired();
        let stopping = self.app.shutdown.clone().cancelled_owned();
        let timer = sleep_until(self.next_wake());
        tokio::pin!(killed, stopping, timer);
        while !self.done {
            if self.dirty {
                self.dirty = false;
                if self.io.flush().await.is_err() {
                    break;
                }
            }
            tokio::select! {
                code = &mut killed => {
                    let f = ServerFrame::error(None, code, code.as_str(), true);
                    self.end(code, f);
                }
                _ = &mut stopping => {
                    let f = ServerFrame::Reconnect { reason: "shutting_down".into(), after_ms: 500 };
                    self.end(ErrorCode::ShuttingDown, f);
                }
                // Backpressure: while a request waits for room, stop reading but
                // keep writing, so replies drain and the companion moves on.
                permit = reserve(self.requests.as_ref().map(|(tx, _)| tx.clone())), if self.pending.is_some() => match (permit, self.pending.take()) {
                    (Some(p), Some(req)) => {
                        p.send(req);
                        if std::mem::take(&mut self.skipped_pushes) {
                            let f = ServerFrame::Resync { reason: "pushes_skipped".into() };
                            self.feed(encoded(&f));
                        }
                    }
                    _ => self.done = true,
                },
                inbound = self.io.recv(), if self.pending.is_none() => self.on_inbound(inbound),
                out = self.mailbox.recv() => {
                    self.on_outbound(out);
                    for _ in 1..MAX_TURN {
                        match self.mailbox.try_recv() {
                            Some(out) if !self.done => self.on_outbound(out),
                            _ => break,
                        }
                    }
                }
                _ = &mut timer => {
                    // Boxed: rare, and its route refresh would widen every
                    // connection's state.
                    Box::pin(self.on_timer()).await;
                    timer.as_mut().reset(self.next_wake());
                }
            }
            // Something may now be due sooner (a first push starts the
            // resend clock); later deadlines are found when the timer fires.
            let next = self.next_wake();
            if next < timer.deadline() {
                timer.as_mut().reset(next);
            }
        }
    }

    /// Queues a frame for the flush at the top of the loop.
    fn feed(&mut self, frame: Bytes) {
        self.io.queue(frame);
        self.dirty = true;
    }

    /// Sends a last frame and ends the session with `code`.
    fn end(&mut self, code: ErrorCode, last: ServerFrame) {
        self.ended = Some(code);
        self.feed(encoded(&last));
        self.done = true;
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Closed => self.done = true,
            Inbound::TooLarge => {
                meters().bad_frames.increment(1);
                let msg = format!("frame over {} bytes", self.app.cfg.limits.max_frame_bytes);
                let f = ServerFrame::error(None, ErrorCode::FrameTooLarge, msg, true);
                self.end(ErrorCode::FrameTooLarge, f);
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

    fn on_request(&mut self, frame: ClientFrame) {
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
                for at in acked.pushed_at {
                    m.delivery_latency.record((now - at).max(0) as f64 / 1000.0);
                }
                m.acked.increment(seqs.len() as u64);
                // Group messages are kept for every member (read diffusion):
                // their deliveries change nothing, so they are not published.
                if conv.group_id().is_none() && !acked.deliveries.is_empty() {
                    self.queue(Req::Delivered {
                        conv,
                        seqs: acked.deliveries,
                    });
                }
            }
            op => self.queue(Req::Client { rid: frame.rid, op }),
        }
    }

    /// Hands a request to the companion task (started on first use) without
    /// waiting; when its queue is full the request is parked in `pending`
    /// and reading stops until there is room.
    fn queue(&mut self, req: Req) {
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

    fn on_outbound(&mut self, out: Outbound) {
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

    fn on_push(&mut self, push: Arc<Push>) {
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
            self.feed(push.frame.clone());
        }
    }

    async fn on_timer(&mut self) {
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
    async fn on_heartbeat(&mut self) {
        if self.app.hub.has(self.user, self.conn) {
            let route = &self.route;
            match self.app.state.add_route(route).await {
                Ok(Some(newer))
                    if newer.since > route.since
                        && (newer.node != route.node || newer.conn != route.conn) =>
                {
                    // The device connected again elsewhere: that
                    // connection owns the route, this one is stale.
                    let _ = self.app.state.add_route(&newer).await;
                    let text = "this device connected again elsewhere";
                    let f = ServerFrame::error(None, ErrorCode::Replaced, text, true);
                    self.end(ErrorCode::Replaced, f);
                    return;
                }
                Ok(prev) => {
                    let lost = prev.is_none_or(|p| p.node != route.node || p.conn != route.conn);
                    if lost || self.route_doubt {
                        meters().resync_hints.increment(1);
                        let f = ServerFrame::Resync {
                            reason: "route_restored".into(),
                        };
                        self.feed(encoded(&f));
                    }
                    self.route_doubt = false;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "route refresh failed");
                    self.route_doubt = true;
                }
            }
        }
        self.feed(encoded(&ServerFrame::Ping));
    }

    /// Closes the socket, waits for the companion, and unregisters.
    async fn close(mut self) {
        // Refuse what comes now: replies waiting for room give up.
        self.mailbox.close();
        let _ = self.io.flush().await;
        self.io.close(self.ended).await;
        if self.ended.is_some() {
            // Linger briefly, reading, so the peer gets our error and close
            // frames: dropping a socket with unread input sends a reset that
            // can overtake them.
            let io = &mut self.io;
            let drain = async { while let Inbound::Frame(_) = io.recv().await {} };
            let _ = tokio::time::timeout(Duration::from_millis(300), drain).await;
        }
        if let Some((tx, task)) = self.requests.take() {
            drop(tx);
            let _ = task.await;
        }
        let (app, user, conn) = (&self.app, self.user, self.conn);
        app.hub.unregister(user, conn);
        app.rooms.leave_all((user, conn));
        app.group_index.close(user);
        let _ = app
            .state
            .remove_route(user, &self.device, &app.cfg.node, conn)
            .await;
        let why = if self.logout {
            "logout"
        } else {
            reason(self.ended)
        };
        // A replaced connection's device is still online (on its new
        // connection): announcing it offline would be false.
        if self.ended != Some(ErrorCode::Replaced) {
            let _ = app.presence(user, &self.device, false, Some(why)).await;
        }
        metrics::gauge!(m::CONNECTIONS, "transport" => self.transport).decrement(1.0);
        tracing::debug!(%user, device = %self.device, reason = why, "session ended");
    }
}

/// Room in the companion's queue (`None` if it is gone). Owned, so the
/// select's other arms may use the session meanwhile.
async fn reserve(tx: Option<mpsc::Sender<Req>>) -> Option<mpsc::OwnedPermit<Req>> {
    tx?.reserve_owned().await.ok()
}
