//! Request extractors: the authenticated user, the internal service
//! credential, and a JSON body and a query string whose rejections use our
//! error codes.

use crate::app::App;
use crate::auth::{Principal, bearer};
use crate::edge::guarded::SeenUser;
use crate::error::ServerError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use magpie_proto::ErrorCode;
use serde::de::DeserializeOwned;

/// A valid access token; anything else is 401 with `unauthorized` or `token_expired`.
pub struct AuthUser(pub Principal);

impl FromRequestParts<App> for AuthUser {
    type Rejection = ServerError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ServerError> {
        let header = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let started = std::time::Instant::now();
        let token = bearer(header)?;
        let p = app.auth.verify_access(token)?;
        // A token signed for a user the store does not know (a key reused
        // across deployments, a database restored to before the user) is
        // no credential (cached: one store read per user and node).
        if !app.users.exists(p.user).await? {
            return Err(ServerError::unauthorized("invalid access token"));
        }
        crate::metrics::meters()
            .stage_auth
            .record(started.elapsed().as_secs_f64());
        if let Some(seen) = parts.extensions.get::<SeenUser>() {
            seen.set(p.user);
        }
        app.guard.admit_user(p.user)?;
        Ok(AuthUser(p))
    }
}

/// The internal API's service credential. A user's access token is refused.
pub struct Service;

impl FromRequestParts<App> for Service {
    type Rejection = ServerError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ServerError> {
        let key = &app.cfg.internal.service_key;
        if key.is_empty() {
            return Err(ServerError::NotFound("the internal API is disabled".into()));
        }
        let header = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let token = bearer(header)?;
        if constant_time_eq(token.as_bytes(), key.as_bytes()) {
            Ok(Service)
        } else if app.auth.verify_access(token).is_ok() {
            Err(ServerError::Forbidden(
                "user tokens are not accepted on the internal API".into(),
            ))
        } else {
            Err(ServerError::unauthorized("invalid service credential"))
        }
    }
}

/// A positive id from a path or query segment; `what` names it in the
/// `bad_field` refusal.
pub fn positive_id(what: &str, raw: &str) -> Result<i64, ServerError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ServerError::bad_field(format!("{what}: a positive integer, not {raw:?}")))
}

/// A user id from a path segment.
pub fn user_id(raw: &str) -> Result<magpie_core::UserId, ServerError> {
    positive_id("user id", raw).map(magpie_core::UserId)
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `ApiJson` for a request whose fields are all optional: an empty body,
/// with or without a content type, is `T::default()`. Emptiness is read
/// from the body itself, not its headers (an HTTP/2 body has neither
/// `Content-Length` nor `Transfer-Encoding`).
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ServerError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ServerError> {
        let (parts, body) = req.into_parts();
        // `Bytes` honours the router's body limit, like `Json` does.
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(|e| ServerError::BadRequest(ErrorCode::FrameTooLarge, e.body_text()))?;
        if bytes.is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(v)| OptionalJson(v))
    }
}

/// `axum::extract::Query` with a rejection (a missing or malformed
/// parameter) answered `bad_field` in the error body like every other.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ServerError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServerError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(ServerError::bad_field(rej.body_text())),
        }
    }
}

/// `axum::Json` with rejections mapped to `bad_json`, `bad_field`,
/// `frame_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ServerError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ServerError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(match rej {
                JsonRejection::JsonDataError(e) => {
                    ServerError::BadRequest(ErrorCode::BadField, e.body_text())
                }
                JsonRejection::JsonSyntaxError(e) => {
                    ServerError::BadRequest(ErrorCode::BadJson, e.body_text())
                }
                JsonRejection::MissingJsonContentType(e) => {
                    ServerError::BadRequest(ErrorCode::BadJson, e.body_text())
                }
                JsonRejection::BytesRejection(e) => {
                    ServerError::BadRequest(ErrorCode::FrameTooLarge, e.body_text())
                }
                other => ServerError::BadRequest(ErrorCode::BadJson, other.body_text()),
            }),
        }
    }
}
