//! One authenticated socket to the server, over WebSocket or TCP: frames
//! are queued into a buffer and written with one flush per batch (not a
//! syscall per frame), and reads are cancel-safe so a task can race several
//! links in one `select!`.
//!
//! Sockets can be bound to one of several loopback source addresses, so
//! tens of thousands of connections do not run out of ephemeral ports.

use crate::wire;
use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use magpie_proto::http::ConnectResponse;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, lookup_host};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Largest frame the tool accepts (a sync page can be large).
const MAX_FRAME: usize = 16 * 1024 * 1024;

enum Io {
    Ws {
        ws: Box<WebSocketStream<TcpStream>>,
        pending: Vec<Message>,
    },
    Tcp {
        stream: TcpStream,
        rbuf: BytesMut,
        wbuf: Vec<u8>,
    },
}

pub struct Link {
    io: Io,
    /// Scratch for one WebSocket frame.
    scratch: Vec<u8>,
}

/// Picks the local address of the `i`-th connection: spread over
/// 127.0.0.2.. when the server is on loopback.
pub fn source_for(target: &SocketAddr, i: usize, spread: usize) -> Option<IpAddr> {
    match target.ip() {
        IpAddr::V4(v4) if v4.is_loopback() && spread > 1 => {
            let n = (i % spread) as u8;
            Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n)))
        }
        _ => None,
    }
}

async fn dial(host_port: &str, i: usize, spread: usize) -> anyhow::Result<TcpStream> {
    let addr = lookup_host(host_port)
        .await?
        .next()
        .with_context(|| format!("cannot resolve {host_port}"))?;
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source_for(&addr, i, spread) {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = sock.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Link {
    /// Opens the socket `connect` named, sends `hello` and waits for `welcome`.
    pub async fn open(
        resp: &ConnectResponse,
        i: usize,
        spread: usize,
        read_buf: usize,
    ) -> anyhow::Result<Link> {
        let io = match resp.transport {
            magpie_core::Transport::Ws => {
                let rest = resp
                    .address
                    .strip_prefix("ws://")
                    .context("only ws:// addresses are supported")?;
                let host_port = rest.split('/').next().unwrap_or(rest);
                let stream = dial(host_port, i, spread).await?;
                let cfg = WebSocketConfig::default()
                    .read_buffer_size(read_buf)
                    .write_buffer_size(0)
                    .max_message_size(Some(MAX_FRAME))
                    .max_frame_size(Some(MAX_FRAME));
                let (ws, _) = tokio_tungstenite::client_async_with_config(
                    resp.address.as_str(),
                    stream,
                    Some(cfg),
                )
                .await?;
                Io::Ws {
                    ws: Box::new(ws),
                    pending: Vec::new(),
                }
            }
            magpie_core::Transport::Tcp => Io::Tcp {
                stream: dial(&resp.address, i, spread).await?,
                rbuf: BytesMut::with_capacity(read_buf),
                wbuf: Vec::new(),
            },
        };
        let mut link = Link {
            io,
            scratch: Vec::new(),
        };
        link.push(|b| wire::hello(b, &resp.ticket));
        link.flush().await?;
        let welcome = tokio::time::timeout(Duration::from_secs(30), link.next())
            .await
            .context("no welcome within 30 s")?
            .context("closed before welcome")?;
        match wire::decode(&welcome) {
            Some(f) if f.op == "welcome" => Ok(link),
            _ => bail!("handshake failed: {}", String::from_utf8_lossy(&welcome)),
        }
    }

    /// Queues one frame that `write` appends to a buffer.
    pub fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        match &mut self.io {
            Io::Ws { pending, .. } => {
                self.scratch.clear();
                write(&mut self.scratch);
                let bytes = Bytes::copy_from_slice(&self.scratch);
                if let Ok(text) = Utf8Bytes::try_from(bytes) {
                    pending.push(Message::Text(text));
                }
            }
            Io::Tcp { wbuf, .. } => {
                let start = wbuf.len();
                wbuf.extend_from_slice(&[0; 4]);
                write(wbuf);
                let len = (wbuf.len() - start - 4) as u32;
                wbuf[start..start + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.io {
            Io::Ws { ws, pending } => {
                for m in pending.drain(..) {
                    ws.feed(m).await?;
                }
                ws.flush().await?;
            }
            Io::Tcp { stream, wbuf, .. } => {
                if !wbuf.is_empty() {
                    stream.write_all(wbuf).await?;
                    wbuf.clear();
                }
            }
        }
        Ok(())
    }

    /// The next server frame; `None` once the connection is gone.
    /// Cancel-safe: partial reads stay in the link's buffer.
    pub async fn next(&mut self) -> Option<Bytes> {
        match &mut self.io {
            Io::Ws { ws, .. } => loop {
                match ws.next().await? {
                    Ok(Message::Text(t)) => return Some(Bytes::from(t)),
                    Ok(Message::Binary(b)) => return Some(b),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => continue,
                }
            },
            Io::Tcp { stream, rbuf, .. } => loop {
                if rbuf.len() >= 4 {
                    let len = u32::from_be_bytes([rbuf[0], rbuf[1], rbuf[2], rbuf[3]]) as usize;
                    if len > MAX_FRAME {
                        return None;
                    }
                    if rbuf.len() >= 4 + len {
                        rbuf.advance(4);
                        return Some(rbuf.split_to(len).freeze());
                    }
                    rbuf.reserve(4 + len - rbuf.len());
                } else {
                    rbuf.reserve(4096);
                }
                match stream.read_buf(rbuf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            },
        }
    }

    /// A frame that is ready now, without waiting.
    pub fn ready(&mut self) -> Option<Bytes> {
        self.next().now_or_never().flatten()
    }
}
