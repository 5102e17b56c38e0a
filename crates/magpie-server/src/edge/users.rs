//! Who a user is, over HTTP (docs/protocol.md §3.18): by exact username
//! (`GET /v1/users?name=…`), by id (`GET /v1/users/{id}`) or by up to 100
//! ids (`POST /v1/users/lookup`, one token per id); and one's own profile
//! (`PUT /v1/profile`). The rules
//! live in `services/users.rs`; each look-up takes a token of the caller's
//! `guard.rates.lookups_user` bucket, and a miss is a `not_found` the
//! guard counts (`lookups` rule).

use super::extract::{ApiJson, ApiQuery, AuthUser};
use crate::app::App;
use crate::error::{Result, ServerError};
use axum::Json;
use axum::extract::{Path, State};
use magpie_proto::http::{ProfileRequest, Profiles, UserProfile, UsersLookup};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct NameQuery {
    name: String,
}

/// `GET /v1/users?name=bob`.
pub async fn by_name(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiQuery(q): ApiQuery<NameQuery>,
) -> Result<Json<UserProfile>> {
    app.guard.limits.lookup(p.user)?;
    Ok(Json(app.users.by_name(&q.name).await?))
}

/// `GET /v1/users/{id}`.
pub async fn by_id(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(raw): Path<String>,
) -> Result<Json<UserProfile>> {
    let user = super::extract::user_id(&raw)?;
    app.guard.limits.lookup(p.user)?;
    Ok(Json(app.users.by_id(user).await?))
}

/// Most ids one `POST /v1/users/lookup` names.
const MAX_LOOKUP: usize = 100;

/// `POST /v1/users/lookup` `{"ids": [..]}`: each id costs a look-up token,
/// as if asked one by one, so a batch finds no more users than single
/// calls would.
pub async fn lookup(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiJson(req): ApiJson<UsersLookup>,
) -> Result<Json<Profiles>> {
    if req.ids.len() > MAX_LOOKUP {
        return Err(ServerError::bad_field(format!("ids: at most {MAX_LOOKUP}")));
    }
    for _ in &req.ids {
        app.guard.limits.lookup(p.user)?;
    }
    let users = app.users.by_ids(&req.ids).await?;
    Ok(Json(Profiles { users }))
}

/// `PUT /v1/profile`: the caller's display name and avatar.
pub async fn set_profile(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiJson(req): ApiJson<ProfileRequest>,
) -> Result<Json<UserProfile>> {
    let profile = app
        .users
        .set_profile(p.user, &req.display_name, &req.avatar_url)
        .await?;
    Ok(Json(profile))
}
