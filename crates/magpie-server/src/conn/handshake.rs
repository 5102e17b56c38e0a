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

/// The handshake; a failure is the code the connection was closed with
/// (`None`: the client went away), for the access event.
pub async fn handshake<T: Transport>(
    app: &App,
    io: &mut T,
) -> Result<Handshake, Option<ErrorCode>> {
    let deadline = Instant::now() + Duration::from_millis(app.cfg.session.hello_timeout_ms);
    loop {
        let inbound = tokio::select! {
            r = timeout_at(deadline, io.recv()) => r,
            _ = app.shutdown.cancelled() => {
                fail(io, None, ErrorCode::ShuttingDown, "server shutting down").await;
                return Err(Some(ErrorCode::ShuttingDown));
            }
        };
        let bytes = match inbound {
            Err(_) => {
                let msg = "no hello within the timeout";
                fail(io, None, ErrorCode::NotAuthenticated, msg).await;
                return Err(Some(ErrorCode::NotAuthenticated));
            }
            Ok(Inbound::Closed) => return Err(None),
            Ok(Inbound::TooLarge) => {
                let msg = "frame over the size limit";
                fail(io, None, ErrorCode::FrameTooLarge, msg).await;
                return Err(Some(ErrorCode::FrameTooLarge));
            }
            Ok(Inbound::Invalid(code, what)) => {
                fail(io, None, code, what).await;
                return Err(Some(code));
            }
            Ok(Inbound::Frame(b)) => b,
        };
        if let Some((rid, ticket)) = hello(io, &bytes).await {
            return redeem(app, io, rid, &ticket).await;
        }
    }
}

/// The ticket of a `hello` frame; anything else is answered with an error
/// (the client may try again until the deadline).
async fn hello<T: Transport>(io: &mut T, bytes: &[u8]) -> Option<(Option<u64>, String)> {
    let frame = match decode_client(bytes) {
        Ok(f) => f,
        Err(e) => {
            crate::metrics::meters().bad_frames.increment(1);
            let f = ServerFrame::error(e.rid, e.code, e.message, false);
            let _ = send_now(io, encoded(f)).await;
            return None;
        }
    };
    let ClientOp::Hello { ticket } = frame.op else {
        let msg = "send hello with a ticket from POST /v1/connect first";
        let f = ServerFrame::error(frame.rid, ErrorCode::NotAuthenticated, msg, false);
        let _ = send_now(io, encoded(f)).await;
        return None;
    };
    Some((frame.rid, ticket))
}

/// Takes the one-time ticket (a failure closes the connection) and reads
/// the device's settings.
async fn redeem<T: Transport>(
    app: &App,
    io: &mut T,
    rid: Option<u64>,
    ticket: &str,
) -> Result<Handshake, Option<ErrorCode>> {
    let started = std::time::Instant::now();
    let taken = app.state.ticket_take(ticket).await;
    crate::metrics::meters()
        .stage_auth
        .record(started.elapsed().as_secs_f64());
    let claims = match taken {
        Ok(Some(c)) => c,
        Ok(None) => {
            let msg = "ticket unknown, used or expired";
            fail(io, rid, ErrorCode::BadTicket, msg).await;
            return Err(Some(ErrorCode::BadTicket));
        }
        Err(e) => {
            fail(io, rid, ErrorCode::Unavailable, &e.to_string()).await;
            return Err(Some(ErrorCode::Unavailable));
        }
    };
    let settings = app
        .store
        .accounts()
        .get_settings(claims.user, Some(&claims.device))
        .await
        .unwrap_or_default();
    Ok(Handshake {
        user: claims.user,
        device: claims.device,
        settings,
    })
}
