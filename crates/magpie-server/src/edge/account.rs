//! Accounts and sessions: register, login, refresh, settings, connect.

use super::extract::{ApiJson, ApiQuery, AuthUser};
use super::guarded::ClientIp;
use crate::app::App;
use crate::auth::{new_family, random_token, refresh_family, token_hash};
use crate::error::{Result, ServerError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use magpie_core::{ClientSettings, DeviceId, Transport, UserId, now_ms};
use magpie_proto::ErrorCode;
use magpie_proto::http::{
    CaptchaChallenge, ConnectRequest, ConnectResponse, LoginRequest, RefreshRequest,
    RegisterRequest, Tokens, UserCreated,
};
use magpie_store::{RefreshUse, TicketClaims};
use serde::Deserialize;

fn check_credentials(username: &str, password: &str) -> Result<()> {
    let ok_name = (3..=32).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok_name {
        return Err(ServerError::bad_field(
            "username: 3 to 32 characters of [A-Za-z0-9._-]",
        ));
    }
    if !(8..=256).contains(&password.len()) {
        return Err(ServerError::bad_field("password: 8 to 256 bytes"));
    }
    Ok(())
}

/// Creates a user (shared by the public and the internal API).
pub async fn create_user(app: &App, username: &str, password: &str) -> Result<UserCreated> {
    check_credentials(username, password)?;
    let a = app.clone();
    let pw = password.to_string();
    let hash = app
        .auth
        .hashing(move || a.auth.hash_password(&pw))
        .await??;
    let user = app.store.accounts().create_user(username, &hash).await?;
    app.users.created(user.id);
    Ok(UserCreated {
        user_id: user.id,
        username: user.username,
    })
}

pub async fn register(
    State(app): State<App>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserCreated>)> {
    Ok((
        StatusCode::CREATED,
        Json(create_user(&app, &req.username, &req.password).await?),
    ))
}

/// Issues an access token and a refresh token for a user's device: of a
/// new family (a login), or of the family of the token it replaces (a
/// refresh), which a replay revokes as a whole (`auth::refresh_family`).
pub async fn issue_tokens(
    app: &App,
    user: UserId,
    device: DeviceId,
    family: Option<&str>,
) -> Result<Tokens> {
    let access_token = app.auth.issue_access(user, &device)?;
    let family = family.map_or_else(new_family, str::to_string);
    let refresh_token = format!("{family}.{}", random_token(32));
    let expires = now_ms() + (app.cfg.auth.refresh_ttl_secs * 1000) as i64;
    app.store
        .accounts()
        .put_refresh(&token_hash(&refresh_token), &family, user, &device, expires)
        .await?;
    Ok(Tokens {
        user_id: user,
        device,
        access_token,
        expires_in: app.cfg.auth.access_ttl_secs,
        refresh_token,
    })
}

/// A login, behind the login guard (`guard/login.rs`): locked out or
/// without a needed captcha it is refused before any hash is computed;
/// a wrong password counts against the account and the address.
pub async fn login(
    State(app): State<App>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<Tokens>> {
    let bad = || {
        ServerError::Unauthenticated(
            ErrorCode::BadCredentials,
            "wrong username or password".into(),
        )
    };
    let guard = &app.guard.login;
    // Allow-listed addresses and trusted proxies are counted by account only.
    let counted = (!app.guard.exempt(ip)).then_some(ip);
    if let Err(e) = guard
        .before(&req.username, counted, req.captcha.as_ref())
        .await
    {
        crate::metrics::meters().login_failures.increment(1);
        return Err(e);
    }
    let username = req.username.clone();
    let user = app.store.accounts().user_by_name(&req.username).await?;
    // An unknown username costs the same hash as a wrong password, so the
    // answer time does not tell which usernames exist.
    let a = app.clone();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = app
        .auth
        .hashing(move || {
            let ok = a.auth.verify_password(
                &req.password,
                hash.as_deref().unwrap_or(a.auth.dummy_hash()),
            );
            ok && hash.is_some()
        })
        .await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            crate::metrics::meters().login_failures.increment(1);
            tracing::info!(target: "magpie::guard", %ip, "failed login");
            guard.failed(&username, counted).await?;
            return Err(bad());
        }
    };
    guard.succeeded(&username).await?;
    let device = req
        .device
        .unwrap_or_else(|| DeviceId::new("default").expect("valid device id"));
    Ok(Json(issue_tokens(&app, user.id, device, None).await?))
}

