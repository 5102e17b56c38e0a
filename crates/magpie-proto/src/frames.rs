//! Socket frames, the same on WebSocket (text messages) and TCP (payloads of
//! length-prefixed frames): JSON objects with an `op` and, on requests, an
//! optional `rid` the reply echoes.

pub use crate::decode::{DecodeError, decode_client};
use crate::errors::ErrorCode;
use magpie_core::{
    ChainLink, ClientMsgId, ConvId, DeviceId, GroupId, Message, Persistence, Post, PostId,
    RoomMessage, Seq, UserId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Acknowledged sequences are unsigned on the wire (docs/protocol.md, `ack`):
/// one above any sequence the server assigns (over `i64::MAX`)
/// acknowledges nothing, like any other sequence that was never pushed.
pub(crate) fn unsigned_seqs<'de, D>(d: D) -> Result<Vec<Seq>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = Vec::<u64>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|s| Seq::try_from(s).ok())
        .collect())
}

/// A sync's positions (docs/protocol.md §3.9): a key that is not a
/// conversation id is ignored, like a conversation the user is not part of,
/// so one bad key does not cost the client the whole sync; a position that
/// is not an integer is still a bad field.
pub fn sync_positions<'de, D>(d: D) -> Result<BTreeMap<ConvId, Seq>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = BTreeMap::<String, Seq>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| Some((ConvId::parse(&k).ok()?, v)))
        .collect())
}

