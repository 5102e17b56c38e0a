//! The two socket transports behind one small interface, so the session
//! logic is written once: WebSocket (JSON text messages) and TCP (4-byte
//! length prefix + JSON).
//!
//! Writes are two-step: `queue` adds a frame to the transport's buffer
//! without waiting, `flush` writes what is queued. The session queues
//! everything that is ready and flushes once, so a burst of pushes costs
//! one write, not one per frame, and its handlers need not be async (an
//! idle connection's state stays small).
//!
//! `recv` must be cancel-safe: the session races it against timers and the
//! shutdown signal in a `select!`.

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use magpie_proto::{ErrorCode, TcpCodec};
use std::future::Future;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

pub enum Inbound {
    Frame(Bytes),
    /// Over the size limit: the stream cannot be trusted any more.
    TooLarge,
    /// The transport's own rules broken (a WebSocket text message that is
    /// not UTF-8, a framing violation): fatal, with the code to close with.
    Invalid(ErrorCode, &'static str),
    /// The peer closed, or the connection failed.
    Closed,
}

pub trait Transport: Send + 'static {
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;
    /// Queues one frame (a JSON object) for the next flush.
    fn queue(&mut self, frame: Bytes);
    /// Writes everything queued.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the connection (a close frame on WebSocket, FIN on TCP); `None`
    /// is a normal close.
    fn close(&mut self, code: Option<ErrorCode>) -> impl Future<Output = ()> + Send;
}

/// A frame is queued, then everything is written.
pub async fn send_now<T: Transport>(t: &mut T, frame: Bytes) -> io::Result<()> {
    t.queue(frame);
    t.flush().await
}

/// Frames queued before a flush (for their `Vec`: kept across flushes up to
/// this many slots, beyond that given back).
const QUEUE_KEEP: usize = 64;

pub struct Ws {
    socket: WebSocket,
    queued: Vec<Bytes>,
}

impl Ws {
    pub fn new(socket: WebSocket) -> Ws {
        Ws {
            socket,
            queued: Vec::new(),
        }
    }
}

impl Transport for Ws {
    async fn recv(&mut self) -> Inbound {
        loop {
            match self.socket.next().await {
                Some(Ok(WsMessage::Text(t))) => return Inbound::Frame(Bytes::from(t)),
                Some(Ok(WsMessage::Binary(b))) => return Inbound::Frame(b),
                // Control frames are answered by the library.
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => return Inbound::Closed,
                Some(Err(e)) => return ws_error(&e.to_string()),
            }
        }
    }

    fn queue(&mut self, frame: Bytes) {
        self.queued.push(frame);
    }

    async fn flush(&mut self) -> io::Result<()> {
        for frame in self.queued.drain(..) {
            let text = Utf8Bytes::try_from(frame)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.socket
                .feed(WsMessage::Text(text))
                .await
                .map_err(io::Error::other)?;
        }
        if self.queued.capacity() > QUEUE_KEEP {
            self.queued = Vec::new();
        }
        SinkExt::flush(&mut self.socket)
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
        let _ = self.flush().await;
        let _ = self.socket.send(WsMessage::Close(Some(frame))).await;
        let _ = SinkExt::close(&mut self.socket).await;
    }
}

/// What a WebSocket read error means for the session, from the library's
/// error text (tungstenite's `Error` reaches us as text through axum).
fn ws_error(text: &str) -> Inbound {
    if text.contains("too long") || text.contains("Space limit") {
        Inbound::TooLarge
    } else if text.contains("UTF-8") || text.contains("utf-8") {
        Inbound::Invalid(ErrorCode::BadUtf8, "a text message that is not UTF-8")
    } else if text.contains("protocol error") || text.contains("Protocol error") {
        Inbound::Invalid(ErrorCode::ProtocolError, "a WebSocket protocol violation")
    } else {
        Inbound::Closed
    }
}

/// A write buffer grown past this by a burst is given back after it.
const TCP_WRITE_HIGH_WATER: usize = 64 * 1024;

pub struct Tcp {
    stream: TcpStream,
    codec: TcpCodec,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The input went bad (over the limit, or failed): nothing more is read.
    broken: bool,
}

impl Tcp {
    /// `max_in`: the largest client frame; server frames may be larger.
    pub fn new(stream: TcpStream, max_in: usize) -> Tcp {
        Tcp {
            stream,
            codec: TcpCodec::with_limits(max_in, magpie_proto::MAX_SERVER_FRAME),
            // Small, and grown only by traffic: idle connections stay cheap.
            rbuf: BytesMut::with_capacity(512),
            wbuf: BytesMut::new(),
            broken: false,
        }
    }
}

impl Transport for Tcp {
    async fn recv(&mut self) -> Inbound {
        if self.broken {
            return Inbound::Closed;
        }
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(frame)) => return Inbound::Frame(frame.freeze()),
                Ok(None) => {}
                Err(e) => {
                    // The stream cannot be re-synchronised after a bad prefix.
                    self.broken = true;
                    return if magpie_proto::codec::is_too_large(&e) {
                        Inbound::TooLarge
                    } else {
                        Inbound::Closed
                    };
                }
            }
            if self.rbuf.capacity() - self.rbuf.len() < 256 {
                self.rbuf.reserve(4096);
            }
            // Cancel-safe: bytes read stay in `rbuf` for the next call.
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => {
                    self.broken = true;
                    return Inbound::Closed;
                }
                Ok(_) => {}
            }
        }
    }

    fn queue(&mut self, frame: Bytes) {
        // Only a frame over the server limit fails to encode; such a frame
        // is a bug upstream, and dropping it beats a corrupt stream.
        if let Err(e) = self.codec.encode(frame, &mut self.wbuf) {
            tracing::error!(error = %e, "frame not sent");
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            // A burst (a sync page) must not pin its buffer for the
            // connection's lifetime.
            if self.wbuf.capacity() > TCP_WRITE_HIGH_WATER {
                self.wbuf = BytesMut::new();
            }
        }
        Ok(())
    }

    async fn close(&mut self, _code: Option<ErrorCode>) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}
