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

/// A request without `Origin` is not a browser's; a browser's is allowed
/// when its origin is on `http.allowed_origins` or is this very address (a
/// page this node served, such as the web client at `/`: its origin's
/// authority equals the `Host` the upgrade was sent to). docs/protocol.md §2.1.
fn origin_allowed(app: &App, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    same_origin(origin, host)
        || app
            .cfg
            .http
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

/// `http://h:p` or `https://h:p` whose `h:p` is the request's `Host`.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(a), Some(h)) => !a.is_empty() && a.eq_ignore_ascii_case(h),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn an_origin_is_the_same_only_with_the_hosts_authority() {
        assert!(same_origin("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(same_origin("https://Chat.Example", Some("chat.example")));
        assert!(!same_origin(
            "http://127.0.0.1:8080",
            Some("127.0.0.1:8081")
        ));
        assert!(!same_origin("http://evil.example", Some("chat.example")));
        assert!(!same_origin("null", Some("null")));
        assert!(!same_origin("http://", Some("")));
        assert!(!same_origin("http://a", None));
    }
}
