//! Groups over HTTP: create, list, rename, dissolve, members (add, list,
//! change, remove or leave) and read-by lists. The rules live in
//! `logic::groups`; this file only maps requests and answers.

use super::extract::{ApiJson, AuthUser, positive_id, user_id};
use crate::app::App;
use crate::error::{Result, ServerError};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use magpie_core::{GroupId, GroupInfo, MemberInfo, Seq, UserId};
use magpie_proto::http::{
    AddMembersRequest, AddMembersResponse, CreateGroupRequest, GroupList, MemberPatch, MembersPage,
    OwnerRequest, ReadByPage, RenameGroupRequest,
};
use serde::Deserialize;

/// An id in a path: a positive integer, else `bad_field` (a well-formed
/// id that names nothing is `not_found`, later).
fn group_id(raw: &str) -> Result<GroupId> {
    positive_id("group id", raw).map(GroupId)
}

pub async fn create(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiJson(req): ApiJson<CreateGroupRequest>,
) -> Result<(StatusCode, Json<GroupInfo>)> {
    let g = app
        .groups
        .create_group(p.user, &req.name, &req.members, req.history)
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

pub async fn list(State(app): State<App>, AuthUser(p): AuthUser) -> Result<Json<GroupList>> {
    Ok(Json(GroupList {
        groups: app.groups.my_groups(p.user).await?,
    }))
}

pub async fn get_one(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(g): Path<String>,
) -> Result<Json<GroupInfo>> {
    Ok(Json(app.groups.group_info(p.user, group_id(&g)?).await?))
}

pub async fn rename(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(g): Path<String>,
    ApiJson(req): ApiJson<RenameGroupRequest>,
) -> Result<Json<GroupInfo>> {
    Ok(Json(
        app.groups
            .rename_group(p.user, group_id(&g)?, &req.name)
            .await?,
    ))
}

pub async fn dissolve(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(g): Path<String>,
) -> Result<StatusCode> {
    app.groups.dissolve_group(p.user, group_id(&g)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_members(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(g): Path<String>,
    ApiJson(req): ApiJson<AddMembersRequest>,
) -> Result<Json<AddMembersResponse>> {
    let added = app
        .groups
        .add_members(p.user, group_id(&g)?, &req.users)
        .await?;
    Ok(Json(AddMembersResponse { added }))
}

#[derive(Deserialize)]
pub struct PageQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

pub async fn members(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(g): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MembersPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, app.cfg.limits.max_page);
    let after = UserId(q.after.unwrap_or(0));
    let members = app
        .groups
        .group_members(p.user, group_id(&g)?, after, Some(limit))
        .await?;
    let next = (members.len() == limit).then(|| members[members.len() - 1].user);
    Ok(Json(MembersPage { members, next }))
}

pub async fn set_member(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path((g, user)): Path<(String, String)>,
    ApiJson(req): ApiJson<MemberPatch>,
) -> Result<Json<MemberInfo>> {
    let (g, user) = (group_id(&g)?, user_id(&user)?);
    Ok(Json(
        app.groups
            .set_member(p.user, g, user, req.role, req.muted)
            .await?,
    ))
}

/// The owner hands the group to another member and becomes an admin.
pub async fn transfer_owner(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(g): Path<String>,
    ApiJson(req): ApiJson<OwnerRequest>,
) -> Result<Json<GroupInfo>> {
    let g = group_id(&g)?;
    Ok(Json(app.groups.transfer_owner(p.user, g, req.user).await?))
}

pub async fn remove_member(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path((g, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    app.groups
        .remove_member(p.user, group_id(&g)?, user_id(&user)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ReadByQuery {
    /// `read` (default) or `unread`.
    state: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

pub async fn read_by(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path((g, seq)): Path<(String, String)>,
    Query(q): Query<ReadByQuery>,
) -> Result<Json<ReadByPage>> {
    let g = group_id(&g)?;
    let seq: Seq = seq
        .parse()
        .map_err(|_| ServerError::NotFound(format!("no message {seq}")))?;
    let read = match q.state.as_deref() {
        None | Some("read") => true,
        Some("unread") => false,
        Some(other) => {
            return Err(ServerError::bad_field(format!(
                "state: read or unread, not {other:?}"
            )));
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, app.cfg.limits.max_page);
    let after = UserId(q.after.unwrap_or(0));
    let page = app
        .groups
        .read_by(p.user, g, seq, read, after, Some(limit))
        .await?;
    let next = (page.users.len() == limit).then(|| page.users[page.users.len() - 1]);
    Ok(Json(ReadByPage {
        seq,
        read: page.read,
        unread: page.unread,
        users: page.users,
        next,
    }))
}
