//! The edge guard (docs/edge.md): what stands between one misbehaving
//! client or address and everyone else, in every mode.
//!
//! - `addr.rs`: who the client is (the peer, or what a trusted proxy says);
//! - `limits.rs`: token buckets per address and user, connections per address;
//! - `login.rs`: failed logins counted cluster-wide, captcha, lockout;
//! - `bans.rs`: ban decisions in the fast state, cached on every node;
//! - `access.rs`: access events to the relay and the access log;
//! - `detector.rs` + `tasks.rs`: rules as leaky buckets that make bans,
//!   fed by every node's events and by followed gateway logs (`follow.rs`).
//!
//! Every entrance asks the guard in the same order: the ban first (cheap,
//! local), then the rate, then the work. A refusal is an answer with its
//! own code (`banned`, `rate_limited`, `busy`), never a silent drop.

pub mod access;
pub mod addr;
pub mod bans;
pub mod config;
pub mod detector;
mod follow;
pub mod limits;
pub mod login;
mod tasks;

pub use config::GuardConfig;
pub use tasks::spawn;

use crate::error::{Result, ServerError};
use access::AccessSink;
use addr::Ranges;
use axum::http::HeaderMap;
use bans::Bans;
use limits::{ConnsPerIp, IpSlot, Limits, limited};
use login::LoginGuard;
use magpie_bus::Relay;
use magpie_core::access::LogFormat;
use magpie_core::{AccessEvent, UserId, now_ms};
use magpie_proto::ErrorCode;
use magpie_store::State;
use std::net::IpAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Guard {
    pub cfg: GuardConfig,
    trusted: Ranges,
    pub bans: Arc<Bans>,
    pub limits: Limits,
    conns: Arc<ConnsPerIp>,
    pub login: LoginGuard,
    pub access: AccessSink,
}

impl Guard {
    /// The guard and its access-event drain (for the caller to spawn).
    /// The configuration was checked at start (`check`).
    pub fn new(
        cfg: &GuardConfig,
        state: State,
        relay: Relay,
        stop: CancellationToken,
    ) -> (Guard, impl Future<Output = ()> + Send + 'static) {
        let log = match check(cfg) {
            Ok(log) => log,
            Err(e) => {
                tracing::error!(error = %e, "no access log");
                None
            }
        };
        let (access, drain) = AccessSink::new(relay.clone(), log, stop);
        let guard = Guard {
            cfg: cfg.clone(),
            trusted: Ranges::new(&cfg.trusted_proxies),
            bans: Arc::new(Bans::new(state.clone(), relay, Ranges::new(&cfg.allow))),
            limits: Limits::new(&cfg.rates),
            conns: ConnsPerIp::new(cfg.conns_per_ip),
            login: LoginGuard::new(state, cfg.login.clone()),
            access,
        };
        (guard, drain)
    }

