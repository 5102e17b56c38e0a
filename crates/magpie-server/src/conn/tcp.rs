//! The TCP listener: accepts connections and runs a session on each.
//!
//! Accept errors (e.g. out of file descriptors) back off instead of spinning;
//! a connection's failure stays inside its own task.

use super::session;
use super::transport::{TcpReader, TcpWriter};
use crate::app::App;
use magpie_proto::TcpCodec;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::codec::{FramedRead, FramedWrite};

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
                let max = app.cfg.limits.max_frame_bytes;
                let (r, w) = stream.into_split();
                let rd = TcpReader(FramedRead::with_capacity(r, TcpCodec::new(max), 1024));
                let wr = TcpWriter(FramedWrite::new(
                    w,
                    TcpCodec::new(magpie_proto::MAX_SERVER_FRAME),
                ));
                tokio::spawn(session::run(app.clone(), "tcp", rd, wr));
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
