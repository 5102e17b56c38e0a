//! Opening a bus payload without buffering it.
//!
//! serde's derive for an internally tagged enum (`BusEvent`'s `type`) first
//! copies the whole event into an intermediate tree (every message body a
//! new `String`) and only then reads the variant out of that tree: for a
//! batch of messages, every consumer paid each allocation twice
//! (docs/performance.md, "The release profile and the bus decoder").
//!
//! Invariant: the result is the derive's for every payload. The encoder
//! (serde, for an internally tagged enum) writes the tag first, so the
//! events consumers open most — `messages`, `delivered`, `read` — are read
//! here field by field straight into their types; any other variant, or a
//! payload whose first key is not the tag, is handed to the derive whole.

use crate::event::{BusEvent, ReadUpTo};
use crate::ids::{ConvId, DeviceId, Seq, UserId};
use crate::message::Message;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer as _, Error as _, MapAccess, Visitor};
use std::fmt;

/// Decodes one event (the whole payload: trailing bytes are an error).
pub(crate) fn open(payload: &[u8]) -> serde_json::Result<BusEvent> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let event = (&mut de).deserialize_map(TagFirst)?;
    de.end()?;
    Ok(event)
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

struct TagFirst;

impl<'de> Visitor<'de> for TagFirst {
    type Value = BusEvent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a bus event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BusEvent, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return derived(serde_json::Map::new(), map);
        };
        let value: serde_json::Value = map.next_value()?;
        let tag = match (first.as_str(), &value) {
            ("type", serde_json::Value::String(tag)) => tag.as_str(),
            _ => "",
        };
        match tag {
            "messages" => MessagesFields::deserialize(MapAccessDeserializer::new(map))
                .map(|f| BusEvent::Messages { msgs: f.msgs }),
            "delivered" => DeliveredFields::deserialize(MapAccessDeserializer::new(map)).map(|f| {
                BusEvent::Delivered {
                    user: f.user,
                    device: f.device,
                    conv: f.conv,
                    seqs: f.seqs,
                }
            }),
            "read" => ReadUpTo::deserialize(MapAccessDeserializer::new(map)).map(BusEvent::Read),
            _ => {
                let mut fields = serde_json::Map::new();
                fields.insert(first, value);
                derived(fields, map)
            }
        }
    }
}

/// The derive's path: the fields read so far and the rest of the map,
/// collected and decoded by `BusEvent`'s own `Deserialize`.
fn derived<'de, A: MapAccess<'de>>(
    mut fields: serde_json::Map<String, serde_json::Value>,
    mut map: A,
) -> Result<BusEvent, A::Error> {
    while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
        fields.insert(k, v);
    }
    BusEvent::deserialize(serde_json::Value::Object(fields)).map_err(A::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DeliverPayload;
    use crate::ids::{ClientMsgId, ServerMsgId};
    use crate::settings::Persistence;

    fn message(seq: Seq, body: &str) -> Message {
        Message {
            server_id: ServerMsgId(seq + 100),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: body.into(),
            persistence: Persistence::Forever,
            sent_at: 5,
        }
    }

    /// Every variant opens to what was sealed, fast or derived path alike.
    #[test]
    fn every_variant_round_trips() {
        let conv = ConvId::direct(UserId(1), UserId(2));
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
                device: DeviceId::new("phone").expect("device"),
                conv,
                seqs: vec![1, 2, 3],
            },
            BusEvent::Deliver {
                node: "n2".into(),
                targets: vec![(UserId(1), 7)],
                payload: DeliverPayload::Settings,
            },
        ];
        for event in events {
            let bytes = serde_json::to_vec(&event).expect("encodes");
            assert_eq!(open(&bytes).expect("opens"), event);
            let derived: BusEvent = serde_json::from_slice(&bytes).expect("derive");
            assert_eq!(derived, event);
        }
    }

    /// A payload whose tag is not its first key, with unknown fields, or
    /// with bad input decodes exactly as the derive would.
    #[test]
    fn agrees_with_the_derive_on_odd_payloads() {
        let odd: &[&[u8]] = &[
            br#"{"user":2,"type":"read","conv":"d:1:2","seq":7,"at":9}"#,
            br#"{"type":"read","user":2,"conv":"d:1:2","seq":7,"at":9,"extra":[1]}"#,
            br#"{"type":"delivered","user":2,"device":"d","conv":"d:1:2"}"#,
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
