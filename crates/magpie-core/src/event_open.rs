//! Opening a bus payload without buffering it.
//!
//! serde's derive for an internally tagged enum (`BusEvent`'s `type`,
//! `DeliverPayload`'s `kind`) first copies the whole value into an
//! intermediate tree (every message body a new `String`) and only then
//! reads the variant out of that tree: for a batch of messages, every
//! consumer paid each allocation twice (docs/performance.md, "The store's
//! key order, the release profile and the decoders").
//!
//! Invariant: the result is the derive's for every payload. The encoder
//! (serde, for an internally tagged enum) writes the tag first, so each
//! variant that carries messages or travels often is read here field by
//! field straight into its types; a rare variant (a legacy `message`, a
//! membership change, a small push payload), or a value whose first key is
//! not its tag, is handed to the derive whole.

use crate::event::{BusEvent, DeliverPayload, ReadUpTo};
use crate::ids::{ConvId, DeviceId, Seq, UserId};
use crate::message::Message;
use crate::room::RoomMessage;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, Error as _, MapAccess, Visitor};
use std::fmt;

/// Decodes one event (the whole payload: trailing bytes are an error).
pub(crate) fn open(payload: &[u8]) -> serde_json::Result<BusEvent> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let event = (&mut de).deserialize_map(EventVisitor)?;
    de.end()?;
    Ok(event)
}

/// The rest of a map after its tag, as a deserializer of the variant's fields.
type Rest<A> = MapAccessDeserializer<A>;

/// Reads a map's first entry; when it is `tag` with a string value, `fast`
/// gets that string and the rest of the map, and gives the rest back for a
/// variant it leaves to the derive. Otherwise the whole map goes to `T`'s
/// own `Deserialize`.
fn tag_first<'de, A, T, F>(mut map: A, tag: &str, fast: F) -> Result<T, A::Error>
where
    A: MapAccess<'de>,
    T: DeserializeOwned,
    F: FnOnce(&str, Rest<A>) -> Result<Result<T, A::Error>, Rest<A>>,
{
    let mut fields = serde_json::Map::new();
    if let Some(first) = map.next_key::<String>()? {
        let value: serde_json::Value = map.next_value()?;
        if first == tag
            && let serde_json::Value::String(t) = &value
        {
            match fast(t, MapAccessDeserializer::new(map)) {
                Ok(done) => return done,
                Err(rest) => {
                    fields.insert(first, value);
                    return derived(fields, rest);
                }
            }
        }
        fields.insert(first, value);
    }
    derived(fields, MapAccessDeserializer::new(map))
}

/// The derive's path: the entries read so far and the rest of the map,
/// collected and decoded by `T`'s own `Deserialize`.
fn derived<'de, A: MapAccess<'de>, T: DeserializeOwned>(
    mut fields: serde_json::Map<String, serde_json::Value>,
    rest: Rest<A>,
) -> Result<T, A::Error> {
    fields.extend(serde_json::Map::<String, serde_json::Value>::deserialize(
        rest,
    )?);
    T::deserialize(serde_json::Value::Object(fields)).map_err(A::Error::custom)
}

#[derive(Deserialize)]
struct MessagesFields {
    msgs: Vec<Message>,
}

#[derive(Deserialize)]
struct DeliveredFields {
    user: UserId,
    device: DeviceId,
    conv: ConvId,
    seqs: Vec<Seq>,
}

#[derive(Deserialize)]
struct DeliverFields {
    node: String,
    targets: Vec<(UserId, u64)>,
    #[serde(deserialize_with = "payload")]
    payload: DeliverPayload,
}

#[derive(Deserialize)]
struct BroadcastFields {
    msg: Message,
    #[serde(default)]
    origin: Option<DeviceId>,
}

#[derive(Deserialize)]
struct RoomFields {
    msg: RoomMessage,
}

#[derive(Deserialize)]
struct MsgsFields {
    msgs: Vec<(Message, Vec<(UserId, u64)>)>,
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = BusEvent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a bus event")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BusEvent, A::Error> {
        tag_first(map, "type", |tag, rest| {
            Ok(match tag {
                "messages" => {
                    MessagesFields::deserialize(rest).map(|f| BusEvent::Messages { msgs: f.msgs })
                }
                "read" => ReadUpTo::deserialize(rest).map(BusEvent::Read),
                "delivered" => DeliveredFields::deserialize(rest).map(|f| BusEvent::Delivered {
                    user: f.user,
                    device: f.device,
                    conv: f.conv,
                    seqs: f.seqs,
                }),
                "deliver" => DeliverFields::deserialize(rest).map(|f| BusEvent::Deliver {
                    node: f.node,
                    targets: f.targets,
                    payload: f.payload,
                }),
                "group_broadcast" => {
                    BroadcastFields::deserialize(rest).map(|f| BusEvent::GroupBroadcast {
                        msg: f.msg,
                        origin: f.origin,
                    })
                }
                "room_broadcast" => {
                    RoomFields::deserialize(rest).map(|f| BusEvent::RoomBroadcast { msg: f.msg })
                }
                _ => return Err(rest),
            })
        })
    }
}

