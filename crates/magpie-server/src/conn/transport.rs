//! The two socket transports behind one small interface, so the session
//! logic is written once: WebSocket (JSON text messages) and TCP
//! (4-byte length prefix + JSON).
//!
//! `recv` must be cancel-safe: the session races it against timers and the
//! shutdown signal in a `select!`.

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use magpie_proto::{ErrorCode, TcpCodec};
use std::future::Future;
use std::io;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

pub enum Inbound {
    Frame(Bytes),
    /// Over the size limit: the stream cannot be trusted any more.
    TooLarge,
    /// The peer closed, or the connection failed.
    Closed,
}

pub trait FrameReader: Send + 'static {
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;
}

pub trait FrameWriter: Send + 'static {
    fn send(&mut self, data: Vec<u8>) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the connection (a close frame on WebSocket, FIN on TCP); `None`
    /// is a normal close.
    fn close(&mut self, code: Option<ErrorCode>) -> impl Future<Output = ()> + Send;
}

pub struct WsReader(pub SplitStream<WebSocket>);
pub struct WsWriter(pub SplitSink<WebSocket, WsMessage>);

impl FrameReader for WsReader {
    async fn recv(&mut self) -> Inbound {
        loop {
            match self.0.next().await {
                Some(Ok(WsMessage::Text(t))) => {
                    return Inbound::Frame(Bytes::copy_from_slice(t.as_bytes()));
                }
                Some(Ok(WsMessage::Binary(b))) => return Inbound::Frame(b),
                // Control frames are answered by the library.
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => return Inbound::Closed,
                Some(Err(e)) => {
                    let text = e.to_string();
                    return if text.contains("too long") || text.contains("Space limit") {
                        Inbound::TooLarge
                    } else {
                        Inbound::Closed
                    };
                }
            }
        }
    }
}

impl FrameWriter for WsWriter {
    async fn send(&mut self, data: Vec<u8>) -> io::Result<()> {
        let text =
            String::from_utf8(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.0
            .send(WsMessage::Text(text.into()))
            .await
            .map_err(io::Error::other)
    }
    async fn close(&mut self, code: Option<ErrorCode>) {
        let frame = match code {
            Some(c) => CloseFrame {
                code: c.close_code(),
                reason: c.as_str().into(),
            },
            None => CloseFrame {
                code: 1000,
                reason: "".into(),
            },
        };
        let _ = self.0.send(WsMessage::Close(Some(frame))).await;
        let _ = self.0.close().await;
    }
}

pub struct TcpReader(pub FramedRead<OwnedReadHalf, TcpCodec>);
pub struct TcpWriter(pub FramedWrite<OwnedWriteHalf, TcpCodec>);

impl FrameReader for TcpReader {
    async fn recv(&mut self) -> Inbound {
        match self.0.next().await {
            Some(Ok(b)) => Inbound::Frame(b.freeze()),
            Some(Err(e)) if magpie_proto::codec::is_too_large(&e) => Inbound::TooLarge,
            _ => Inbound::Closed,
        }
    }
}

impl FrameWriter for TcpWriter {
    async fn send(&mut self, data: Vec<u8>) -> io::Result<()> {
        self.0.send(Bytes::from(data)).await
    }
    async fn close(&mut self, _code: Option<ErrorCode>) {
        let _ = self.0.close().await;
    }
}
