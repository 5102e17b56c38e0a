//! Follow feeds over HTTP: follows, blocks, posts, an author's posts and
//! the home feed (docs/protocol.md §3.16). The rules live in
//! `services/feeds`; this file only maps requests and answers.

use super::extract::{ApiJson, ApiQuery, AuthUser, positive_id, user_id};
use crate::app::App;
use crate::error::Result;
use crate::services::FeedPage;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use magpie_core::{PostId, UserId};
use magpie_proto::http::{
    Changed, FollowCountsBody, PostRequest, PostResponse, PostsPage, UsersPage,
};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct UsersQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
pub struct PostsQuery {
    before: Option<String>,
    limit: Option<usize>,
}

impl PostsQuery {
    fn before(&self) -> Result<Option<PostId>> {
        self.before
            .as_deref()
            .map(|b| positive_id("before", b).map(PostId))
            .transpose()
    }
    fn limit(&self) -> usize {
        self.limit.unwrap_or(crate::services::FEED_PAGE)
    }
}

fn users_page(users: Vec<UserId>, limit: usize) -> Json<UsersPage> {
    let next = (users.len() == limit)
        .then(|| users.last().copied())
        .flatten();
    Json(UsersPage { users, next })
}

fn posts_page(p: FeedPage) -> Json<PostsPage> {
    Json(PostsPage {
        posts: p.posts,
        next: p.next,
    })
}

fn changed(changed: bool) -> (StatusCode, Json<Changed>) {
    let status = if changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(Changed { changed }))
}

pub async fn follow(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(user): Path<String>,
) -> Result<(StatusCode, Json<Changed>)> {
    Ok(changed(app.feeds.follow(p.user, user_id(&user)?).await?))
}

pub async fn unfollow(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(user): Path<String>,
) -> Result<StatusCode> {
    app.feeds.unfollow(p.user, user_id(&user)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn block(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(user): Path<String>,
) -> Result<(StatusCode, Json<Changed>)> {
    Ok(changed(app.feeds.block(p.user, user_id(&user)?).await?))
}

pub async fn unblock(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(user): Path<String>,
) -> Result<StatusCode> {
    app.feeds.unblock(p.user, user_id(&user)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn blocks(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Json<UsersPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, app.cfg.limits.max_page);
    let users = app
        .feeds
        .blocked(p.user, UserId(q.after.unwrap_or(0)), limit)
        .await?;
    Ok(users_page(users, limit))
}

pub async fn followers(
    State(app): State<App>,
    AuthUser(_): AuthUser,
    Path(user): Path<String>,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Json<UsersPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, app.cfg.limits.max_page);
    let after = UserId(q.after.unwrap_or(0));
    let users = app.feeds.followers(user_id(&user)?, after, limit).await?;
    Ok(users_page(users, limit))
}

pub async fn following(
    State(app): State<App>,
    AuthUser(_): AuthUser,
    Path(user): Path<String>,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Json<UsersPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, app.cfg.limits.max_page);
    let after = UserId(q.after.unwrap_or(0));
    let users = app.feeds.following(user_id(&user)?, after, limit).await?;
    Ok(users_page(users, limit))
}

pub async fn counts(
    State(app): State<App>,
    AuthUser(_): AuthUser,
    Path(user): Path<String>,
) -> Result<Json<FollowCountsBody>> {
    let c = app.feeds.counts(user_id(&user)?).await?;
    Ok(Json(FollowCountsBody {
        followers: c.followers,
        following: c.following,
    }))
}

pub async fn post(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiJson(req): ApiJson<PostRequest>,
) -> Result<(StatusCode, Json<PostResponse>)> {
    let out = app.feeds.post(p.user, req.cmid, req.body).await?;
    let status = if out.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = PostResponse {
        post: out.post,
        duplicate: out.duplicate,
    };
    Ok((status, Json(body)))
}

pub async fn delete_post(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(post): Path<String>,
) -> Result<StatusCode> {
    let post = PostId(positive_id("post id", &post)?);
    app.feeds.delete_post(p.user, post).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn user_posts(
    State(app): State<App>,
    AuthUser(_): AuthUser,
    Path(user): Path<String>,
    ApiQuery(q): ApiQuery<PostsQuery>,
) -> Result<Json<PostsPage>> {
    let page = app
        .feeds
        .outbox(user_id(&user)?, q.before()?, q.limit())
        .await?;
    Ok(posts_page(page))
}

pub async fn home(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiQuery(q): ApiQuery<PostsQuery>,
) -> Result<Json<PostsPage>> {
    Ok(posts_page(
        app.feeds.home(p.user, q.before()?, q.limit()).await?,
    ))
}
