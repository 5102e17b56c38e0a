//! The edge role: the HTTP API (public `/v1`, operations `/healthz` and
//! `/metrics`) and the WebSocket upgrade route on the public listener, and
//! the internal API (`/internal/v1`) on a router of its own. With `edge`,
//! the web chat client's files at `/`; the operator console at `/console`
//! on the internal listener (`web.rs`, docs/web.md).
//!
//! Invariant: the public router never routes `/internal/v1/*` (it answers
//! `not_found` like any unknown path); the internal routes are only served
//! by [`internal_router`], bound by `crate::start` to `internal.listen`.

mod account;
mod admin;
mod close;
mod extract;
mod feeds;
mod groups;
pub mod guarded;
mod internal;
mod messages;
mod observe;
pub(crate) mod search;
mod users;
mod web;

use crate::app::App;
use crate::error::ServerError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use magpie_proto::http::Health;

async fn healthz(State(app): State<App>) -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        node: app.cfg.node.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub(super) async fn metrics_route() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

async fn not_found() -> ServerError {
    ServerError::NotFound("no such route".into())
}

/// The HTTP routes of the roles this node runs: `/healthz` and `/metrics`
/// always, the API with `edge`, the WebSocket endpoint with `conn`.
pub fn router(app: App) -> Router {
    let limit = app.cfg.limits.max_frame_bytes;
    let roles = &app.cfg.cluster;
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_route));
    if roles.has("conn") {
        r = r.route("/v1/ws", get(crate::conn::ws::upgrade));
    }
    if roles.has("edge") {
        r = r
            .route("/v1/auth/register", post(account::register))
            .route("/v1/auth/login", post(account::login))
            .route("/v1/auth/captcha", get(account::captcha))
            .route("/v1/auth/refresh", post(account::refresh))
            .route(
                "/v1/settings",
                get(account::get_settings).put(account::put_settings),
            )
            .route("/v1/connect", post(account::connect))
            .route("/v1/messages", post(messages::send))
            .route("/v1/chain", get(messages::chain))
            .route("/v1/sync", post(messages::sync))
            .route("/v1/unread", get(messages::unread))
            .route("/v1/conversations/{conv}/messages", get(messages::history))
            .route("/v1/conversations/{conv}/read", post(messages::read))
            .route("/v1/conversations/{conv}/mute", put(messages::mute))
            .route("/v1/groups", post(groups::create).get(groups::list))
            .route(
                "/v1/groups/{group}",
                get(groups::get_one)
                    .patch(groups::rename)
                    .delete(groups::dissolve),
            )
            .route("/v1/groups/{group}/owner", put(groups::transfer_owner))
            .route(
                "/v1/groups/{group}/members",
                post(groups::add_members).get(groups::members),
            )
            .route(
                "/v1/groups/{group}/members/{user}",
                axum::routing::patch(groups::set_member).delete(groups::remove_member),
            )
            .route(
                "/v1/groups/{group}/messages/{seq}/read_by",
                get(groups::read_by),
            )
            .route(
                "/v1/follows/{user}",
                post(feeds::follow).delete(feeds::unfollow),
            )
            .route("/v1/blocks", get(feeds::blocks))
            .route(
                "/v1/blocks/{user}",
                post(feeds::block).delete(feeds::unblock),
            )
            .route("/v1/users", get(users::by_name))
            .route("/v1/users/lookup", post(users::lookup))
            .route("/v1/profile", put(users::set_profile))
            .route("/v1/users/{user}", get(users::by_id))
            .route("/v1/users/{user}/followers", get(feeds::followers))
            .route("/v1/users/{user}/following", get(feeds::following))
            .route("/v1/users/{user}/follows", get(feeds::counts))
            .route("/v1/users/{user}/posts", get(feeds::user_posts))
            .route("/v1/posts", post(feeds::post))
            .route(
                "/v1/posts/{post}",
                axum::routing::delete(feeds::delete_post),
            )
            .route("/v1/feed", get(feeds::home))
            .route("/v1/search", get(search::search));
        if app.cfg.http.web_client {
            r = web::routes(r);
        }
    }
    let r = r.fallback(not_found).layer(DefaultBodyLimit::max(limit));
    close::guarded(r, &app, true).with_state(app)
}

/// The internal API's routes alone (no `/healthz`, `/metrics` or public
/// API): what the internal listener serves, authorised by the service key.
pub fn internal_router(app: App) -> Router {
    let limit = app.cfg.limits.max_frame_bytes;
    let r = Router::new()
        .route("/internal/v1/users", post(internal::create))
        .route("/internal/v1/users/{user}/tokens", post(internal::token))
        .route("/internal/v1/follows", post(internal::follows))
        .route("/internal/v1/messages", post(internal::send))
        .route(
            "/internal/v1/bans",
            get(admin::list).post(admin::add).delete(admin::remove),
        )
        .route("/internal/v1/trace/{id}", get(observe::trace))
        .route("/internal/v1/nodes", get(observe::nodes))
        .route("/internal/v1/metrics", get(observe::metrics))
        .route("/internal/v1/alarms", get(observe::alarms))
        .route("/internal/v1/cluster", get(observe::cluster))
        .route(
            "/internal/v1/drain",
            get(observe::drain_get).put(observe::drain_put),
        )
        .route("/internal/v1/workers", get(observe::workers_get))
        .route("/internal/v1/workers/{group}", put(observe::workers_put))
        .route(
            "/internal/v1/log",
            get(observe::log_get).put(observe::log_put),
        )
        .route("/v1/decisions", get(admin::decisions))
        .route("/v1/decisions/stream", get(admin::stream));
    let r = web::console_routes(r)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit));
    close::guarded(r, &app, false).with_state(app)
}
