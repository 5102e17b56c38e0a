//! The WebSocket endpoint `GET /v1/ws`: checks `Origin` against the
//! allow-list, sets our frame limits (not the library's 64 MiB defaults) and
//! small buffers (idle connections must stay cheap), then runs a session,
//! tracked by `App::sessions` so shutdown can wait for it to end.

use super::session;
use super::transport::Ws;
use crate::app::App;
use crate::edge::guarded::ClientIp;
use crate::error::ServerError;
use axum::Extension;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

fn origin_allowed(app: &App, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    app.cfg
        .http
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

pub async fn upgrade(
    State(app): State<App>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&app, &headers) {
        return ServerError::Forbidden("origin not allowed".into()).into_response();
    }
    let max = app.cfg.limits.max_frame_bytes;
    let sessions = app.sessions.clone();
    // Small buffers, grown only by traffic: idle connections must stay
    // cheap. Frames are written when the session flushes (or this fills).
    ws.read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            sessions.track_future(session::run(app, "ws", ip, Ws::new(socket)))
        })
}