/// A captcha to solve before the next login (`guard/login.rs`).
pub async fn captcha(State(app): State<App>) -> Result<Json<CaptchaChallenge>> {
    Ok(Json(app.guard.login.challenge().await?))
}

/// Exchanges a refresh token (single use) for a new pair of the same
/// family. A token used before is a replay (a stolen copy, or a client that
/// lost the answer of its first use): refused, and every token of its
/// family revoked, so whoever holds the newer one must log in again.
pub async fn refresh(
    State(app): State<App>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>> {
    let token = &req.refresh_token;
    let family = refresh_family(token);
    let used = app
        .store
        .accounts()
        .use_refresh(&token_hash(token), family)
        .await?;
    match used {
        RefreshUse::Fresh {
            user,
            device,
            expires_at,
        } if expires_at > now_ms() => Ok(Json(
            issue_tokens(&app, user, device, Some(family).filter(|f| !f.is_empty())).await?,
        )),
        RefreshUse::Reused { user, device } => {
            tracing::warn!(user = %user, device = %device, "refresh token replayed: its family is revoked");
            Err(ServerError::unauthorized(
                "refresh token used before: every token of this login is revoked",
            ))
        }
        _ => Err(ServerError::unauthorized(
            "refresh token unknown, used or expired",
        )),
    }
}

#[derive(Deserialize)]
pub struct SettingsScope {
    #[serde(default)]
    scope: Option<String>,
}

pub async fn get_settings(
    State(app): State<App>,
    AuthUser(p): AuthUser,
) -> Result<Json<ClientSettings>> {
    Ok(Json(
        app.store
            .accounts()
            .get_settings(p.user, Some(&p.device))
            .await?,
    ))
}

pub async fn put_settings(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    ApiQuery(q): ApiQuery<SettingsScope>,
    ApiJson(s): ApiJson<ClientSettings>,
) -> Result<Json<ClientSettings>> {
    let device = match q.scope.as_deref() {
        Some("user") => None,
        None | Some("device") => Some(&p.device),
        Some(other) => {
            return Err(ServerError::bad_field(format!(
                "scope: {other:?} is not user or device"
            )));
        }
    };
    app.store
        .accounts()
        .put_settings(p.user, device, &s)
        .await?;
    // Connected sessions hold their settings: tell them to read them again
    // (a user default may change every device's).
    app.delivery.settings_changed(p.user).await;
    Ok(Json(
        app.store
            .accounts()
            .get_settings(p.user, Some(&p.device))
            .await?,
    ))
}

/// Picks the transport and address and issues a one-time ticket (one node
/// today; cluster mode chooses among nodes here).
pub async fn connect(
    State(app): State<App>,
    AuthUser(p): AuthUser,
    body: axum::body::Bytes,
) -> Result<Json<ConnectResponse>> {
    // The body is optional: an empty one means "use my settings".
    let req: ConnectRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ConnectRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ServerError::BadRequest(ErrorCode::BadField, e.to_string()))?
    };
    let settings = app
        .store
        .accounts()
        .get_settings(p.user, Some(&p.device))
        .await?;
    let wanted = req.transport.unwrap_or(settings.transport);
    let (transport, address, node) = place(&app, p.user, wanted).await;
    let ticket = random_token(24);
    let ttl = app.cfg.auth.ticket_ttl_secs;
    app.state
        .ticket_put(
            &ticket,
            &TicketClaims {
                user: p.user,
                device: p.device,
            },
            ttl * 1000,
        )
        .await?;
    Ok(Json(ConnectResponse {
        transport,
        address,
        ticket,
        expires_in: ttl,
        node,
    }))
}

/// Picks the node and address for a new connection: from the registry
/// (least loaded, canary share), else this node. A transport no node
/// serves falls back to WebSocket.
async fn place(
    app: &App,
    user: magpie_core::UserId,
    wanted: Transport,
) -> (Transport, String, String) {
    use crate::cluster::placement::choose;
    let nodes = app.state.nodes().await.unwrap_or_default();
    let pct = app.cfg.cluster.canary_percent;
    for transport in [wanted, Transport::Ws] {
        if let Some(n) = choose(&nodes, user, transport, pct) {
            let address = if transport == Transport::Ws {
                n.ws_url.clone()
            } else {
                n.tcp_addr.clone()
            };
            return (transport, address, n.node.clone());
        }
    }
    match app.tcp_addr.clone().filter(|_| wanted == Transport::Tcp) {
        Some(addr) => (Transport::Tcp, addr, app.cfg.node.clone()),
        None => (Transport::Ws, app.ws_url.clone(), app.cfg.node.clone()),
    }
}
