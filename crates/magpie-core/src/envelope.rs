//! The bus envelope: how a [`BusEvent`] travels — its topic, its
//! idempotency id and its payload bytes — encoded and decoded here and
//! nowhere else.
//!
//! Invariants:
//! - An event's id is made from the event's own identity ([`EventId`]), so
//!   a publish retried with the same event is the same id and the bus
//!   de-duplicates it (within its window, ARCHITECTURE.md "bus"); two
//!   different events never share one.
//! - Every id format is written once, in `EventId`'s `Display`.

use crate::event::BusEvent;
use crate::group::GroupId;
use crate::ids::{ConvId, DeviceId, Seq, ServerMsgId, UserId};
use std::fmt;

/// What identifies one published event, for the bus's de-duplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventId {
    /// Messages accepted together: the first one's server id and how many.
    Messages { first: ServerMsgId, count: usize },
    /// A read position reached.
    Read {
        user: UserId,
        conv: ConvId,
        seq: Seq,
    },
    /// Delivery acknowledgements of one device in one conversation, from
    /// `first` on, taken at `at` (ms).
    Delivered {
        user: UserId,
        device: DeviceId,
        conv: ConvId,
        first: Seq,
        at: i64,
    },
    /// Messages pushed to another node's connections: the first one's
    /// server id and how many.
    DeliverMessages {
        node: String,
        first: ServerMsgId,
        count: usize,
    },
    /// Any other push to another node; `nonce` is unique per sending node.
    DeliverOther { node: String, nonce: u64 },
    /// A super-group message's broadcast.
    Broadcast { msg: ServerMsgId },
    /// A live-room message (its id is unique per message).
    Room { id: String },
    /// A group membership change taken at `at` (ms).
    Member {
        group: GroupId,
        user: UserId,
        joined: bool,
        at: i64,
    },
    /// A post stored (its id is unique per post: a retry that publishes
    /// again is the same event).
    Post { post: crate::feed::PostId },
    /// An event parked after failing in consumer group `group`.
    DeadLetter { group: String, offset: u64 },
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventId::Messages { first, count } => write!(f, "m:{}:{count}", first.0),
            EventId::Read { user, conv, seq } => write!(f, "r:{user}:{conv}:{seq}"),
            EventId::Delivered {
                user,
                device,
                conv,
                first,
                at,
            } => write!(f, "d:{user}:{device}:{conv}:{first}:{at}"),
            EventId::DeliverMessages { node, first, count } => {
                write!(f, "x:{node}:{}:{count}", first.0)
            }
            EventId::DeliverOther { node, nonce } => write!(f, "f:{node}:{nonce}"),
            EventId::Broadcast { msg } => write!(f, "b:{}", msg.0),
            EventId::Room { id } => write!(f, "room:{id}"),
            EventId::Member {
                group,
                user,
                joined,
                at,
            } => write!(f, "gm:{group}:{user}:{joined}:{at}"),
            EventId::Post { post } => write!(f, "p:{post}"),
            EventId::DeadLetter { group, offset } => write!(f, "dead:{group}:{offset}"),
        }
    }
}

/// An event ready for the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub topic: String,
    /// `BusEvent::partition_key`.
    pub key: String,
    pub id: String,
    pub payload: Vec<u8>,
}

impl Envelope {
    /// Seals `event` under `id`.
    pub fn seal(event: &BusEvent, id: &EventId) -> serde_json::Result<Envelope> {
        Ok(Envelope {
            topic: event.topic().into_owned(),
            key: event.partition_key(),
            id: id.to_string(),
            payload: serde_json::to_vec(event)?,
        })
    }

    /// Opens a payload read from the bus (`event_open`: the frequent
    /// events without serde's buffering of internally tagged enums).
    pub fn open(payload: &[u8]) -> serde_json::Result<BusEvent> {
        crate::event_open::open(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ReadUpTo;

    #[test]
    fn an_event_seals_and_opens_under_its_id() {
        let conv = ConvId::direct(UserId(1), UserId(2));
        let event = BusEvent::Read(ReadUpTo {
            user: UserId(2),
            conv: conv.clone(),
            seq: 7,
            at: 9,
        });
        let id = EventId::Read {
            user: UserId(2),
            conv,
            seq: 7,
        };
        let env = Envelope::seal(&event, &id).expect("seals");
        assert_eq!(
            (env.topic.as_str(), env.key.as_str(), env.id.as_str()),
            ("read", "d:1:2", "r:2:d:1:2:7")
        );
        assert_eq!(Envelope::open(&env.payload).expect("opens"), event);
        let m = EventId::Messages {
            first: ServerMsgId(5),
            count: 3,
        };
        assert_eq!(m.to_string(), "m:5:3");
    }

    /// A pushed frame travels as its text; one written by an older version
    /// as a JSON object opens as that object's text.
    #[test]
    fn a_pushed_frame_is_text_and_old_objects_still_open() {
        use crate::event::DeliverPayload;
        let old = br#"{"type":"deliver","node":"n2","targets":[[1,7]],
            "payload":{"kind":"frame","frame":{"op":"pong"}}}"#;
        match Envelope::open(old).expect("opens") {
            BusEvent::Deliver {
                payload: DeliverPayload::Frame { frame },
                ..
            } => assert_eq!(frame, r#"{"op":"pong"}"#),
            other => panic!("{other:?}"),
        }
        let event = BusEvent::Deliver {
            node: "n2".into(),
            targets: vec![(UserId(1), 7)],
            payload: DeliverPayload::Frame {
                frame: r#"{"op":"pong"}"#.into(),
            },
        };
        let id = EventId::DeliverOther {
            node: "n2".into(),
            nonce: 1,
        };
        let env = Envelope::seal(&event, &id).expect("seals");
        assert_eq!((env.topic.as_str(), env.key.as_str()), ("node.n2", "n2"));
        assert_eq!(Envelope::open(&env.payload).expect("opens"), event);
    }
}
