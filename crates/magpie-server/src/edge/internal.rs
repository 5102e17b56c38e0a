//! The internal API for the company's own services (internal callers that
//! bypass the gateway): `/internal/v1/*`, authorised by the service
//! credential only, and served only on `internal.listen` (loopback by
//! default), never on the public HTTP address.

use super::account::{create_user, issue_tokens};
use super::extract::{ApiJson, Service};
use crate::app::App;
use crate::error::{Result, ServerError};
use crate::services::SendInput;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use magpie_core::{DeviceId, UserId};
use magpie_proto::http::{
    InternalFollowsRequest, InternalFollowsResponse, InternalSendRequest, InternalTokenRequest,
    RegisterRequest, SendResult, Tokens, UserCreated,
};

pub async fn create(
    State(app): State<App>,
    _s: Service,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserCreated>)> {
    Ok((
        StatusCode::CREATED,
        Json(create_user(&app, &req.username, &req.password).await?),
    ))
}

pub async fn token(
    State(app): State<App>,
    _s: Service,
    Path(user): Path<i64>,
    ApiJson(req): ApiJson<InternalTokenRequest>,
) -> Result<Json<Tokens>> {
    let user = UserId(user);
    if user == UserId::SYSTEM || app.store.accounts().user_by_id(user).await?.is_none() {
        return Err(ServerError::NotFound(format!("no user {user}")));
    }
    let device = req
        .device
        .unwrap_or_else(|| DeviceId::new("service").expect("valid device id"));
    Ok(Json(issue_tokens(&app, user, device, None).await?))
}

/// Sends as a user, or as the system (user 0) when `from` is absent.
pub async fn send(
    State(app): State<App>,
    _s: Service,
    ApiJson(req): ApiJson<InternalSendRequest>,
) -> Result<Json<SendResult>> {
    let from = req.from.unwrap_or(UserId::SYSTEM);
    if !app.users.exists(from).await? {
        return Err(ServerError::NotFound(format!("no user {from}")));
    }
    let cmid = req.cmid;
    let input = SendInput {
        to: req.to,
        cmid,
        body: req.body,
        persistence: req.persistence,
        group: None,
        chain: None,
        trace: None,
        sample: false,
        refs: None,
    };
    let accepted = app.messaging.send_one(from, None, input).await?;
    Ok(Json(SendResult::new(cmid, accepted)))
}

/// Follows imported in bulk (`Feeds::import_followers`).
pub async fn follows(
    State(app): State<App>,
    _s: Service,
    ApiJson(req): ApiJson<InternalFollowsRequest>,
) -> Result<Json<InternalFollowsResponse>> {
    let out = app
        .feeds
        .import_followers(req.followee, &req.followers, req.read)
        .await?;
    Ok(Json(InternalFollowsResponse {
        added: out.added,
        existing: out.existing,
        refused: out.refused,
    }))
}
