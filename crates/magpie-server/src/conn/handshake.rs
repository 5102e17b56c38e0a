//! The first exchange on a connection: the client must send `hello` with a
//! one-time ticket within `hello_timeout_ms`.
//!
//! Malformed frames before `hello` get a non-fatal error (the client may try
//! again before the deadline); a bad ticket or the deadline ends the
//! connection.

use super::transport::{Inbound, Transport, send_now};
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

fn encoded(f: ServerFrame) -> bytes::Bytes {
    bytes::Bytes::from(f.encode())
}

async fn fail<T: Transport>(io: &mut T, rid: Option<u64>, code: ErrorCode, msg: &str) {
    let _ = send_now(io, encoded(ServerFrame::error(rid, code, msg, true))).await;
    io.close(Some(code)).await;
}

pub async fn handshake<T: Transport>(app: &App, io: &mut T) -> Option<Handshake> {
    let deadline = Instant::now() + Duration::from_millis(app.cfg.session.hello_timeout_ms);
    loop {
        let inbound = tokio::select! {
            r = timeout_at(deadline, io.recv()) => r,
            _ = app.shutdown.cancelled() => {
                fail(io, None, ErrorCode::ShuttingDown, "server shutting down").await;
                return None;
            }
        };
        let bytes = match inbound {
            Err(_) => {
                fail(
                    io,
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
                    io,
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
                crate::metrics::meters().bad_frames.increment(1);
                let _ = send_now(
                    io,
                    encoded(ServerFrame::error(e.rid, e.code, e.message, false)),
                )
                .await;
                continue;
            }
        };
        let ClientOp::Hello { ticket } = frame.op else {
            let msg = "send hello with a ticket from POST /v1/connect first";
            let f = ServerFrame::error(frame.rid, ErrorCode::NotAuthenticated, msg, false);
            let _ = send_now(io, encoded(f)).await;
            continue;
        };
        let claims = match app.state.ticket_take(&ticket).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                fail(
                    io,
                    frame.rid,
                    ErrorCode::BadTicket,
                    "ticket unknown, used or expired",
                )
                .await;
                return None;
            }
            Err(e) => {
                fail(io, frame.rid, ErrorCode::Unavailable, &e.to_string()).await;
                return None;
            }
        };
        let settings = app
            .store
            .accounts()
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
