//! The TCP listener: accepts connections and runs a session on each.
//!
//! Accept errors (e.g. out of file descriptors) back off instead of spinning;
//! a connection's failure stays inside its own task.

use super::session;
use super::transport::Tcp;
use crate::app::App;
use std::time::Duration;
use tokio::net::TcpListener;

pub async fn serve(app: App, listener: TcpListener) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = app.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                let io = Tcp::new(stream, app.cfg.limits.max_frame_bytes);
                tokio::spawn(session::run(app.clone(), "tcp", io));
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
