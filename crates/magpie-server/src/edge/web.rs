//! The web chat client (docs/web.md): static files built into the
//! binary, so `magpie serve` is all a user runs before opening a browser.
//! The page speaks only the public API and socket protocol
//! (docs/protocol.md); its WebSocket is allowed as same-origin
//! (`conn/ws.rs`), whatever `http.allowed_origins` says.
//!
//! The operator console (`/console`) is served the same way, but on the
//! internal listener only (`internal.listen`, with the internal API it
//! calls), never on the public address.
//!
//! Invariant: nothing here reads state or calls a service; these routes
//! answer the same bytes to everyone, before any authentication.

use crate::app::App;
use crate::error::ServerError;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../../web/index.html");

/// One stylesheet for the client and the console.
const APP_CSS: (&str, &str, &str) = (
    "app.css",
    "text/css; charset=utf-8",
    include_str!("../../web/app.css"),
);

/// The page's files under `/web/`: name, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    APP_CSS,
    ("app.js", JS, include_str!("../../web/app.js")),
    ("api.js", JS, include_str!("../../web/api.js")),
    ("socket.js", JS, include_str!("../../web/socket.js")),
    ("view.js", JS, include_str!("../../web/view.js")),
    ("search.js", JS, include_str!("../../web/search.js")),
    ("state.js", JS, include_str!("../../web/state.js")),
    ("compose.js", JS, include_str!("../../web/compose.js")),
    ("feed.js", JS, include_str!("../../web/feed.js")),
    ("members.js", JS, include_str!("../../web/members.js")),
    ("profile.js", JS, include_str!("../../web/profile.js")),
    ("settings.js", JS, include_str!("../../web/settings.js")),
    ("blocks.js", JS, include_str!("../../web/blocks.js")),
    ("mute.js", JS, include_str!("../../web/mute.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

const CONSOLE_HTML: &str = include_str!("../../web/console.html");

/// The console's files under `/console/` (its stylesheet is the client's).
const CONSOLE_FILES: &[(&str, &str, &str)] = &[
    APP_CSS,
    ("console.js", JS, include_str!("../../web/console.js")),
    (
        "magpie-dashboard.json",
        "application/json",
        include_str!("../../../../ops/grafana/magpie-dashboard.json"),
    ),
];

/// Scripts and styles only from this origin, no inline code, no framing;
/// sockets and API calls to any node (a cluster's `connect` may place the
/// page on another node, docs/deploy.md).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: https:; connect-src 'self' ws: wss: http: https:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Built into the binary: a new version is a new binary, so revalidate
    // on every load rather than cache stale code for a day.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn index() -> Response {
    file(INDEX_HTML, "text/html; charset=utf-8")
}

fn lookup(files: &[(&str, &'static str, &'static str)], name: &str) -> Response {
    match files.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => file(body, content_type),
        None => ServerError::NotFound("no such file".into()).into_response(),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    lookup(FILES, &name)
}

async fn console() -> Response {
    file(CONSOLE_HTML, "text/html; charset=utf-8")
}

async fn console_asset(Path(name): Path<String>) -> Response {
    lookup(CONSOLE_FILES, &name)
}

/// `/` and the page's files under `/web/`.
pub fn routes(r: Router<App>) -> Router<App> {
    r.route("/", get(index)).route("/web/{name}", get(asset))
}

/// The operator console on the internal listener: `/console` and its files
/// under `/console/`. The page asks for the service key and sends it with
/// every call of the internal API it makes; the files themselves hold no
/// secret.
pub fn console_routes(r: Router<App>) -> Router<App> {
    r.route("/console", get(console))
        .route("/console/{name}", get(console_asset))
}
