//! The node's listeners (HTTP with its WebSocket upgrades, and TCP) share
//! one cap on open client connections.
//!
//! Invariants:
//! - A connection is served only while it holds a permit of the node's
//!   [`ConnLimit`]; the permit is released when the connection's socket is
//!   dropped, whatever ended it (an upgraded WebSocket keeps the permit of
//!   the HTTP connection it came from).
//! - Over the cap a connection is still accepted, told `busy` (HTTP 503 with
//!   `Retry-After`, or a fatal `error` frame on TCP) and closed — a client
//!   always gets a clear answer instead of a hang. The automatic cap leaves
//!   room below the process's file limit for that answer and for the
//!   backends' own files (docs/config.md, `limits.max_connections`).
//! - Accept errors (out of file descriptors) back off instead of spinning.
//! - At most `MAX_REFUSING` refusals are being answered at once (an HTTP
//!   one reads the request's head first, up to a second, so the client
//!   reads an answer, not a broken connection); beyond, a refused
//!   connection is closed at once.
//! - With a guard (`crate::guard`), a connection is also admitted per
//!   address before anything is read from it: a banned address is told
//!   `banned`, one over its connect rate `rate_limited`, one at its cap
//!   of open connections `busy`; each refusal is an access event.

use crate::error::ServerError;
use crate::guard::Guard;
use crate::guard::limits::IpSlot;
use magpie_core::Backoff;
use magpie_proto::ErrorBody;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Files kept free below the file limit by the automatic cap: refusals,
/// the store's and bus's files, backend connection pools.
const FILE_RESERVE: u64 = 256;
/// Refusals answered at once (each holds its socket up to twice
/// `REFUSAL_WRITE`); beyond them a refused connection is closed without an
/// answer, so a storm of refused connections cannot eat the files kept in
/// reserve (`FILE_RESERVE`).
const MAX_REFUSING: usize = 128;
static REFUSING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A refusal in progress: counted in `REFUSING` until dropped, so a
/// refusal that ends in any way (a panic too) gives its place back.
struct Refusing;

impl Refusing {
    fn take() -> Option<Refusing> {
        use std::sync::atomic::Ordering;
        let slot = Refusing;
        (REFUSING.fetch_add(1, Ordering::AcqRel) < MAX_REFUSING).then_some(slot)
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        REFUSING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Answers a refused connection in a task of its own, within
/// `MAX_REFUSING`; closes it at once beyond.
fn spawn_refusal(refuse: fn(TcpStream, ServerError) -> Refusal, stream: TcpStream, e: ServerError) {
    let Some(slot) = Refusing::take() else {
        drop(stream);
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        refuse(stream, e).await;
    });
}

/// How long a refused client gets to read its answer.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// The node-wide cap on open client connections.
#[derive(Clone)]
pub struct ConnLimit {
    permits: Arc<Semaphore>,
    max: usize,
    guard: Option<Arc<Guard>>,
}

impl ConnLimit {
    /// `configured` 0 means automatic: the process's open-file limit less a
    /// reserve (at least 64).
    pub fn new(configured: usize) -> ConnLimit {
        let max = if configured > 0 {
            configured
        } else {
            automatic_max()
        };
        ConnLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            guard: None,
        }
    }

    /// Admits connections per address too, by `guard`'s rules.
    pub fn with_guard(mut self, guard: Arc<Guard>) -> ConnLimit {
        self.guard = Some(guard);
        self
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }
}

fn automatic_max() -> usize {
    let files = file_limit().unwrap_or(FILE_RESERVE * 2);
    files.saturating_sub(FILE_RESERVE).max(64) as usize
}

/// The soft limit on open files, raised to the hard limit first (what a
/// server wants; Go's runtime does the same at start).
#[cfg(unix)]
fn file_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        // `rlim_t` is not u64 on every unix.
        #[allow(clippy::unnecessary_cast)]
        Some(lim.rlim_cur as u64)
    }
}

#[cfg(not(unix))]
fn file_limit() -> Option<u64> {
    None
}

/// What an admitted connection holds until it is dropped: its share of
/// the node's cap and of its address's.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    _slot: Option<IpSlot>,
}