/// A frame from the client: the request id and the operation.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    pub rid: Option<u64>,
    pub op: ClientOp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientOp {
    /// First frame on every connection: the ticket from `POST /v1/connect`.
    Hello {
        ticket: String,
    },
    /// Send a direct message (`to`) or a group message (`group`): exactly one.
    Send {
        #[serde(default, skip_serializing_if = "UserId::is_unset")]
        to: UserId,
        cmid: ClientMsgId,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        persistence: Option<Persistence>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<GroupId>,
        /// This message's link in the device's ordering chain
        /// (docs/protocol.md, "Ordering chain"); absent: not ordered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<ChainLink>,
        /// The client's W3C trace context to continue (docs/observability.md);
        /// one that is not valid is ignored and a new trace started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
        /// Sample this message's trace whatever the sampling ratio (support
        /// cases).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sample: bool,
        /// A reply: the sequence of the message of this conversation it
        /// answers (docs/protocol.md §5.10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Seq>,
        /// An edit: `body` is the new text of this sequence, a message of the
        /// sender's in this conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit: Option<Seq>,
        /// A recall of this sequence (`body` empty).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recall: Option<Seq>,
        /// Members of the group this message mentions (docs/protocol.md §5.11).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
        /// `@all`: mentions every member (owners and admins only).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mention_all: bool,
    },
    /// The chain id the server expects on this device's next chained send
    /// (starting a chain if there is none): answered by `chain_result`.
    Chain,
    /// Delivery acknowledgement of pushed messages.
    Ack {
        conv: ConvId,
        #[serde(deserialize_with = "unsigned_seqs")]
        seqs: Vec<Seq>,
    },
    /// "I have read `conv` up to `seq`."
    Read {
        conv: ConvId,
        seq: Seq,
    },
    /// What follows the client's last sequence per conversation; conversations
    /// it does not list are synced from 0.
    Sync {
        #[serde(default, deserialize_with = "sync_positions")]
        convs: BTreeMap<ConvId, Seq>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Older messages of one conversation, newest first ("pull up for more").
    History {
        conv: ConvId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Seq>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Unread counts.
    Unread,
    Ping,
    Pong,
    /// Ends the session: the device goes offline with reason "logout".
    Logout,
    /// Join a live room's audience (this connection).
    RoomJoin {
        room: String,
    },
    RoomLeave {
        room: String,
    },
    /// Say something in a room this connection joined.
    RoomSend {
        room: String,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<UserId>,
    },
    /// The users whose presence this connection watches, replacing the
    /// previous set (docs/protocol.md §5.7).
    PresenceWatch {
        users: Vec<UserId>,
    },
    /// Follow a user (docs/protocol.md §3.16): answered by `follow_ok`.
    Follow {
        user: UserId,
    },
    /// Stop following a user: answered by `unfollow_ok`.
    Unfollow {
        user: UserId,
    },
    /// Publish a post, once per `cmid`: answered by `posted`.
    Post {
        cmid: ClientMsgId,
        body: String,
    },
    /// Delete one of your posts: answered by `post_deleted`.
    PostDelete {
        post: PostId,
    },
    /// A page of your home feed below `before`: answered by `feed_result`.
    Feed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<PostId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Search the messages you may see (docs/search.md): answered by
    /// `search_result`.
    Search {
        #[serde(flatten)]
        query: crate::search::SearchParams,
    },
    /// "I am typing in `conv`" (`active`, the default) or "I stopped":
    /// ephemeral, never stored, not answered unless refused
    /// (docs/protocol.md, "Typing").
    Typing {
        conv: ConvId,
        #[serde(default = "active_default")]
        active: bool,
    },
}

fn active_default() -> bool {
    true
}

impl ClientOp {
    /// The operation's name on the wire (`op`).
    pub fn name(&self) -> &'static str {
        match self {
            ClientOp::Hello { .. } => "hello",
            ClientOp::Send { .. } => "send",
            ClientOp::Ack { .. } => "ack",
            ClientOp::Read { .. } => "read",
            ClientOp::Sync { .. } => "sync",
            ClientOp::History { .. } => "history",
            ClientOp::Unread => "unread",
            ClientOp::Ping => "ping",
            ClientOp::Pong => "pong",
            ClientOp::Logout => "logout",
            ClientOp::RoomJoin { .. } => "room_join",
            ClientOp::RoomLeave { .. } => "room_leave",
            ClientOp::RoomSend { .. } => "room_send",
            ClientOp::PresenceWatch { .. } => "presence_watch",
            ClientOp::Chain => "chain",
            ClientOp::Follow { .. } => "follow",
            ClientOp::Unfollow { .. } => "unfollow",
            ClientOp::Post { .. } => "post",
            ClientOp::PostDelete { .. } => "post_delete",
            ClientOp::Feed { .. } => "feed",
            ClientOp::Search { .. } => "search",
            ClientOp::Typing { .. } => "typing",
        }
    }
}

impl ClientFrame {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(&self.op).unwrap_or_default();
        if let (Some(rid), Some(obj)) = (self.rid, v.as_object_mut()) {
            obj.insert("rid".into(), rid.into());
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

/// A message as pushed and synced: the stored message.
pub type WireMessage = Message;

pub use magpie_core::{SyncConv, UnreadConv};

/// Alias kept for the HTTP body of the same shape.
pub type ConvSync = SyncConv;

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        user: UserId,
        device: DeviceId,
        node: String,
        heartbeat_ms: u64,
        idle_timeout_ms: u64,
        max_frame: usize,
        window: usize,
    },
    Sent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        cmid: ClientMsgId,
        server_id: magpie_core::ServerMsgId,
        conv: ConvId,
        seq: Seq,
        sent_at: i64,
        duplicate: bool,
    },
    /// A pushed message; acknowledge it with `ack`.
    Msg {
        #[serde(flatten)]
        msg: Message,
        /// 1 on the first push, higher on resends.
        attempt: u32,
    },
    /// `reader` has read `conv` up to `seq`.
    Receipt {
        conv: ConvId,
        reader: UserId,
        seq: Seq,
    },
    /// A device of `receiver` received your messages of the direct
    /// conversation `conv` up to `seq` (best effort, not stored).
    Delivered {
        conv: ConvId,
        receiver: UserId,
        seq: Seq,
    },
    Presence {
        user: UserId,
        device: DeviceId,
        online: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    ReadOk {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        conv: ConvId,
        seq: Seq,
    },
    SyncResult {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        convs: Vec<SyncConv>,
    },
    HistoryResult {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        conv: ConvId,
        /// Newest first.
        messages: Vec<Message>,
        more: bool,
        /// A direct conversation's peer's read position (§3.10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_read_seq: Option<Seq>,
    },
    UnreadResult {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        total: i64,
        convs: Vec<UnreadConv>,
    },
    /// The answer to `chain`: the id this device's next chained send carries.
    ChainResult {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        next: String,
    },
    Ping,
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
    },
    /// Joined: the room's recent messages as this node has them, oldest first.
    RoomJoined {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        room: String,
        recent: Vec<RoomMessage>,
    },
    RoomLeft {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        room: String,
    },
    /// The watch set was replaced; `online` are the watched users with a
    /// device online now.
    PresenceWatchOk {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        online: Vec<UserId>,
    },
    /// The room message was taken (`shed: false`) or shed at once because
    /// the room is over its rate (`shed: true`).
    RoomSent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        room: String,
        id: String,
        shed: bool,
    },
    /// A live-room message (not stored, not acknowledged, not resent).
    RoomMsg {
        msg: RoomMessage,
    },
    /// A new post of a user you follow, pushed by the feed fan-out (best
    /// effort, not acknowledged: the home feed is the truth).
    Post {
        post: Post,
    },
    /// `follow` (`changed`: false when already following).
    FollowOk {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        user: UserId,
        changed: bool,
    },
    /// `unfollow` (`changed`: false when not following).
    UnfollowOk {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        user: UserId,
        changed: bool,
    },
    /// `post`: the post as stored; `duplicate` when `cmid` was seen before.
    Posted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        post: Post,
        duplicate: bool,
    },
    /// `post_delete`.
    PostDeleted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        post: PostId,
    },
    /// `feed`: newest first; `next` is the `before` of the next page,
    /// absent on the last.
    FeedResult {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        posts: Vec<Post>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<PostId>,
    },
    /// `search`: one page of hits.
    SearchResult {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        #[serde(flatten)]
        page: crate::search::SearchPage,
    },
    /// Coalesced group read receipt for the receiver's own message `seq`:
    /// `read` members who could see it have read it, `unread` have not.
    GroupReceipt {
        conv: ConvId,
        seq: Seq,
        read: i64,
        unread: i64,
    },
    /// `user` is typing in `conv` (`active`), for at most `ttl_ms` unless
    /// told again, or stopped (docs/protocol.md, "Typing").
    Typing {
        conv: ConvId,
        user: UserId,
        /// What to show for `user`: their display name, else username
        /// (docs/protocol.md §3.18).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        name: String,
        active: bool,
        ttl_ms: u64,
    },
    /// The user, on one of their devices, read `conv` up to `seq`: clear
    /// its unread count and notifications here too.
    ReadSync {
        conv: ConvId,
        seq: Seq,
    },
    /// Pushes may have been missed without a later one to reveal the gap
    /// (the server's fast state lost this connection's route): sync now.
    Resync {
        reason: String,
    },
    /// Reconnect (to any node) after about `after_ms`, then sync.
    Reconnect {
        reason: String,
        after_ms: u64,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rid: Option<u64>,
        code: ErrorCode,
        message: String,
        /// True when the server closes the connection after this frame.
        fatal: bool,
        /// How long to wait before sending again (`rate_limited`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// A `msg` frame, serialized from a borrowed message: the same JSON as
/// `ServerFrame::Msg`, without cloning the message to build one. A push is
/// encoded once and the bytes shared by every connection it goes to.
pub fn encode_push(msg: &Message, attempt: u32) -> Vec<u8> {
    #[derive(Serialize)]
    struct Push<'a> {
        op: &'static str,
        server_id: magpie_core::ServerMsgId,
        conv: &'a ConvId,
        seq: Seq,
        from: UserId,
        to: UserId,
        cmid: ClientMsgId,
        body: &'a str,
        persistence: Persistence,
        sent_at: i64,
        attempt: u32,
        /// Only a sampled trace: the others are not worth the bytes on
        /// every push (docs/observability.md).
        #[serde(skip_serializing_if = "Option::is_none")]
        trace: Option<magpie_core::TraceContext>,
        #[serde(skip_serializing_if = "Option::is_none")]
        meta: Option<&'a magpie_core::MessageMeta>,
    }
    let frame = Push {
        meta: msg.meta.as_deref(),
        op: "msg",
        server_id: msg.server_id,
        conv: &msg.conv,
        seq: msg.seq,
        from: msg.from,
        to: msg.to,
        cmid: msg.cmid,
        body: &msg.body,
        persistence: msg.persistence,
        sent_at: msg.sent_at,
        attempt,
        trace: msg.trace.filter(|t| t.sampled),
    };
    serde_json::to_vec(&frame).unwrap_or_default()
}

