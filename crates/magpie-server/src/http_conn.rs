//! The HTTP connection loop: each admitted connection (`listener.rs`) is
//! served by hyper's HTTP/1 server with the router as its service, with
//! the deadlines a public listener needs and axum's own `serve` does not
//! set (it gives hyper no timer, so a client could hold a connection with
//! a request it never finishes):
//!
//! - `http.header_timeout_ms`: a request's headers (and, on a kept-alive
//!   connection, the next request's) must arrive within it, or the
//!   connection is closed — half-open requests and idle keep-alives do not
//!   pile up (slowloris);
//! - the whole request, body included, has its own deadline, a layer of
//!   the routers (`edge/close.rs`, `http.request_timeout_ms`), which
//!   answers 408 `request_timeout`.
//!
//! WebSocket upgrades go on past hyper (`with_upgrades`); their sessions
//! have the handshake's own `hello` deadline. On `stop`, accepting ends and
//! the connections finish their requests (hyper's graceful shutdown).

use crate::listener::HttpListener;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::pin;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a stopping listener waits for its connections' requests.
const DRAIN: Duration = Duration::from_secs(5);

pub async fn serve(
    mut listener: HttpListener,
    router: axum::Router,
    stop: CancellationToken,
    header_timeout: Duration,
) {
    let conns = TaskTracker::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            _ = stop.cancelled() => break,
        };
        // The peer rides on every request: the guard reads the client's
        // address from it (`edge/guarded.rs`).
        let service = router
            .clone()
            .map_request(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = http1
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .with_upgrades();
        let stop = stop.clone();
        conns.spawn(async move {
            let mut conn = pin!(conn);
            tokio::select! {
                r = conn.as_mut() => return ended(r),
                _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            ended(conn.await)
        });
    }
    conns.close();
    if tokio::time::timeout(DRAIN, conns.wait()).await.is_err() {
        tracing::debug!("http connections still open after the drain");
    }
}

fn ended(r: hyper::Result<()>) {
    if let Err(e) = r {
        tracing::trace!(error = %e, "http connection ended");
    }
}