    /// The client behind a request from `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        addr::client_ip(peer, headers, &self.trusted)
    }

    /// Whether per-address limits pass over `ip`: allow-listed addresses,
    /// and trusted proxies (their clients are limited by the address they
    /// forward, request by request).
    pub fn exempt(&self, ip: IpAddr) -> bool {
        self.bans.allowed(ip) || self.trusted.contains(ip)
    }

    /// Admits a new connection from `peer` before anything is read from
    /// it: not banned, within the connect rate, within its address's cap.
    /// The slot, when one is taken, is held for the connection's life.
    pub fn admit_conn(&self, peer: IpAddr) -> Result<Option<IpSlot>> {
        let peer = addr::canonical(peer);
        if self.exempt(peer) {
            return Ok(None);
        }
        self.bans.check_ip(peer).inspect_err(|_| {
            crate::metrics::meters().banned.increment(1);
        })?;
        if let Err(ms) = self.limits.connect_ip.take(&peer, 1) {
            crate::metrics::meters().rate_limited.increment(1);
            return Err(limited(ms, "new connections from this address"));
        }
        match self.conns.admit(peer) {
            Some(slot) => Ok(Some(slot)),
            None => Err(ServerError::Busy(format!(
                "this address holds {} connections, the most allowed",
                self.cfg.conns_per_ip
            ))),
        }
    }

    /// An HTTP request from `ip` to `path`: not banned, within the
    /// address's request rate (and login or registration rate).
    pub fn admit_request(&self, ip: IpAddr, path: &str) -> Result<()> {
        if self.exempt(ip) {
            return Ok(());
        }
        self.bans.check_ip(ip).inspect_err(|_| {
            crate::metrics::meters().banned.increment(1);
        })?;
        let bucket = match path {
            "/v1/auth/login" => Some((&self.limits.login_ip, "logins")),
            "/v1/auth/register" => Some((&self.limits.register_ip, "registrations")),
            _ => None,
        };
        let checks = [Some((&self.limits.http_ip, "requests")), bucket];
        for (b, what) in checks.into_iter().flatten() {
            if let Err(ms) = b.take(&ip, 1) {
                crate::metrics::meters().rate_limited.increment(1);
                return Err(limited(ms, &format!("{what} from this address")));
            }
        }
        Ok(())
    }

    /// A user's request (HTTP or socket): not banned.
    pub fn admit_user(&self, user: UserId) -> Result<()> {
        self.bans.check_user(user).inspect_err(|_| {
            crate::metrics::meters().banned.increment(1);
        })
    }

    /// A connection of `user` from `ip`: neither is banned. Checked on
    /// every frame, so a ban reaches open connections too.
    pub fn check_banned(&self, ip: IpAddr, user: UserId) -> Result<()> {
        self.bans
            .check_ip(ip)
            .and_then(|()| self.bans.check_user(user))
            .inspect_err(|_| crate::metrics::meters().banned.increment(1))
    }

    /// A socket request (other than a send, ping or ack) from `user`.
    pub fn admit_frame(&self, user: UserId) -> Result<()> {
        self.limits.frames_user.take(&user, 1).map_err(|ms| {
            crate::metrics::meters().rate_limited.increment(1);
            limited(ms, "requests")
        })
    }

    /// `n` messages sent by `user`.
    pub fn admit_sends(&self, user: UserId, n: u32) -> Result<()> {
        self.limits.send(user, n).inspect_err(|_| {
            crate::metrics::meters().rate_limited.increment(1);
        })
    }

    /// Records a socket operation or connection attempt: refused or
    /// failed ones (`code`), and each connection's successful `hello`
    /// (`None`). Successful socket requests are not recorded: the detector
    /// counts refusals, and an event per message would cost more than the
    /// message.
    pub fn socket_event(
        &self,
        ip: IpAddr,
        user: Option<UserId>,
        transport: &str,
        op: &str,
        code: Option<ErrorCode>,
    ) {
        self.access.record(AccessEvent {
            at_ms: now_ms(),
            ip,
            user,
            method: transport.to_ascii_uppercase(),
            path: op.into(),
            status: code.map_or(200, ErrorCode::http_status),
            code: code.map(|c| c.as_str().into()),
            bytes: 0,
            latency_ms: 0.0,
            user_agent: None,
            miss: code.is_some_and(is_miss),
        });
    }
}

/// Checks the section at start; returns the access log to write, if any.
pub fn check(cfg: &GuardConfig) -> Result<Option<(String, LogFormat)>> {
    let format = |what: &str, f: &str| {
        f.parse::<LogFormat>().map_err(|_| {
            ServerError::Internal(format!("{what} {f:?}: expected combined or apisix"))
        })
    };
    for f in &cfg.follow {
        format("guard.follow.format", &f.format)?;
    }
    for r in &cfg.rules {
        if r.by != "ip" && r.by != "user" {
            return Err(ServerError::Internal(format!(
                "guard.rules {:?}: by = {:?}, expected ip or user",
                r.name, r.by
            )));
        }
    }
    if cfg.access_log.is_empty() {
        return Ok(None);
    }
    let f = format("guard.access_log_format", &cfg.access_log_format)?;
    Ok(Some((cfg.access_log.clone(), f)))
}

/// Codes that mean "a look-up found nothing".
pub fn is_miss(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::NotFound | ErrorCode::UnknownRecipient)
}
