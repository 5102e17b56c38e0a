//! Decoding client frames. Nearly every frame is well formed, so the fast
//! path reads it in one pass into a flat struct of borrowed fields and
//! builds the operation from it; anything unusual (a missing or mistyped
//! field, an unknown op, bad UTF-8) takes the careful path, which says
//! exactly what is wrong. Both give the same result for a valid frame (see
//! the tests).

use crate::errors::ErrorCode;
use crate::frames::{ClientFrame, ClientOp};
use magpie_core::{ChainLink, ClientMsgId, ConvId, GroupId, Persistence, Seq, UserId};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Decodes a client frame from raw bytes, telling apart invalid UTF-8,
/// malformed JSON, an unknown operation and a bad field.
pub fn decode_client(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
    match decode_fast(bytes) {
        Some(frame) => Ok(frame),
        None => decode_slow(bytes),
    }
}

/// Every field any operation has; what an operation does not use is ignored.
#[derive(Deserialize)]
struct Flat<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    rid: Option<u64>,
    to: Option<UserId>,
    cmid: Option<ClientMsgId>,
    body: Option<String>,
    persistence: Option<Persistence>,
    group: Option<GroupId>,
    conv: Option<ConvId>,
    #[serde(default, deserialize_with = "some_unsigned_seqs")]
    seqs: Option<Vec<Seq>>,
    seq: Option<Seq>,
    #[serde(default, deserialize_with = "some_sync_positions")]
    convs: Option<BTreeMap<ConvId, Seq>>,
    limit: Option<usize>,
    before: Option<Seq>,
    ticket: Option<String>,
    room: Option<String>,
    users: Option<Vec<UserId>>,
    chain: Option<ChainLink>,
    traceparent: Option<String>,
    #[serde(default)]
    sample: bool,
    active: Option<bool>,
    reply_to: Option<Seq>,
    edit: Option<Seq>,
    recall: Option<Seq>,
    #[serde(default)]
    mentions: Vec<UserId>,
    #[serde(default)]
    mention_all: bool,
}

fn some_unsigned_seqs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Seq>>, D::Error> {
    crate::frames::unsigned_seqs(d).map(Some)
}

fn some_sync_positions<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<ConvId, Seq>>, D::Error> {
    crate::frames::sync_positions(d).map(Some)
}

fn decode_fast(bytes: &[u8]) -> Option<ClientFrame> {
    let f: Flat = serde_json::from_slice(bytes).ok()?;
    let op = match f.op.as_ref() {
        "send" => ClientOp::Send {
            traceparent: f.traceparent,
            sample: f.sample,
            to: f.to.unwrap_or_default(),
            cmid: f.cmid?,
            body: f.body?,
            persistence: f.persistence,
            group: f.group,
            chain: f.chain,
            reply_to: f.reply_to,
            edit: f.edit,
            recall: f.recall,
            mentions: f.mentions,
            mention_all: f.mention_all,
        },
        "chain" => ClientOp::Chain,
        "ack" => ClientOp::Ack {
            conv: f.conv?,
            seqs: f.seqs?,
        },
        "read" => ClientOp::Read {
            conv: f.conv?,
            seq: f.seq?,
        },
        "sync" => ClientOp::Sync {
            convs: f.convs.unwrap_or_default(),
            limit: f.limit,
        },
        "history" => ClientOp::History {
            conv: f.conv?,
            before: f.before,
            limit: f.limit,
        },
        "unread" => ClientOp::Unread,
        "ping" => ClientOp::Ping,
        "pong" => ClientOp::Pong,
        "logout" => ClientOp::Logout,
        "hello" => ClientOp::Hello { ticket: f.ticket? },
        "room_join" => ClientOp::RoomJoin { room: f.room? },
        "room_leave" => ClientOp::RoomLeave { room: f.room? },
        "room_send" => ClientOp::RoomSend {
            room: f.room?,
            body: f.body?,
            to: f.to,
        },
        "presence_watch" => ClientOp::PresenceWatch { users: f.users? },
        "typing" => ClientOp::Typing {
            conv: f.conv?,
            active: f.active.unwrap_or(true),
        },
        _ => return None,
    };
    Some(ClientFrame { rid: f.rid, op })
}

const OPS: &[&str] = &[
    "hello",
    "send",
    "ack",
    "read",
    "sync",
    "history",
    "unread",
    "ping",
    "pong",
    "logout",
    "room_join",
    "room_leave",
    "room_send",
    "presence_watch",
    "chain",
    "follow",
    "unfollow",
    "post",
    "post_delete",
    "feed",
    "search",
    "typing",
];

/// Why a client frame could not be decoded, with the request id when it was readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub rid: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

/// The careful path: tells apart invalid UTF-8, malformed JSON, an
/// unknown operation and a bad field, and keeps the `rid` when it can.
fn decode_slow(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
    let err = |rid, code, message: String| DecodeError { rid, code, message };
    let text =
        std::str::from_utf8(bytes).map_err(|e| err(None, ErrorCode::BadUtf8, e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(None, ErrorCode::BadJson, e.to_string()))?;
    let obj = value.as_object().ok_or_else(|| {
        err(
            None,
            ErrorCode::BadJson,
            "a frame must be a JSON object".into(),
        )
    })?;
    // A parsed object keeps the last of repeated keys; a frame that says
    // two things is refused instead (the fast path refuses repeated known
    // fields too, so a repeat never decodes).
    serde_json::from_str::<UniqueKeys>(text)
        .map_err(|e| err(None, ErrorCode::BadJson, e.to_string()))?;
    let rid = match obj.get("rid") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            err(
                None,
                ErrorCode::BadField,
                "rid: expected an unsigned integer".into(),
            )
        })?),
    };
    let op = match obj.get("op") {
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(err(
                rid,
                ErrorCode::BadField,
                "op: expected a string".into(),
            ));
        }
        None => return Err(err(rid, ErrorCode::BadField, "op: missing".into())),
    };
    if !OPS.contains(&op) {
        return Err(err(rid, ErrorCode::UnknownOp, format!("unknown op {op:?}")));
    }
    let op: ClientOp =
        serde_json::from_value(value).map_err(|e| err(rid, ErrorCode::BadField, e.to_string()))?;
    Ok(ClientFrame { rid, op })
}

