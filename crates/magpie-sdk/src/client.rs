//! Owns `Client`, the long-lived session an application holds: how it is
//! connected, its public request methods, the events it hands out, and its
//! options. Routing lives in `requests`, the background tasks in `session`
//! and `delivery`.

use crate::backoff::Backoff;
use crate::conn::Welcome;
use crate::connector::{Connector, HttpConnector};
use crate::dedup::Dedup;
use crate::error::{Result, SdkError};
use crate::http::HttpClient;
use crate::requests::{Inner, Link, lock, unexpected};
use crate::session;
use magpie_core::{
    ClientMsgId, ConvId, DeviceId, GroupId, Message, MessageMeta, Persistence, Seq, Transport,
    UserId,
};
use magpie_proto::http::{
    HistoryPage, ReadResponse, SendResult, SyncResponse, Tokens, UnreadResponse,
};
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What the application receives from `Client::next_event`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new message, exactly once, in sequence order per conversation.
    /// Messages sent through this client (`send`, `send_with`) are not
    /// repeated here: their `SendResult` already is the delivery. That holds
    /// for a send that failed too: retry it with the same `cmid` and the
    /// result (`duplicate: true` if it was stored) is its delivery.
    Message(Message),
    /// In a group, `read` members have read your message `seq` (and
    /// `unread` have not); coalesced, at most about one a second per message.
    GroupReceipt {
        conv: ConvId,
        seq: Seq,
        read: i64,
        unread: i64,
    },
    /// `reader` has read `conv` up to `seq`.
    Receipt {
        conv: ConvId,
        reader: UserId,
        seq: Seq,
    },
    /// A device of `receiver` received your messages of `conv` up to
    /// `seq`; merged, a few a second at most per conversation.
    Delivered {
        conv: ConvId,
        receiver: UserId,
        seq: Seq,
    },
    Presence {
        user: UserId,
        device: DeviceId,
        online: bool,
        reason: Option<String>,
    },
    /// `user` is typing in `conv` (`active`): show it for `ttl` unless told
    /// again; or they stopped. Best effort, never resent.
    Typing {
        conv: ConvId,
        user: UserId,
        /// What to show for `user` (display name, else username).
        name: String,
        active: bool,
        ttl: Duration,
    },
    /// You read `conv` up to `seq` on another device: clear its unread
    /// count and notifications here.
    ReadSync { conv: ConvId, seq: Seq },
    /// A new post of a user you follow (best effort: the home feed,
    /// `HttpClient::feed`, is the truth).
    Post(magpie_core::Post),
    /// A message in a live room this client joined (not stored: what is
    /// said while disconnected is not recovered).
    Room(magpie_core::RoomMessage),
    /// The connection dropped (or the server asked us to move); reconnecting after `after`.
    Reconnecting { reason: String, after: Duration },
    /// Messages missed while disconnected have been delivered.
    Resynced,
    /// Sequences `from..=to` of `conv` are gone on the server (their persistence
    /// level removed them) and will never be delivered.
    Unavailable { conv: ConvId, from: Seq, to: Seq },
    /// The session ended for good; no more events follow.
    Closed {
        code: Option<ErrorCode>,
        reason: String,
    },
}

/// Tuning knobs; `Default` is what an interactive client wants.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a socket request waits for its reply (including waiting for a reconnect).
    pub request_timeout: Duration,
    /// Reconnect delays.
    pub reconnect_backoff: Backoff,
    /// Where the application already is per conversation (e.g. persisted last
    /// run). Unlisted conversations start at 0.
    pub positions: BTreeMap<ConvId, Seq>,
    /// Sync right after the first connect, delivering what was missed since `positions`.
    pub sync_on_connect: bool,
    /// Attempts per `send` (same client message id each time).
    pub send_attempts: u32,
    /// Events buffered for the application; when full, pushes stop being
    /// acknowledged and the server applies its flow control.
    pub event_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            reconnect_backoff: Backoff::default(),
            positions: BTreeMap::new(),
            sync_on_connect: true,
            send_attempts: 4,
            event_buffer: 1024,
        }
    }
}

