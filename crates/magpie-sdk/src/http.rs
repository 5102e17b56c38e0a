//! Owns the HTTP side of the protocol: one async method per route, JSON in
//! and out, error bodies turned into `SdkError::Server`, and the session's
//! tokens (refreshed once, transparently, when the server rejects the
//! access token).

use crate::error::{Result, SdkError};
use magpie_core::{ClientSettings, ConvId, DeviceId, Seq, Transport, UserId};
use magpie_proto::ErrorBody;
use magpie_proto::http::{
    CaptchaAnswer, CaptchaChallenge, ConnectRequest, ConnectResponse, Health, HistoryPage,
    LoginRequest, MuteRequest, ReadRequest, ReadResponse, RefreshRequest, RegisterRequest,
    SendRequest, SendResult, SyncRequest, SyncResponse, Tokens, UnreadResponse, UserCreated,
    UserProfile,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Per-request timeout of the underlying HTTP client.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which page of a conversation's history to fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Messages older than this sequence, newest first.
    pub before: Option<Seq>,
    /// Messages newer than this sequence, ascending (ignored when `before` is set).
    pub after: Option<Seq>,
    pub limit: Option<usize>,
}

/// A cheap-to-clone HTTP client; clones share the tokens, so a refresh done by
/// one (e.g. the socket reconnect loop) is seen by all.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<HttpInner>,
}

struct HttpInner {
    base: String,
    http: reqwest::Client,
    tokens: RwLock<Option<Tokens>>,
    /// Serializes refreshes: refresh tokens are single-use, so two concurrent
    /// refreshes with the same one would log the second caller out.
    refresh_lock: tokio::sync::Mutex<()>,
}

impl HttpClient {
    /// `base_url` like `http://127.0.0.1:8080` (a trailing `/` is ignored).
    pub fn new(base_url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(SdkError::transport)?;
        Ok(Self::with_client(base_url, http))
    }