/// A JSON object whose top-level keys are all different.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                    }
                }
                Ok(UniqueKeys)
            }
        }
        d.deserialize_map(Keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused() {
        let cmid = ClientMsgId::new_v7();
        for f in [
            format!(r#"{{"op":"send","to":2,"to":3,"cmid":"{cmid}","body":"hi"}}"#),
            r#"{"op":"ping","op":"logout"}"#.to_string(),
        ] {
            let e = decode_client(f.as_bytes()).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadJson, "{f}");
            assert!(e.message.contains("duplicate"), "{}", e.message);
        }
    }

    /// The fast path and the careful one agree on every valid frame.
    #[test]
    fn fast_and_careful_paths_agree() {
        let cmid = ClientMsgId::new_v7();
        let frames = [
            format!(r#"{{"op":"send","rid":1,"to":2,"cmid":"{cmid}","body":"hi"}}"#),
            format!(
                r#"{{"op":"send","group":3,"cmid":"{cmid}","body":"hi","persistence":"days:2"}}"#
            ),
            r#"{"op":"ack","conv":"d:1:2","seqs":[1,2]}"#.to_string(),
            r#"{"op":"read","rid":4,"conv":"g:9","seq":7}"#.to_string(),
            r#"{"op":"sync","convs":{"d:1:2":3},"limit":5}"#.to_string(),
            r#"{"op":"sync"}"#.to_string(),
            r#"{"op":"history","conv":"d:1:2","before":9}"#.to_string(),
            r#"{"op":"unread","rid":2}"#.to_string(),
            r#"{"op":"ping"}"#.to_string(),
            r#"{"op":"hello","ticket":"t"}"#.to_string(),
            r#"{"op":"room_send","room":"r","body":"b","to":5}"#.to_string(),
            r#"{"op":"room_join","room":"r","extra":[1,{"x":2}]}"#.to_string(),
            r#"{"op":"presence_watch","rid":3,"users":[2,5]}"#.to_string(),
            format!(
                r#"{{"op":"send","to":2,"cmid":"{cmid}","body":"x","chain":{{"id":"a","next":"b"}}}}"#
            ),
            r#"{"op":"chain","rid":6}"#.to_string(),
            r#"{"op":"typing","conv":"d:1:2"}"#.to_string(),
            r#"{"op":"typing","rid":7,"conv":"g:3","active":false}"#.to_string(),
        ];
        for f in frames {
            let fast = decode_fast(f.as_bytes()).unwrap_or_else(|| panic!("fast path refused {f}"));
            assert_eq!(Ok(fast), decode_slow(f.as_bytes()), "{f}");
        }
    }

    /// What the fast path cannot take goes the careful way, errors and all.
    #[test]
    fn unusual_frames_fall_back() {
        assert!(decode_fast(br#"{"op":"send","rid":5,"to":"x"}"#).is_none());
        assert!(decode_fast(br#"{"op":"ack","conv":"d:1:2"}"#).is_none());
        let e = decode_client(br#"{"op":"send","rid":5,"to":"x"}"#).unwrap_err();
        assert_eq!((e.code, e.rid), (ErrorCode::BadField, Some(5)));
        // Acked sequences are unsigned: one beyond any assigned acknowledges
        // nothing, on both paths; a negative one is a bad field.
        let big = format!(r#"{{"op":"ack","conv":"d:1:2","seqs":[3,{}]}}"#, u64::MAX);
        let ack = ClientOp::Ack {
            conv: ConvId::parse("d:1:2").unwrap(),
            seqs: vec![3],
        };
        assert_eq!(decode_fast(big.as_bytes()).map(|f| f.op), Some(ack.clone()));
        assert_eq!(decode_slow(big.as_bytes()).map(|f| f.op), Ok(ack));
        let e = decode_client(br#"{"op":"ack","conv":"d:1:2","seqs":[-1]}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadField);
        // A sync key that is no conversation id is ignored on both paths.
        let odd = br#"{"op":"sync","convs":{"d:1:2":3,"nonsense":4}}"#;
        let want = ClientOp::Sync {
            convs: [(ConvId::parse("d:1:2").unwrap(), 3)].into(),
            limit: None,
        };
        assert_eq!(decode_fast(odd).map(|f| f.op), Some(want.clone()));
        assert_eq!(decode_slow(odd).map(|f| f.op), Ok(want));
        // An invalid chain link is a bad field (empty, too long, id == next).
        let cmid = ClientMsgId::new_v7();
        for link in [r#"{"id":"","next":"b"}"#, r#"{"id":"a","next":"a"}"#] {
            let f = format!(
                r#"{{"op":"send","rid":2,"to":2,"cmid":"{cmid}","body":"x","chain":{link}}}"#
            );
            let e = decode_client(f.as_bytes()).unwrap_err();
            assert_eq!((e.code, e.rid), (ErrorCode::BadField, Some(2)), "{link}");
        }
        // A field of another operation, mistyped, does not hurt this one.
        let ok = decode_client(br#"{"op":"ping","seq":"no"}"#).expect("ping");
        assert_eq!(ok.op, ClientOp::Ping);
    }
}
