//! Owns where connections come from: the `Connector` trait (a fresh ticket
//! and address before every connect), its HTTP implementation, and the
//! ticket → socket → `hello`/`welcome` sequence.

use crate::conn::{Conn, Welcome};
use crate::error::{Result, SdkError};
use crate::http::HttpClient;
use magpie_core::Transport;
use magpie_proto::http::ConnectResponse;
use std::future::Future;
use std::time::Duration;

/// Where a connection goes: asked again before every (re)connect, since a
/// ticket is single-use.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self) -> impl Future<Output = Result<ConnectResponse>> + Send;
}

/// Any `Fn() -> Future<Output = Result<ConnectResponse>>` is a connector (tests, custom discovery).
impl<F, Fut> Connector for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ConnectResponse>> + Send,
{
    fn connect(&self) -> impl Future<Output = Result<ConnectResponse>> + Send {
        self()
    }
}

/// Tickets from `POST /v1/connect`; an expired access token is refreshed by `HttpClient`.
pub struct HttpConnector {
    http: HttpClient,
    transport: Option<Transport>,
}

impl HttpConnector {
    pub fn new(http: HttpClient, transport: Option<Transport>) -> Self {
        HttpConnector { http, transport }
    }
}

impl Connector for HttpConnector {
    fn connect(&self) -> impl Future<Output = Result<ConnectResponse>> + Send {
        self.http.connect(self.transport)
    }
}

/// Ticket, socket, handshake.
pub(crate) async fn establish<C: Connector>(
    connector: &C,
    timeout: Duration,
) -> Result<(Conn, Welcome)> {
    let resp = connector.connect().await?;
    let open = Conn::open(resp.transport, &resp.address);
    let mut conn = tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| SdkError::Timeout)??;
    let welcome = conn.hello(&resp.ticket, timeout).await?;
    Ok((conn, welcome))
}