impl ServerFrame {
    /// The answer to a send that was accepted (`duplicate` for a retry).
    pub fn sent(rid: Option<u64>, cmid: ClientMsgId, a: magpie_core::Accepted) -> ServerFrame {
        let r = crate::http::SendResult::new(cmid, a);
        ServerFrame::Sent {
            rid,
            cmid: r.cmid,
            server_id: r.server_id,
            conv: r.conv,
            seq: r.seq,
            sent_at: r.sent_at,
            duplicate: r.duplicate,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    pub fn decode(bytes: &[u8]) -> Result<ServerFrame, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
    pub fn error(
        rid: Option<u64>,
        code: ErrorCode,
        message: impl Into<String>,
        fatal: bool,
    ) -> Self {
        ServerFrame::Error {
            rid,
            code,
            message: message.into(),
            fatal,
            retry_after_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_tells_errors_apart() {
        assert_eq!(
            decode_client(b"\xff\xfe").unwrap_err().code,
            ErrorCode::BadUtf8
        );
        assert_eq!(
            decode_client(b"{nope").unwrap_err().code,
            ErrorCode::BadJson
        );
        assert_eq!(decode_client(b"[1]").unwrap_err().code, ErrorCode::BadJson);
        let e = decode_client(br#"{"op":"fly","rid":4}"#).unwrap_err();
        assert_eq!((e.code, e.rid), (ErrorCode::UnknownOp, Some(4)));
        let e = decode_client(br#"{"op":"send","rid":5,"to":"x"}"#).unwrap_err();
        assert_eq!((e.code, e.rid), (ErrorCode::BadField, Some(5)));
        assert_eq!(
            decode_client(br#"{"rid":1}"#).unwrap_err().code,
            ErrorCode::BadField
        );
    }

    #[test]
    fn client_frames_round_trip() {
        let f = ClientFrame {
            rid: Some(9),
            op: ClientOp::Send {
                reply_to: None,
                recall: None,
                mentions: Vec::new(),
                mention_all: false,
                edit: None,
                traceparent: None,
                sample: false,
                to: UserId(2),
                cmid: ClientMsgId::new_v7(),
                body: "hi".into(),
                persistence: None,
                group: None,
                chain: Some(ChainLink::new("a", "b").unwrap()),
            },
        };
        assert_eq!(decode_client(&f.encode()).unwrap(), f);
        let c = ClientFrame {
            rid: Some(3),
            op: ClientOp::Chain,
        };
        assert_eq!(decode_client(&c.encode()).unwrap(), c);
        let p = ClientFrame {
            rid: None,
            op: ClientOp::Ping,
        };
        assert_eq!(decode_client(&p.encode()).unwrap(), p);
    }

    #[test]
    fn encoded_push_is_a_msg_frame() {
        let msg = Message {
            meta: None,
            trace: None,
            server_id: magpie_core::ServerMsgId(7),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq: 3,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: "hi \"there\"".into(),
            persistence: Persistence::Days(3),
            sent_at: 5,
            search: false,
        };
        let f = ServerFrame::decode(&encode_push(&msg, 2)).expect("decodes");
        assert_eq!(f, ServerFrame::Msg { msg, attempt: 2 });
    }

    #[test]
    fn server_frames_round_trip() {
        let f = ServerFrame::error(Some(1), ErrorCode::BadField, "to: missing", false);
        let text = String::from_utf8(f.encode()).unwrap();
        assert!(text.contains(r#""op":"error""#) && text.contains(r#""code":"bad_field""#));
        assert_eq!(ServerFrame::decode(text.as_bytes()).unwrap(), f);
    }
}
