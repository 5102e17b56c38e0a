//! The first exchange on a connection: the client must send `hello` with a
//! one-time ticket within `hello_timeout_ms`.
//!
//! Malformed frames before `hello` get a non-fatal error (the client may try
//! again before the deadline); a bad ticket or the deadline ends the
//! connection.

use super::transport::{FrameReader, FrameWriter, Inbound};
use crate::app::App;
use magpie_core::{ClientSettings, DeviceId, UserId};
use magpie_proto::{ClientOp, ErrorCode, ServerFrame, decode_client};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

pub struct Handshake {
    pub user: UserId,
    pub device: DeviceId,
    pub settings: ClientSettings,
}

async fn fail<W: FrameWriter>(wr: &mut W, rid: Option<u64>, code: ErrorCode, msg: &str) {
    let _ = wr
        .send(ServerFrame::error(rid, code, msg, true).encode())
        .await;
    wr.close(Some(code)).await;
}

pub async fn handshake<R: FrameReader, W: FrameWriter>(
    app: &App,
    rd: &mut R,
    wr: &mut W,
) -> Option<Handshake> {
    let deadline = Instant::now() + Duration::from_millis(app.cfg.session.hello_timeout_ms);
    loop {
        let inbound = tokio::select! {
            r = timeout_at(deadline, rd.recv()) => r,
            _ = app.shutdown.cancelled() => {
                fail(wr, None, ErrorCode::ShuttingDown, "server shutting down").await;
                return None;
            }
        };
        let bytes = match inbound {
            Err(_) => {
                fail(
                    wr,
                    None,
                    ErrorCode::NotAuthenticated,
                    "no hello within the timeout",
                )
                .await;
                return None;
            }
            Ok(Inbound::Closed) => return None,
            Ok(Inbound::TooLarge) => {
                fail(
                    wr,
                    None,
                    ErrorCode::FrameTooLarge,
                    "frame over the size limit",
                )
                .await;
                return None;
            }
            Ok(Inbound::Frame(b)) => b,
        };
        let frame = match decode_client(&bytes) {
            Ok(f) => f,
            Err(e) => {
                metrics::counter!(crate::metrics::BAD_FRAMES).increment(1);
                let _ = wr
                    .send(ServerFrame::error(e.rid, e.code, e.message, false).encode())
                    .await;
                continue;
            }
        };
        let ClientOp::Hello { ticket } = frame.op else {
            let msg = "send hello with a ticket from POST /v1/connect first";
            let _ = wr
                .send(
                    ServerFrame::error(frame.rid, ErrorCode::NotAuthenticated, msg, false).encode(),
                )
                .await;
            continue;
        };
        let claims = match app.state.ticket_take(&ticket).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                fail(
                    wr,
                    frame.rid,
                    ErrorCode::BadTicket,
                    "ticket unknown, used or expired",
                )
                .await;
                return None;
            }
            Err(e) => {
                fail(wr, frame.rid, ErrorCode::Unavailable, &e.to_string()).await;
                return None;
            }
        };
        let settings = app
            .store
            .get_settings(claims.user, Some(&claims.device))
            .await
            .unwrap_or_default();
        return Some(Handshake {
            user: claims.user,
            device: claims.device,
            settings,
        });
    }
}