/// A connected session. Cheap to share behind an `Arc`: every method takes `&self`.
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    /// Dropping it (with the client) stops the background tasks.
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// Connects with tokens from a login: tickets come from `POST /v1/connect`.
    /// `transport` overrides the device's setting.
    pub async fn connect(
        base_url: &str,
        tokens: Tokens,
        transport: Option<Transport>,
    ) -> Result<Client> {
        let http = HttpClient::new(base_url)?;
        http.set_tokens(tokens);
        Self::connect_http(http, transport, ClientOptions::default()).await
    }

    /// Like `connect`, sharing `http` (and so its tokens: refreshes done while
    /// reconnecting are visible through `http.tokens()`).
    pub async fn connect_http(
        http: HttpClient,
        transport: Option<Transport>,
        opts: ClientOptions,
    ) -> Result<Client> {
        Self::connect_with(HttpConnector::new(http, transport), opts).await
    }

    /// Connects with any source of tickets (tests use a closure). Fails if the
    /// first connection fails; later drops are retried in the background.
    pub async fn connect_with<C: Connector>(connector: C, opts: ClientOptions) -> Result<Client> {
        let (conn, welcome) = crate::connector::establish(&connector, opts.request_timeout).await?;
        let (events_tx, events_rx) = mpsc::channel(opts.event_buffer.max(1));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            link: watch::channel(Link::Connecting).0,
            pending: Mutex::new(HashMap::new()),
            next_rid: AtomicU64::new(1),
            dedup: Mutex::new(Dedup::new(&opts.positions)),
            welcome: Mutex::new(welcome),
            watching: Mutex::new(Vec::new()),
            rooms: Mutex::new(Vec::new()),
            opts,
        });
        let task = session::spawn(inner.clone(), connector, conn, events_tx, shutdown_rx);
        Ok(Client {
            inner,
            events: tokio::sync::Mutex::new(events_rx),
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }

    /// The next event; `None` once the session has ended.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.lock().await.recv().await
    }

    /// The latest `welcome` (it changes on reconnect: node, timings).
    pub fn welcome(&self) -> Welcome {
        lock(&self.inner.welcome).clone()
    }

    /// Per conversation, the highest sequence delivered without holes: persist
    /// it and pass it back in `ClientOptions::positions` next time.
    pub fn positions(&self) -> BTreeMap<ConvId, Seq> {
        lock(&self.inner.dedup).positions()
    }

    /// Sends a direct message with a fresh client message id.
    pub async fn send(&self, to: UserId, body: impl Into<String>) -> Result<SendResult> {
        self.send_with(to, ClientMsgId::new_v7(), body.into(), None)
            .await
    }

    /// Sends with a caller-chosen id. Transport failures, timeouts and retryable
    /// server errors are retried with the same `cmid`, so the server stores the
    /// message once (a retry of an accepted send answers `duplicate: true`).
    pub async fn send_with(
        &self,
        to: UserId,
        cmid: ClientMsgId,
        body: String,
        persistence: Option<Persistence>,
    ) -> Result<SendResult> {
        self.send_to(to, None, cmid, body, persistence, None).await
    }

    /// Sends a group message with a fresh client message id.
    pub async fn send_group(&self, group: GroupId, body: impl Into<String>) -> Result<SendResult> {
        self.send_group_with(group, ClientMsgId::new_v7(), body.into())
            .await
    }

    /// Sends a group message with a caller-chosen id, retried like `send_with`.
    pub async fn send_group_with(
        &self,
        group: GroupId,
        cmid: ClientMsgId,
        body: String,
    ) -> Result<SendResult> {
        self.send_to(UserId(0), Some(group), cmid, body, None, None)
            .await
    }

    /// Replies in `conv` to its message `seq` (docs/protocol.md §5.10).
    pub async fn reply(
        &self,
        conv: &ConvId,
        seq: Seq,
        body: impl Into<String>,
    ) -> Result<SendResult> {
        let refs = MessageMeta::references(Some(seq), None, None);
        self.send_in(conv, body.into(), refs).await
    }

    /// Sends to a group, mentioning `users` (and everyone with `all`, for
    /// its owner and admins): docs/protocol.md §5.11.
    pub async fn mention(
        &self,
        group: GroupId,
        body: impl Into<String>,
        users: Vec<UserId>,
        all: bool,
    ) -> Result<SendResult> {
        let refs = MessageMeta::with_mentions(None, users, all);
        self.send_in(&ConvId::group(group), body.into(), refs).await
    }

    /// Replaces the text of one's message `seq` of `conv` (within the
    /// server's edit window).
    pub async fn edit(
        &self,
        conv: &ConvId,
        seq: Seq,
        body: impl Into<String>,
    ) -> Result<SendResult> {
        let refs = MessageMeta::references(None, Some(seq), None);
        self.send_in(conv, body.into(), refs).await
    }

    /// Recalls message `seq` of `conv` (one's own within the server's
    /// recall window; any, as a group's owner or admin).
    pub async fn recall(&self, conv: &ConvId, seq: Seq) -> Result<SendResult> {
        let refs = MessageMeta::references(None, None, Some(seq));
        self.send_in(conv, String::new(), refs).await
    }

    /// Sends into an existing conversation: its group, or the peer of a
    /// direct one (oneself for a note to self).
    async fn send_in(
        &self,
        conv: &ConvId,
        body: String,
        refs: Option<Box<MessageMeta>>,
    ) -> Result<SendResult> {
        let cmid = ClientMsgId::new_v7();
        if let Some(g) = conv.group_id() {
            return self
                .send_to(UserId(0), Some(g), cmid, body, None, refs)
                .await;
        }
        let me = lock(&self.inner.welcome).user;
        let peer = match conv.direct_members() {
            Some((a, b)) if a == me => b,
            Some((a, b)) if b == me => a,
            _ => {
                return Err(SdkError::Usage(format!(
                    "{conv}: not a conversation of yours"
                )));
            }
        };
        self.send_to(peer, None, cmid, body, None, refs).await
    }

    async fn send_to(
        &self,
        to: UserId,
        group: Option<GroupId>,
        cmid: ClientMsgId,
        body: String,
        persistence: Option<Persistence>,
        refs: Option<Box<MessageMeta>>,
    ) -> Result<SendResult> {
        let refs = refs.unwrap_or_default();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let mut attempt = 1;
        let me = lock(&self.inner.welcome).user;
        lock(&self.inner.dedup).begin_send(me, cmid);
        loop {
            let op = ClientOp::Send {
                reply_to: refs.reply_to,
                recall: refs.recall_of,
                edit: refs.edit_of,
                mentions: refs.mentions.clone(),
                mention_all: refs.mention_all,
                traceparent: None,
                sample: false,
                to,
                cmid,
                body: body.clone(),
                persistence,
                group,
                chain: None,
            };
            match self.inner.request(op).await {
                Ok(ServerFrame::Sent {
                    cmid,
                    server_id,
                    conv,
                    seq,
                    sent_at,
                    duplicate,
                    ..
                }) => {
                    // The application has this message now: a sync or a push
                    // echo must not deliver it again, nor see a gap before
                    // the next message.
                    {
                        let mut d = lock(&self.inner.dedup);
                        d.mark_sent(&conv, seq, server_id);
                        d.end_send(me, cmid);
                    }
                    return Ok(SendResult {
                        cmid,
                        server_id,
                        conv,
                        seq,
                        sent_at,
                        duplicate,
                    });
                }
                Ok(other) => return Err(unexpected(other)),
                Err(e) if e.is_retryable() && attempt < self.inner.opts.send_attempts => {
                    tracing::debug!(error = %e, attempt, %cmid, "send failed, retrying");
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks `conv` read up to `seq`; the peer gets a receipt.
    pub async fn read(&self, conv: &ConvId, seq: Seq) -> Result<ReadResponse> {
        match self
            .inner
            .request(ClientOp::Read {
                conv: conv.clone(),
                seq,
            })
            .await?
        {
            ServerFrame::ReadOk { conv, seq, .. } => Ok(ReadResponse { conv, seq }),
            other => Err(unexpected(other)),
        }
    }

    /// Raw sync: what follows each listed position (unlisted conversations from 0).
    /// Does not feed the event stream; the client resyncs by itself after reconnects.
    pub async fn sync(
        &self,
        convs: BTreeMap<ConvId, Seq>,
        limit: Option<usize>,
    ) -> Result<SyncResponse> {
        self.inner.sync(convs, limit).await
    }

    /// Older messages of `conv`, newest first.
    pub async fn history(
        &self,
        conv: &ConvId,
        before: Option<Seq>,
        limit: Option<usize>,
    ) -> Result<HistoryPage> {
        match self
            .inner
            .request(ClientOp::History {
                conv: conv.clone(),
                before,
                limit,
            })
            .await?
        {
            ServerFrame::HistoryResult {
                conv,
                messages,
                more,
                peer_read_seq,
                ..
            } => Ok(HistoryPage {
                conv,
                messages,
                more,
                peer_read_seq,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `op` and waits for the frame that answers it.
    pub(crate) async fn request(&self, op: ClientOp) -> Result<ServerFrame> {
        self.inner.request(op).await
    }

    /// Sends `op`, which has no reply, if connected.
    pub(crate) fn send_oneway(&self, op: ClientOp) {
        self.inner.send_oneway(op)
    }

    pub async fn unread(&self) -> Result<UnreadResponse> {
        match self.inner.request(ClientOp::Unread).await? {
            ServerFrame::UnreadResult { total, convs, .. } => Ok(UnreadResponse { total, convs }),
            other => Err(unexpected(other)),
        }
    }

    /// Watches the presence of `users` (replacing what was watched; at most
    /// 1,000): `presence` events follow for them, also after a reconnect.
    /// Returns those of them online now.
    pub async fn watch_presence(&self, users: &[UserId]) -> Result<Vec<UserId>> {
        let op = ClientOp::PresenceWatch {
            users: users.to_vec(),
        };
        match self.inner.request(op).await? {
            ServerFrame::PresenceWatchOk { online, .. } => {
                *lock(&self.inner.watching) = users.to_vec();
                Ok(online)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Round trip time of a `ping`.
    pub async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        match self.inner.request(ClientOp::Ping).await? {
            ServerFrame::Pong { .. } => Ok(start.elapsed()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `logout` (the device goes offline with reason "logout"), closes the
    /// socket and stops reconnecting. Later requests fail with `SdkError::Closed`.
    pub async fn close(&self) -> Result<()> {
        let _ = self.shutdown.send(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .map_err(|_| SdkError::Timeout)?
                .map_err(SdkError::transport)?;
        }
        Ok(())
    }
}
