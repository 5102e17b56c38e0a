//! Who a user is, over HTTP (docs/protocol.md §3.18): by exact username
//! (`GET /v1/users?name=…`) or by id (`GET /v1/users/{id}`). The rules
//! live in `services/users.rs`; each look-up takes a token of the caller's
//! `guard.rates.lookups_user` bucket, and a miss is a `not_found` the
//! guard counts (`lookups` rule).

use super::extract::{ApiQuery, AuthUser};
use crate::app::App;
use crate::error::Result;
use axum::Json;
use axum::extract::{Path, State};
use magpie_proto::http::UserProfile;
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
