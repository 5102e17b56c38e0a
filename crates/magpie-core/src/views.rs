//! What a reader gets back: a conversation's messages after a sequence
//! (sync), a page of history and unread counts. Domain results of the
//! messaging service; the wire (`magpie-proto`) carries them as they are,
//! so there is one definition of each.

use crate::{ConvId, Message, Seq, UserId};
use serde::{Deserialize, Serialize};

/// One conversation in a sync answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConv {
    pub conv: ConvId,
    /// Messages after the client's sequence, ascending.
    pub messages: Vec<Message>,
    /// The conversation's newest sequence now.
    pub last_seq: Seq,
    /// The member's read position.
    pub read_seq: Seq,
    /// True when there are more messages after the last one returned: sync again
    /// from the last returned sequence.
    pub more: bool,
    /// Sequence ranges `[from, to]` (inclusive) in the requested span that can no
    /// longer be recovered (removed by their persistence level). Never a silent gap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<(Seq, Seq)>,
}

/// One conversation's unread count, derived from its sequences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadConv {
    pub conv: ConvId,
    pub peer: UserId,
    pub unread: i64,
    pub last_seq: Seq,
    pub read_seq: Seq,
    /// Of the unread, the group messages that mention this user by name or
    /// `@all` (docs/protocol.md §5.11); 0 in a direct conversation.
    #[serde(default)]
    pub mentions: i64,
    /// This user muted the conversation's notifications.
    #[serde(default)]
    pub muted: bool,
}

/// A page of history: `GET /v1/conversations/{conv}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryPage {
    pub conv: ConvId,
    /// Newest first with `before` (or neither); ascending with `after`.
    pub messages: Vec<Message>,
    pub more: bool,
    /// In a direct conversation, the peer's read position: the sender's
    /// "read" marks survive a reload (docs/protocol.md §3.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_read_seq: Option<Seq>,
}

/// Who a user is: what a look-up by name or id answers (docs/protocol.md
/// §3.18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub id: UserId,
    pub username: String,
    /// The name to show, if the user set one (else show `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// An image URL (http or https), if the user set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}
