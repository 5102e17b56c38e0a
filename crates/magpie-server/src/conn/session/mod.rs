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

mod inbound;
mod outbound;
mod timer;

use super::handshake::{Handshake, handshake};
use super::inflight::Inflight;
use super::receipts::Receipts;
use super::requests::Req;
use super::transport::{Inbound, Transport};
use crate::app::App;
use crate::metrics as m;
use crate::services::delivery::Registered;
use crate::services::delivery::hub::Kill;
use crate::services::delivery::mailbox::Mailbox;
use bytes::Bytes;
use magpie_core::{ClientSettings, DeviceId, UserId};
use magpie_proto::{ErrorCode, ServerFrame};
use magpie_store::Route;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

/// Outbound frames taken in one turn before flushing.
const MAX_TURN: usize = 256;

/// A drained node's clients are told to come back after 0.5 s to this.
const DRAIN_SPREAD_MS: u64 = 5_000;
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

/// Serves one client connection from `ip` (its address as the guard
/// knows it: the peer, or what a trusted proxy forwarded).
pub async fn run<T: Transport>(app: App, transport: &'static str, ip: IpAddr, mut io: T) {
    // The one-off steps are boxed: their futures then live only while they
    // run, instead of widening the state every idle connection keeps.
    let hs = match Box::pin(handshake(&app, &mut io)).await {
        Ok(hs) => hs,
        Err(code) => {
            // A bad ticket counts like an invalid token (docs/edge.md).
            if let Some(code) = code {
                app.guard
                    .socket_event(ip, None, transport, "hello", Some(code));
            }
            return;
        }
    };
    // A banned user is refused here, before the connection is registered.
    if let Err(e) = app.guard.admit_user(hs.user) {
        app.guard
            .socket_event(ip, Some(hs.user), transport, "hello", Some(e.code()));
        let f = ServerFrame::error(None, e.code(), e.to_string(), true);
        io.queue(encoded(&f));
        let _ = io.close(Some(e.code())).await;
        return;
    }
    app.guard
        .socket_event(ip, Some(hs.user), transport, "hello", None);
    let mut s = Box::pin(Session::open(app, transport, ip, io, hs)).await;
    s.serve().await;
    Box::pin(s.close()).await;
}

struct Session<T> {
    app: App,
    transport: &'static str,
    ip: IpAddr,
    io: T,
    user: UserId,
    device: DeviceId,
    /// The device id as trace hops keep it (`services/trace`).
    device_key: Arc<str>,
    conn: u64,
    route: Route,
    settings: ClientSettings,
    mailbox: Arc<Mailbox>,
    kill: Arc<Kill>,
    inflight: Inflight,
    /// Delivery receipts sent and held back; made at the first one, so a
    /// connection that never receives costs nothing here.
    receipts: Option<Box<Receipts>>,
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
    async fn open(
        app: App,
        transport: &'static str,
        ip: IpAddr,
        io: T,
        hs: Handshake,
    ) -> Session<T> {
        let Handshake {
            user,
            device,
            settings,
        } = hs;
        let cfg = app.cfg.session.clone();
        let Registered {
            conn,
            route,
            mailbox,
            kill,
            route_doubt,
        } = app
            .delivery
            .register(user, &device, cfg.outbound_queue)
            .await;
        app.presence.changed(user, &device, true, None);
        metrics::gauge!(m::CONNECTIONS, "transport" => transport).increment(1.0);
        let now = Instant::now();
        let heartbeat = Duration::from_millis(cfg.heartbeat_ms.max(10));
        let mut s = Session {
            transport,
            ip,
            io,
            user,
            device_key: device.as_str().into(),
            device: device.clone(),
            conn,
            route,
            inflight: Inflight::new(cfg.window, settings.resend.policy()),
            receipts: None,
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
                    let f = match code {
                        // An operator drains the node (`cluster/drain.rs`):
                        // the clients come back to other nodes, spread over
                        // a few seconds rather than all at once.
                        ErrorCode::ShuttingDown => ServerFrame::Reconnect {
                            reason: "draining".into(),
                            after_ms: rand::random_range(500..=DRAIN_SPREAD_MS),
                        },
                        _ => ServerFrame::error(None, code, code.as_str(), true),
                    };
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
        // After the companion: no watch request of this connection is left.
        app.presence.unwatch(user, conn).await;
        app.delivery.unregister(user, &self.device, conn).await;
        let why = if self.logout {
            "logout"
        } else {
            reason(self.ended)
        };
        // A replaced connection's device is still online (on its new
        // connection): announcing it offline would be false.
        if self.ended != Some(ErrorCode::Replaced) {
            app.presence.changed(user, &self.device, false, Some(why));
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
