//! Messages as the server accepts, stores and delivers them.

use crate::ids::{ClientMsgId, ConvId, Seq, ServerMsgId, UserId};
use crate::meta::MessageMeta;
use crate::settings::Persistence;
use crate::trace::TraceContext;
use serde::{Deserialize, Serialize};

/// A send request after validation, before it has a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub server_id: ServerMsgId,
    pub conv: ConvId,
    pub from: UserId,
    pub to: UserId,
    pub cmid: ClientMsgId,
    pub body: String,
    pub persistence: Persistence,
    pub sent_at: i64,
    /// The sender's `search` setting at acceptance (docs/search.md).
    pub search: bool,
    /// The message's trace (`trace.rs`; docs/observability.md).
    pub trace: Option<TraceContext>,
    /// What it refers to: a reply, an edit or a recall (`meta.rs`).
    pub meta: Option<Box<MessageMeta>>,
}

/// A message as stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub server_id: ServerMsgId,
    pub conv: ConvId,
    pub seq: Seq,
    pub from: UserId,
    pub to: UserId,
    pub cmid: ClientMsgId,
    pub body: String,
    pub persistence: Persistence,
    pub sent_at: i64,
    /// Whether the message may be indexed for search: its sender's `search`
    /// setting when it was accepted, kept with the message so a rebuilt
    /// index decides the same (docs/search.md). On the wire only when true;
    /// absent (an event or row from before it was recorded) means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub search: bool,
    /// Its trace context (`trace.rs`) when it must travel: sampled, or the
    /// client's; on the bus and the relay, so every node records its hops
    /// under one trace id, and on a push, where a client may continue it.
    /// Absent, every node derives the same one (`trace_context`). Not
    /// stored: history and sync carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// A reply, an edit or a recall, and whether this message was edited or
    /// recalled since (`meta.rs`, docs/protocol.md §5.10). Absent for a plain
    /// message: the hot path carries one null pointer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Box<MessageMeta>>,
}

/// The outcome of accepting a send: the ids the sender is acknowledged with.
/// `duplicate` is true when the client message id had been seen before and
/// this is the original result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub server_id: ServerMsgId,
    pub conv: ConvId,
    pub seq: Seq,
    pub sent_at: i64,
    pub duplicate: bool,
    /// For a group message accepted now (not a duplicate): the group's
    /// membership as the accepting transaction saw it, so pushes can use a
    /// cached member list that is at least as new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<crate::GroupStamp>,
}

impl Message {
    /// Its trace context: the one it carries (sampled, or the client's), else
    /// the one derived from its server id (`TraceContext::derived`).
    pub fn trace_context(&self) -> TraceContext {
        self.trace
            .unwrap_or_else(|| TraceContext::derived(self.server_id.0))
    }

    pub fn from_new(m: NewMessage, seq: Seq) -> Message {
        Message {
            server_id: m.server_id,
            conv: m.conv,
            seq,
            from: m.from,
            to: m.to,
            cmid: m.cmid,
            body: m.body,
            persistence: m.persistence,
            sent_at: m.sent_at,
            search: m.search,
            trace: m.trace,
            meta: m.meta,
        }
    }
}