/// A `Deliver` event's payload, by the same rule (tag `kind`).
fn payload<'de, D: Deserializer<'de>>(d: D) -> Result<DeliverPayload, D::Error> {
    d.deserialize_map(PayloadVisitor)
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = DeliverPayload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a push payload")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DeliverPayload, A::Error> {
        tag_first(map, "kind", |tag, rest| match tag {
            "msgs" => {
                Ok(MsgsFields::deserialize(rest).map(|f| DeliverPayload::Msgs { msgs: f.msgs }))
            }
            _ => Err(rest),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupId;
    use crate::ids::{ClientMsgId, ServerMsgId};
    use crate::settings::Persistence;

    fn message(seq: Seq, body: &str) -> Message {
        Message {
            meta: None,
            trace: None,
            server_id: ServerMsgId(seq + 100),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: body.into(),
            persistence: Persistence::Forever,
            sent_at: 5,
            search: true,
        }
    }

    /// Every variant opens to what was sealed, fast or derived path alike.
    #[test]
    fn every_variant_round_trips() {
        let conv = ConvId::direct(UserId(1), UserId(2));
        let phone = DeviceId::new("phone").expect("device");
        let deliver = |payload| BusEvent::Deliver {
            node: "n2".into(),
            targets: vec![(UserId(1), 7)],
            payload,
        };
        let events = [
            BusEvent::Messages {
                msgs: vec![message(1, "hi \"there\" \u{1F600}"), message(2, "")],
            },
            BusEvent::Message {
                msg: message(3, "x"),
            },
            BusEvent::Read(ReadUpTo {
                user: UserId(2),
                conv: conv.clone(),
                seq: 7,
                at: 9,
            }),
            BusEvent::Delivered {
                user: UserId(2),
                device: phone.clone(),
                conv,
                seqs: vec![1, 2, 3],
            },
            deliver(DeliverPayload::Settings),
            deliver(DeliverPayload::Msgs {
                msgs: vec![(message(4, "y"), vec![(UserId(2), 9)])],
            }),
            deliver(DeliverPayload::Msg {
                msg: message(5, "z"),
            }),
            deliver(DeliverPayload::Frame {
                frame: r#"{"op":"pong"}"#.into(),
            }),
            deliver(DeliverPayload::GroupReads {
                ranges: vec![(GroupId(3), 1, 4)],
            }),
            BusEvent::GroupBroadcast {
                msg: message(6, "g"),
                origin: Some(phone),
            },
            BusEvent::GroupBroadcast {
                msg: message(7, "g"),
                origin: None,
            },
            BusEvent::RoomBroadcast {
                msg: RoomMessage {
                    room: "r1".into(),
                    id: "77".into(),
                    from: UserId(1),
                    to: None,
                    body: "gift".into(),
                    vip: true,
                    sent_at: 8,
                },
            },
            BusEvent::GroupMember {
                group: GroupId(3),
                user: UserId(2),
                joined: true,
            },
            BusEvent::Posted {
                author: UserId(2),
                post: crate::PostId(1 << 60),
            },
        ];
        for event in events {
            let bytes = serde_json::to_vec(&event).expect("encodes");
            assert_eq!(open(&bytes).expect("opens"), event);
            let derived: BusEvent = serde_json::from_slice(&bytes).expect("derive");
            assert_eq!(derived, event);
        }
    }

    /// A value whose tag is not its first key, with unknown fields, or with
    /// bad input decodes exactly as the derive would.
    #[test]
    fn agrees_with_the_derive_on_odd_payloads() {
        let odd: &[&[u8]] = &[
            br#"{"user":2,"type":"read","conv":"d:1:2","seq":7,"at":9}"#,
            br#"{"type":"read","user":2,"conv":"d:1:2","seq":7,"at":9,"extra":[1]}"#,
            br#"{"type":"delivered","user":2,"device":"d","conv":"d:1:2"}"#,
            br#"{"type":"deliver","node":"n","targets":[],"payload":{"ranges":[],"kind":"group_reads"}}"#,
            br#"{"type":"deliver","node":"n","targets":[],"payload":{"kind":"msgs","msgs":7}}"#,
            br#"{"type":"deliver","node":"n","targets":[],"payload":{"kind":"frame","frame":{"op":"pong"}}}"#,
            br#"{"type":"group_member","group":3,"user":2,"joined":false}"#,
            br#"{"type":"nope"}"#,
            br#"{"type":7}"#,
            br#"{}"#,
            br#"[1,2]"#,
            br#"{"type":"messages","msgs":[]} x"#,
        ];
        for bytes in odd {
            let derived = serde_json::from_slice::<BusEvent>(bytes);
            let ours = open(bytes);
            assert_eq!(
                ours.is_ok(),
                derived.is_ok(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
            if let (Ok(a), Ok(b)) = (ours, derived) {
                assert_eq!(a, b);
            }
        }
    }
}
