//! Events carried by the bus between the logic and the workers.
//!
//! Every event is applied idempotently by its consumers (insert-if-absent,
//! max-of positions), because the bus delivers at least once.

use crate::feed::PostId;
use crate::group::GroupId;
use crate::ids::{ConvId, DeviceId, Seq, UserId};
use crate::message::Message;
use crate::room::RoomMessage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusEvent {
    /// A message was accepted (it is durable in the store). Still read, no
    /// longer written: events of a log written by an older version.
    Message { msg: Message },
    /// Messages accepted together, in acceptance order (so each
    /// conversation's in sequence order). One event per batch, not per
    /// message: a durable log that syncs every append (JetStream with
    /// `sync_interval: always`) then syncs once per batch.
    Messages { msgs: Vec<Message> },
    /// `user` has read `conv` up to `seq` (topic `read`).
    Read(ReadUpTo),
    /// A device of `user` acknowledged delivery of these sequences.
    Delivered {
        user: UserId,
        device: DeviceId,
        conv: ConvId,
        seqs: Vec<Seq>,
    },
    /// Pushes for connections held by one node (node-addressed delivery):
    /// published on topic `node.{node}`, consumed only there.
    Deliver {
        node: String,
        targets: Vec<(UserId, u64)>,
        payload: DeliverPayload,
    },
    /// A super-group message, published once on the group's relay topic
    /// (`group_topic`), which a connection node subscribes to only while
    /// members of the group are connected there: each such node pushes it to
    /// its own online members (found through its local group index), none
    /// looks up a route.
    GroupBroadcast {
        msg: Message,
        /// The sender's device that sent it (it already has it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<DeviceId>,
    },
    /// A live-room message, broadcast like a super-group message on the
    /// room's topic (`room_topic`) to the nodes with viewers; each sheds
    /// ordinary ones beyond the room's rate for its audience.
    RoomBroadcast { msg: RoomMessage },
    /// `user` joined or left `group`: nodes holding the user's connections
    /// update their group index (durable topic `members`).
    GroupMember {
        group: GroupId,
        user: UserId,
        joined: bool,
    },
    /// `author` stored post `post` in its outbox (topic `post`): the feed
    /// fan-out writes its key into the followers' inboxes (docs/feeds.md).
    Posted { author: UserId, post: PostId },
}

/// What a `Deliver` event pushes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeliverPayload {
    /// A message, tracked until acknowledged.
    Msg { msg: Message },
    /// Messages of one send batch, each with its own targets (the event's
    /// `targets` is then empty): one event per node and batch, not per
    /// message.
    Msgs {
        msgs: Vec<(Message, Vec<(UserId, u64)>)>,
    },
    /// Any other server frame (receipt, presence), as its encoded JSON
    /// text: the receiving node writes it to the socket as is.
    Frame {
        #[serde(deserialize_with = "frame_text")]
        frame: String,
    },
    /// The user's settings changed: the connections read them again.
    Settings,
    /// Group reads a node handled, for the group's receipts owner: per
    /// group, the range of sequences newly read there (`targets` empty).
    GroupReads { ranges: Vec<(GroupId, Seq, Seq)> },
}

/// A frame's text; events of a log written by an older version carry the
/// frame as a JSON object instead, read back as its text.
fn frame_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(text) => text,
        object => object.to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadUpTo {
    pub user: UserId,
    pub conv: ConvId,
    pub seq: Seq,
    pub at: i64,
}

/// A device came online or went offline. Not a bus event: presence is
/// ephemeral and travels as relay pushes (ARCHITECTURE.md, "two bus paths").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub user: UserId,
    pub device: DeviceId,
    pub online: bool,
    pub node: String,
    pub at: i64,
    /// Why a device went offline: "logout", "closed", "idle", "shutdown",
    /// "slow_consumer", "error" or "node_lost" (cleaned up by the sweeper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl BusEvent {
    /// The topic the event is published on.
    pub fn topic(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            BusEvent::Deliver { node, .. } => Owned(node_topic(node)),
            BusEvent::Message { .. } | BusEvent::Messages { .. } => Borrowed("msg"),
            BusEvent::Read(_) => Borrowed("read"),
            BusEvent::Delivered { .. } => Borrowed("delivered"),
            BusEvent::GroupMember { .. } => Borrowed(MEMBERS_TOPIC),
            BusEvent::GroupBroadcast { msg, .. } => match msg.conv.group_id() {
                Some(g) => Owned(group_topic(g)),
                None => Borrowed(STRAY_BROADCAST_TOPIC),
            },
            BusEvent::RoomBroadcast { msg } => Owned(room_topic(&msg.room)),
            BusEvent::Posted { .. } => Borrowed(POST_TOPIC),
        }
    }

    /// The partition key: a partitioned log (JetStream with
    /// `partitions=P`, Kafka) keeps the events of one key in publish order,
    /// and only those. Per conversation for messages and positions (a batch
    /// by its first message's: the publisher puts only conversations of
    /// one partition in a batch), per node for its pushes, per group or
    /// room for broadcasts and membership. A log of one partition keeps one
    /// order per topic.
    pub fn partition_key(&self) -> String {
        match self {
            BusEvent::Message { msg } => msg.conv.to_string(),
            BusEvent::Messages { msgs } => {
                msgs.first().map(|m| m.conv.to_string()).unwrap_or_default()
            }
            BusEvent::Read(r) => r.conv.to_string(),
            BusEvent::Delivered { conv, .. } => conv.to_string(),
            BusEvent::Deliver { node, .. } => node.clone(),
            BusEvent::GroupBroadcast { msg, .. } => msg.conv.to_string(),
            BusEvent::RoomBroadcast { msg } => format!("room:{}", msg.room),
            BusEvent::GroupMember { group, .. } => ConvId::group(*group).to_string(),
            BusEvent::Posted { author, .. } => format!("u:{author}"),
        }
    }
}

/// The relay topic of a super group's messages: subscribed to by the
/// nodes where members of the group are connected, and only while they are
/// (best effort; a loss makes the receivers sync).
pub fn group_topic(g: GroupId) -> String {
    format!("bcast.g.{}", g.0)
}

/// The relay topic of a live room's messages, subscribed to by the nodes
/// with viewers in the room (room names are valid subject tokens:
/// `room::valid_room`).
pub fn room_topic(room: &str) -> String {
    format!("bcast.r.{room}")
}

/// Where a group broadcast without a group conversation would go (a bug
/// upstream): a topic nobody subscribes to.
const STRAY_BROADCAST_TOPIC: &str = "bcast.stray";

/// The durable topic of membership changes, which every connection node
/// consumes (each with its own group) to keep its local group index.
pub const MEMBERS_TOPIC: &str = "members";

/// The durable topic of stored posts, consumed by the feed fan-out.
pub const POST_TOPIC: &str = "post";

/// The topic of pushes addressed to `node`.
pub fn node_topic(node: &str) -> String {
    format!("node.{node}")
}
