//! Messaging over HTTP: send, sync, history, unread, read. The same logic
//! as the socket operations.

use super::extract::{ApiJson, AuthUser, OptionalJson};
use crate::app::App;
use crate::error::{Result, ServerError};
use crate::services::SendInput;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use magpie_core::{ConvId, MessageMeta, Seq, TraceContext};
use magpie_proto::http::{
    ChainResponse, HistoryPage, MuteRequest, ReadRequest, ReadResponse, SendRequest, SendResult,
    SyncRequest, SyncResponse, UnreadResponse,
};
use serde::Deserialize;

pub async fn send(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<Json<SendResult>> {
    let cmid = req.cmid;
    app.guard.admit_sends(p.user, 1)?;
    let input = SendInput {
        to: req.to,
        cmid,
        body: req.body,
        persistence: req.persistence,
        group: req.group,
        chain: req.chain,
        // W3C Trace Context: one that is not valid starts a new trace.
        trace: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse),
        sample: req.sample,
        refs: MessageMeta::with_mentions(
            MessageMeta::references(req.reply_to, req.edit, req.recall),
            req.mentions,
            req.mention_all,
        ),
    };
    let accepted = app
        .messaging
        .send_one(p.user, Some(&p.device), input)
        .await?;
    app.presence
        .conversation_started(&accepted.conv, accepted.seq);
    Ok(Json(SendResult::new(cmid, accepted)))
}

/// `GET /v1/chain`: the chain id the caller's device (the token's) must
/// put on its next chained send, a new chain started if there is none.
pub async fn chain(State(app): State<App>, AuthUser(p): AuthUser) -> Result<Json<ChainResponse>> {
    let next = app.messaging.chain_next(p.user, &p.device).await?;
    Ok(Json(ChainResponse { next }))
}

pub async fn sync(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    OptionalJson(req): OptionalJson<SyncRequest>,
) -> Result<Json<SyncResponse>> {
    Ok(Json(SyncResponse {
        convs: app.messaging.sync(p.user, &req.convs, req.limit).await?,
    }))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<Seq>,
    after: Option<Seq>,
    limit: Option<usize>,
}

fn parse_conv(raw: &str) -> Result<ConvId> {
    // Unknown and malformed conversations answer alike: not found.
    ConvId::parse(raw).map_err(|_| ServerError::NotFound(format!("no conversation {raw}")))
}

pub async fn history(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(conv): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>> {
    let conv = parse_conv(&conv)?;
    Ok(Json(
        app.messaging
            .history(p.user, &conv, q.before, q.after, q.limit)
            .await?,
    ))
}

pub async fn unread(State(app): State<App>, AuthUser(p): AuthUser) -> Result<Json<UnreadResponse>> {
    let settings = app
        .store
        .accounts()
        .get_settings(p.user, Some(&p.device))
        .await?;
    let (total, convs) = app.messaging.unread(p.user, settings.unread_mode).await?;
    Ok(Json(UnreadResponse { total, convs }))
}

pub async fn read(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(conv): Path<String>,
    ApiJson(req): ApiJson<ReadRequest>,
) -> Result<Json<ReadResponse>> {
    let conv = parse_conv(&conv)?;
    let seq = app
        .messaging
        .read(p.user, &p.device, &conv, req.seq)
        .await?;
    Ok(Json(ReadResponse { conv, seq }))
}

/// `PUT /v1/conversations/{conv}/mute`: the caller's mute of `conv`'s
/// notifications (docs/protocol.md §5.11).
pub async fn mute(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    Path(conv): Path<String>,
    ApiJson(req): ApiJson<MuteRequest>,
) -> Result<Json<MuteRequest>> {
    let conv = parse_conv(&conv)?;
    app.messaging.set_muted(p.user, &conv, req.muted).await?;
    Ok(Json(req))
}
