//! The guard's rules on every HTTP request (docs/edge.md): the client's
//! address is worked out once (`guard/addr.rs`) and put in the request's
//! extensions as [`ClientIp`]; a banned address or one over its rate is
//! answered before any handler runs; and every request, answered or
//! refused, becomes an access event with the user, status, error code
//! and whether a look-up found nothing.
//!
//! Handlers and extractors learn of the user through [`SeenUser`], a slot
//! the authenticating extractor fills, so the event names who it was.

use crate::app::App;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magpie_core::{AccessEvent, UserId, now_ms};
use magpie_proto::ErrorCode;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The client's address (the peer, or what a trusted proxy forwarded).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Filled by `AuthUser` once the request's token is verified.
#[derive(Debug, Clone, Default)]
pub struct SeenUser(Arc<OnceLock<UserId>>);

impl SeenUser {
    pub fn set(&self, user: UserId) {
        let _ = self.0.set(user);
    }
}

/// A public request: admitted by the guard, then recorded.
pub async fn guard_request(State(app): State<App>, req: Request, next: Next) -> Response {
    serve(app, req, next, true).await
}

/// An internal API request: recorded only.
pub async fn record_request(State(app): State<App>, req: Request, next: Next) -> Response {
    serve(app, req, next, false).await
}

async fn serve(app: App, mut req: Request, next: Next, admit: bool) -> Response {
    let started = Instant::now();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let ip = app.guard.client_ip(peer, req.headers());
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect::<String>());
    let seen = SeenUser::default();
    let admitted = if admit {
        app.guard.admit_request(ip, &path)
    } else {
        Ok(())
    };
    let res = match admitted {
        Err(e) => e.into_response(),
        Ok(()) => {
            req.extensions_mut().insert(ClientIp(ip));
            req.extensions_mut().insert(seen.clone());
            next.run(req).await
        }
    };
    let code = res.extensions().get::<ErrorCode>().copied();
    let bytes = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    app.guard.access.record(AccessEvent {
        at_ms: now_ms(),
        ip,
        user: seen.0.get().copied(),
        method,
        path,
        status: res.status().as_u16(),
        code: code.map(|c| c.as_str().to_string()),
        bytes,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        user_agent: agent,
        miss: code.is_some_and(crate::guard::is_miss),
    });
    res
}