/// Accepts the next connection that is admitted; refused ones are
/// answered by `refuse` in their own task. Never returns an error: accept
/// failures are logged and retried after a growing pause.
pub async fn accept(
    listener: &TcpListener,
    limit: &ConnLimit,
    refuse: fn(TcpStream, ServerError) -> Refusal,
) -> (TcpStream, SocketAddr, Admission) {
    let mut backoff = Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff.reset();
                let _ = stream.set_nodelay(true);
                let Some(permit) = limit.try_admit() else {
                    crate::metrics::meters().conn_refused.increment(1);
                    let busy = ServerError::Busy(busy_message("connection"));
                    spawn_refusal(refuse, stream, busy);
                    continue;
                };
                let slot = match &limit.guard {
                    None => None,
                    Some(g) => match g.admit_conn(peer.ip()) {
                        Ok(slot) => slot,
                        Err(e) => {
                            crate::metrics::meters().conn_refused.increment(1);
                            g.socket_event(peer.ip(), None, "tcp", "connect", Some(e.code()));
                            spawn_refusal(refuse, stream, e);
                            continue;
                        }
                    },
                };
                let admission = Admission {
                    _permit: permit,
                    _slot: slot,
                };
                return (stream, peer, admission);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// A refusal's answer, written in its own task.
pub type Refusal = Pin<Box<dyn Future<Output = ()> + Send>>;

fn busy_message(limit_kind: &str) -> String {
    format!("the server is at its {limit_kind} limit; retry later")
}

/// An HTTP connection refused: the error's status (503 `busy`, 429
/// `rate_limited`, 403 `banned`) with `Retry-After` when it has one, the
/// usual error body, and `Connection: close`.
pub fn refuse_http(mut stream: TcpStream, e: ServerError) -> Refusal {
    Box::pin(async move {
        let code = e.code();
        let retry = e.retry_after_ms();
        let body =
            serde_json::to_string(&ErrorBody::new(code, e.to_string()).with_retry_after(retry))
                .unwrap_or_default();
        let retry_header = retry
            .map(|ms| format!("retry-after: {}\r\n", ms.div_ceil(1000).max(1)))
            .unwrap_or_default();
        let status = axum::http::StatusCode::from_u16(code.http_status())
            .unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        // An answer before the request would be an unsolicited message to
        // an HTTP client (it reports a broken connection, not our error):
        // read the request's head first, within the same short time.
        let _ = tokio::time::timeout(REFUSAL_WRITE, read_head(&mut stream)).await;
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
             {retry_header}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_WRITE, async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
    })
}

/// Reads until the end of a request head (or 16 KiB, or EOF).
async fn read_head(stream: &mut TcpStream) -> io::Result<()> {
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.len() > 16 * 1024 {
            return Ok(());
        }
    }
}

/// A TCP connection refused: one fatal error frame, then close.
pub fn refuse_tcp(stream: TcpStream, e: ServerError) -> Refusal {
    Box::pin(async move {
        use crate::conn::transport::{Tcp, Transport};
        let code = e.code();
        let frame = magpie_proto::ServerFrame::Error {
            rid: None,
            code,
            message: e.to_string(),
            fatal: true,
            retry_after_ms: e.retry_after_ms(),
        };
        let mut io = Tcp::new(stream, 0);
        io.queue(frame.encode().into());
        let _ = tokio::time::timeout(REFUSAL_WRITE, io.close(Some(code))).await;
    })
}

/// The HTTP listener as axum serves it: every connection it yields holds a
/// permit.
pub struct HttpListener {
    pub listener: TcpListener,
    pub limit: ConnLimit,
}

impl axum::serve::Listener for HttpListener {
    type Io = Admitted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Admitted, SocketAddr) {
        let (stream, peer, admission) = accept(&self.listener, &self.limit, refuse_http).await;
        (
            Admitted {
                stream,
                _admission: admission,
            },
            peer,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A socket and the admission it holds until dropped.
pub struct Admitted {
    stream: TcpStream,
    _admission: Admission,
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncReadExt;

    fn hold(stream: TcpStream, _: ServerError) -> Refusal {
        Box::pin(async move {
            let _held = stream;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
    }

    fn boom(_: TcpStream, _: ServerError) -> Refusal {
        Box::pin(async { panic!("a refusal that fails") })
    }

    async fn refused(l: &TcpListener, refuse: fn(TcpStream, ServerError) -> Refusal) -> TcpStream {
        let client = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (stream, _) = l.accept().await.expect("accept");
        spawn_refusal(refuse, stream, ServerError::Busy("test".into()));
        client
    }

    /// At most `MAX_REFUSING` refusals are answered at once; beyond, a
    /// refused connection is closed at once; a refusal that panics gives
    /// its place back.
    #[tokio::test]
    async fn refusals_are_bounded_and_give_their_place_back() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        for _ in 0..MAX_REFUSING {
            refused(&l, boom).await;
        }
        let freed = async {
            while REFUSING.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), freed)
            .await
            .expect("panicked refusals gave their places back");

        let mut held = Vec::new();
        for _ in 0..MAX_REFUSING {
            held.push(refused(&l, hold).await);
        }
        let mut beyond = refused(&l, hold).await;
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), beyond.read(&mut b)).await;
        assert!(matches!(read, Ok(Ok(0))), "closed at once: {read:?}");
        let read = tokio::time::timeout(Duration::from_millis(100), held[0].read(&mut b)).await;
        assert!(
            read.is_err(),
            "a refusal within the bound is still answering"
        );
    }
}