    pub fn with_client(base_url: &str, http: reqwest::Client) -> Self {
        let inner = HttpInner {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            tokens: RwLock::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
        };
        HttpClient {
            inner: Arc::new(inner),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Uses these tokens for authenticated routes (e.g. loaded from disk).
    pub fn set_tokens(&self, tokens: Tokens) {
        *self.inner.tokens.write().unwrap_or_else(|e| e.into_inner()) = Some(tokens);
    }

    /// The current tokens; they change after a login or a refresh, so callers
    /// that persist them should read them back after each call.
    pub fn tokens(&self) -> Option<Tokens> {
        self.inner
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn health(&self) -> Result<Health> {
        self.call(Method::GET, "/healthz", None, false).await
    }

    pub async fn register(&self, username: &str, password: &str) -> Result<UserCreated> {
        let body = RegisterRequest {
            username: username.into(),
            password: password.into(),
        };
        self.call(Method::POST, "/v1/auth/register", Some(json(&body)?), false)
            .await
    }

    /// Logs in and keeps the returned tokens for later calls.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device: Option<DeviceId>,
    ) -> Result<Tokens> {
        self.login_with_captcha(username, password, device, None)
            .await
    }

    /// A captcha to solve when a login was answered `captcha_required`.
    pub async fn captcha(&self) -> Result<CaptchaChallenge> {
        self.call(Method::GET, "/v1/auth/captcha", None, false)
            .await
    }

    /// Logs in with a solved captcha (after `captcha_required`).
    pub async fn login_with_captcha(
        &self,
        username: &str,
        password: &str,
        device: Option<DeviceId>,
        captcha: Option<CaptchaAnswer>,
    ) -> Result<Tokens> {
        let body = LoginRequest {
            username: username.into(),
            password: password.into(),
            device,
            captcha,
        };
        let tokens: Tokens = self
            .call(Method::POST, "/v1/auth/login", Some(json(&body)?), false)
            .await?;
        self.set_tokens(tokens.clone());
        Ok(tokens)
    }

    /// Exchanges the stored refresh token for a new pair and keeps it.
    pub async fn refresh(&self) -> Result<Tokens> {
        let _guard = self.inner.refresh_lock.lock().await;
        self.refresh_locked().await
    }

    pub async fn settings(&self) -> Result<ClientSettings> {
        self.call(Method::GET, "/v1/settings", None, true).await
    }

    /// Sets this device's settings, or with `user_scope` the user's default.
    pub async fn put_settings(
        &self,
        settings: &ClientSettings,
        user_scope: bool,
    ) -> Result<ClientSettings> {
        let path = if user_scope {
            "/v1/settings?scope=user"
        } else {
            "/v1/settings"
        };
        self.call(Method::PUT, path, Some(json(settings)?), true)
            .await
    }

    /// Asks for a socket ticket; `transport` overrides the device setting.
    pub async fn connect(&self, transport: Option<Transport>) -> Result<ConnectResponse> {
        self.call(
            Method::POST,
            "/v1/connect",
            Some(json(&ConnectRequest { transport })?),
            true,
        )
        .await
    }

    pub async fn send(&self, req: &SendRequest) -> Result<SendResult> {
        self.call(Method::POST, "/v1/messages", Some(json(req)?), true)
            .await
    }

    pub async fn sync(&self, req: &SyncRequest) -> Result<SyncResponse> {
        self.call(Method::POST, "/v1/sync", Some(json(req)?), true)
            .await
    }

    pub async fn history(&self, conv: &ConvId, q: HistoryQuery) -> Result<HistoryPage> {
        let mut params = Vec::new();
        match (q.before, q.after) {
            (Some(b), _) => params.push(format!("before={b}")),
            (None, Some(a)) => params.push(format!("after={a}")),
            (None, None) => {}
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        let mut path = format!("/v1/conversations/{conv}/messages");
        if !params.is_empty() {
            path = format!("{path}?{}", params.join("&"));
        }
        self.call(Method::GET, &path, None, true).await
    }

    pub async fn unread(&self) -> Result<UnreadResponse> {
        self.call(Method::GET, "/v1/unread", None, true).await
    }

    pub async fn read(&self, conv: &ConvId, seq: Seq) -> Result<ReadResponse> {
        let path = format!("/v1/conversations/{conv}/read");
        self.call(Method::POST, &path, Some(json(&ReadRequest { seq })?), true)
            .await
    }

    /// Mutes (or unmutes) the caller's notifications of `conv`
    /// (docs/protocol.md §5.11).
    pub async fn mute(&self, conv: &ConvId, muted: bool) -> Result<MuteRequest> {
        let path = format!("/v1/conversations/{conv}/mute");
        self.call(
            Method::PUT,
            &path,
            Some(json(&MuteRequest { muted })?),
            true,
        )
        .await
    }

    /// The user named exactly `name` (`GET /v1/users?name=…`);
    /// `not_found` if there is none.
    pub async fn user_by_name(&self, name: &str) -> Result<UserProfile> {
        // Only the query string of a parsed URL: the name percent-encoded.
        let url = reqwest::Url::parse_with_params("http://x/v1/users", [("name", name)])
            .map_err(SdkError::protocol)?;
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        self.call(Method::GET, &path, None, true).await
    }

    /// The user with id `user` (`GET /v1/users/{id}`).
    pub async fn user(&self, user: UserId) -> Result<UserProfile> {
        self.call(Method::GET, &format!("/v1/users/{user}"), None, true)
            .await
    }

    async fn refresh_locked(&self) -> Result<Tokens> {
        let refresh_token = self
            .tokens()
            .map(|t| t.refresh_token)
            .ok_or_else(not_logged_in)?;
        let body = json(&RefreshRequest { refresh_token })?;
        let tokens: Tokens = self
            .once(Method::POST, "/v1/auth/refresh", Some(&body), None)
            .await?;
        self.set_tokens(tokens.clone());
        Ok(tokens)
    }

    /// One call; on an authenticated route a rejected access token is refreshed
    /// once and the call repeated.
    pub(crate) async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        auth: bool,
    ) -> Result<R> {
        if !auth {
            return self.once(method, path, body.as_ref(), None).await;
        }
        let token = self
            .tokens()
            .map(|t| t.access_token)
            .ok_or_else(not_logged_in)?;
        match self
            .once(method.clone(), path, body.as_ref(), Some(&token))
            .await
        {
            Err(e) if e.is_auth_failure() => {
                let guard = self.inner.refresh_lock.lock().await;
                let current = self
                    .tokens()
                    .map(|t| t.access_token)
                    .ok_or_else(not_logged_in)?;
                // Someone else may have refreshed while we waited for the lock.
                let fresh = if current == token {
                    self.refresh_locked().await?.access_token
                } else {
                    current
                };
                drop(guard);
                self.once(method, path, body.as_ref(), Some(&fresh)).await
            }
            other => other,
        }
    }

    async fn once<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
    ) -> Result<R> {
        let url = format!("{}{}", self.inner.base, path);
        let mut req = self.inner.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(map_reqwest)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(map_reqwest)?;
        if status.is_success() {
            // A 204 has no body: it reads as `null` (for `()`).
            let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(body).map_err(SdkError::protocol);
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(SdkError::from_body(status.as_u16(), body)),
            // Not the server's error shape (a proxy, a crash page): keep what we know.
            Err(_) => Err(SdkError::Protocol(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(SdkError::protocol)
}

fn not_logged_in() -> SdkError {
    SdkError::Server {
        code: magpie_proto::ErrorCode::Unauthorized,
        message: "not logged in".into(),
        status: None,
    }
}

fn map_reqwest(e: reqwest::Error) -> SdkError {
    if e.is_timeout() {
        SdkError::Timeout
    } else {
        SdkError::transport(e)
    }
}
