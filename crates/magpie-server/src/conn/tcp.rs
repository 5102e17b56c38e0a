//! The TCP listener: accepts connections (within the node's connection cap,
//! `listener.rs`) and runs a session on each.
//!
//! A connection's failure stays inside its own task; its permit is released
//! when the session ends. Session tasks are spawned on `App::sessions`, so
//! shutdown can wait for them to end.

use super::session;
use super::transport::Tcp;
use crate::app::App;
use crate::listener::{ConnLimit, accept, refuse_tcp};
use tokio::net::TcpListener;

pub async fn serve(app: App, listener: TcpListener, limit: ConnLimit) {
    loop {
        let (stream, peer, admission) = tokio::select! {
            a = accept(&listener, &limit, refuse_tcp) => a,
            _ = app.shutdown.cancelled() => return,
        };
        let io = Tcp::new(stream, app.cfg.limits.max_frame_bytes);
        let session_app = app.clone();
        app.sessions.spawn(async move {
            session::run(session_app, "tcp", peer.ip(), io).await;
            drop(admission);
        });
    }
}
