//! Owns one socket connection: opening it over WebSocket or TCP, hiding the
//! difference behind a frame sink/stream pair, and the `hello`/`welcome`
//! handshake. It knows nothing about reconnects or requests.

use crate::error::{Result, SdkError};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt, future};
use magpie_core::{DeviceId, Transport, UserId};
use magpie_proto::{ClientFrame, ClientOp, ServerFrame, TcpCodec};
use std::pin::Pin;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::codec::Framed;

/// Inbound frame limit. The server enforces its own (`welcome.max_frame`) on
/// what we send; this only bounds what a misbehaving peer can make us buffer.
const MAX_INBOUND_FRAME: usize = 16 * 1024 * 1024;

pub type FrameSink = Pin<Box<dyn Sink<ClientFrame, Error = SdkError> + Send>>;
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<ServerFrame>> + Send>>;

/// The server's `welcome`: who we are and the connection's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub user: UserId,
    pub device: DeviceId,
    pub node: String,
    pub heartbeat_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_frame: usize,
    pub window: usize,
}

/// An open connection, transport-independent.
pub struct Conn {
    pub sink: FrameSink,
    pub stream: FrameStream,
}

impl Conn {
    /// Opens a connection: `address` is `ws://host:port/v1/ws` for WebSocket or
    /// `host:port` for TCP, as `POST /v1/connect` returned it.
    pub async fn open(transport: Transport, address: &str) -> Result<Conn> {
        match transport {
            Transport::Ws => Self::open_ws(address).await,
            Transport::Tcp => Self::open_tcp(address).await,
        }
    }

    async fn open_ws(address: &str) -> Result<Conn> {
        let (ws, _) = tokio_tungstenite::connect_async(address)
            .await
            .map_err(SdkError::transport)?;
        let (sink, stream) = ws.split();
        let sink = sink
            .sink_map_err(SdkError::transport)
            .with(|f: ClientFrame| {
                future::ready(
                    String::from_utf8(f.encode())
                        .map(WsMessage::text)
                        .map_err(SdkError::protocol),
                )
            });
        let stream = stream.filter_map(|item| {
            future::ready(match item {
                Ok(WsMessage::Text(t)) => decode(t.as_bytes()).map(Ok),
                Ok(WsMessage::Binary(b)) => decode(&b).map(Ok),
                // Control frames are answered by tungstenite itself; Close ends the stream.
                Ok(_) => None,
                Err(e) => Some(Err(SdkError::transport(e))),
            })
        });
        Ok(Conn {
            sink: Box::pin(sink),
            stream: Box::pin(stream),
        })
    }

    async fn open_tcp(address: &str) -> Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(SdkError::transport)?;
        // Frames are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let (sink, stream) = Framed::new(tcp, TcpCodec::new(MAX_INBOUND_FRAME)).split();
        let sink = sink
            .sink_map_err(SdkError::transport)
            .with(|f: ClientFrame| future::ready(Ok::<_, SdkError>(Bytes::from(f.encode()))));
        let stream = stream.filter_map(|item| {
            future::ready(match item {
                Ok(bytes) => decode(&bytes).map(Ok),
                Err(e) => Some(Err(SdkError::transport(e))),
            })
        });
        Ok(Conn {
            sink: Box::pin(sink),
            stream: Box::pin(stream),
        })
    }

    /// Sends `hello` with the ticket and waits for `welcome`. A server `ping`
    /// before the welcome is answered; an `error` frame fails the handshake.
    pub async fn hello(&mut self, ticket: &str, timeout: Duration) -> Result<Welcome> {
        let hello = ClientFrame {
            rid: None,
            op: ClientOp::Hello {
                ticket: ticket.to_string(),
            },
        };
        let handshake = async {
            self.sink.send(hello).await?;
            loop {
                match self.stream.next().await {
                    None => {
                        return Err(SdkError::Transport(
                            "connection closed during handshake".into(),
                        ));
                    }
                    Some(Err(e)) => return Err(e),
                    Some(Ok(ServerFrame::Welcome {
                        user,
                        device,
                        node,
                        heartbeat_ms,
                        idle_timeout_ms,
                        max_frame,
                        window,
                    })) => {
                        return Ok(Welcome {
                            user,
                            device,
                            node,
                            heartbeat_ms,
                            idle_timeout_ms,
                            max_frame,
                            window,
                        });
                    }
                    Some(Ok(ServerFrame::Error { code, message, .. })) => {
                        return Err(SdkError::Server {
                            code,
                            message,
                            status: None,
                        });
                    }
                    Some(Ok(ServerFrame::Ping)) => {
                        self.sink
                            .send(ClientFrame {
                                rid: None,
                                op: ClientOp::Pong,
                            })
                            .await?
                    }
                    Some(Ok(other)) => tracing::debug!(?other, "frame before welcome ignored"),
                }
            }
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| SdkError::Timeout)?
    }
}

/// Decodes a server frame. An undecodable frame is skipped rather than fatal:
/// a newer server may send ops this SDK does not know yet.
fn decode(bytes: &[u8]) -> Option<ServerFrame> {
    match ServerFrame::decode(bytes) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, frame = %String::from_utf8_lossy(bytes), "undecodable server frame skipped");
            None
        }
    }
}
