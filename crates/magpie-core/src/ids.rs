//! Identifiers.
//!
//! - `UserId`: server-assigned, positive; `0` is the system sender.
//! - `DeviceId`: chosen by the client (e.g. "phone"), 1..=64 printable chars.
//! - `ConvId`: a conversation; direct chats are `d:{low}:{high}` so both
//!   parties name the same conversation, a group's is `g:{group id}`.
//! - `ServerMsgId`: time-ordered 64-bit id (41 bits ms, 10 bits node, 12 bits counter).
//! - `ClientMsgId`: the client's UUID, the idempotency key scoped to the sender.
//! - `Seq`: per-conversation sequence, contiguous from 1.

use crate::text_form::{TextForm, text_serde};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

pub type Seq = i64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("invalid conversation id: {0}")]
    Conversation(String),
    #[error("invalid device id: must be 1 to 64 characters of [A-Za-z0-9._-]")]
    Device,
    #[error("invalid client message id: {0}")]
    ClientMsgId(String),
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl UserId {
    /// The sender of system messages sent through the internal API (and the
    /// `to` of a group message, which has no single receiver).
    pub const SYSTEM: UserId = UserId(0);

    /// 0: no user (an absent `to` on the wire).
    pub fn is_unset(&self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The string form of an id (conversions to and from `String`, and what it
/// shows; serde reads and writes the same form through `text_form`):
/// `$check` parses and checks a string, `$into` writes the inner value.
macro_rules! string_form {
    ($id:ident, $err:ty, $check:expr, $into:expr) => {
        impl TryFrom<String> for $id {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, $err> {
                $check(s)
            }
        }
        impl From<$id> for String {
            fn from(id: $id) -> String {
                $into(id.0)
            }
        }
        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}
pub(crate) use string_form;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(DeviceId(s))
        } else {
            Err(IdError::Device)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_form!(DeviceId, IdError, DeviceId::new, |s: String| s);

impl TextForm for DeviceId {
    const EXPECTING: &'static str = "a device id";
    type Error = IdError;
    fn from_text(s: &str) -> Result<Self, IdError> {
        DeviceId::new(s)
    }
    fn from_string(s: String) -> Result<Self, IdError> {
        DeviceId::new(s)
    }
}
text_serde!(DeviceId);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvId(String);

impl ConvId {
    /// The direct conversation between two users; symmetric in its arguments.
    pub fn direct(a: UserId, b: UserId) -> ConvId {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        ConvId(format!("d:{}:{}", lo.0, hi.0))
    }
    /// The conversation of a group.
    pub fn group(id: crate::GroupId) -> ConvId {
        ConvId(format!("g:{}", id.0))
    }
    /// For a group's conversation, the group.
    pub fn group_id(&self) -> Option<crate::GroupId> {
        let id = self.0.strip_prefix("g:")?.parse().ok()?;
        Some(crate::GroupId(id))
    }
    pub fn parse(s: &str) -> Result<ConvId, IdError> {
        let bad = || IdError::Conversation(s.to_string());
        // Ids in their one written form (no sign, no leading zero), so a
        // conversation has exactly one id.
        let id = |t: &str| -> Option<i64> {
            let canonical =
                t == "0" || (!t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit()));
            canonical.then(|| t.parse().ok()).flatten()
        };
        let mut parts = s.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("g"), Some(g), None, None) => match id(g) {
                Some(g) if g > 0 => Ok(ConvId(s.to_string())),
                _ => Err(bad()),
            },
            (Some("d"), Some(a), Some(b), None) => match (id(a), id(b)) {
                (Some(a), Some(b)) if a <= b => Ok(ConvId(s.to_string())),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
    /// For a direct conversation, the two members (low, high).
    pub fn direct_members(&self) -> Option<(UserId, UserId)> {
        let rest = self.0.strip_prefix("d:")?;
        let (a, b) = rest.split_once(':')?;
        Some((UserId(a.parse().ok()?), UserId(b.parse().ok()?)))
    }
    /// For a direct conversation, the member that is not `me`.
    pub fn peer_of(&self, me: UserId) -> Option<UserId> {
        let (a, b) = self.direct_members()?;
        if a == me {
            Some(b)
        } else if b == me {
            Some(a)
        } else {
            None
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_form!(
    ConvId,
    IdError,
    |s: String| ConvId::parse(&s),
    |s: String| s
);

impl TextForm for ConvId {
    const EXPECTING: &'static str = "a conversation id";
    type Error = IdError;
    fn from_text(s: &str) -> Result<Self, IdError> {
        ConvId::parse(s)
    }
}
text_serde!(ConvId);

/// Server message id. Serialized as a string in JSON because 64-bit integers
/// do not survive JavaScript clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerMsgId(pub i64);

string_form!(
    ServerMsgId,
    std::num::ParseIntError,
    |s: String| s.parse().map(ServerMsgId),
    |n: i64| n.to_string()
);

impl TextForm for ServerMsgId {
    const EXPECTING: &'static str = "a server message id (a string of digits)";
    type Error = std::num::ParseIntError;
    fn from_text(s: &str) -> Result<Self, Self::Error> {
        s.parse().map(ServerMsgId)
    }
}
text_serde!(ServerMsgId);

/// Custom epoch for server ids: 2024-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_704_067_200_000;

impl ServerMsgId {
    /// When the id was taken, epoch ms (its top 41 bits, `MsgIdGen`'s
    /// layout); `None` for a negative id, which no generator makes.
    pub fn unix_ms(self) -> Option<i64> {
        (self.0 >= 0).then(|| (self.0 >> 22) + EPOCH_MS)
    }
}

/// Generates time-ordered server message ids for one node.
///
/// Layout: 41 bits of milliseconds since `EPOCH_MS`, 10 bits of node id,
/// 12 bits of counter. The counter borrows from the clock when more than 4096
/// ids are taken in one millisecond, so ids stay strictly increasing per node.
#[derive(Debug)]
pub struct MsgIdGen {
    node: i64,
    last: AtomicU64,
}

impl MsgIdGen {
    pub fn new(node: u16) -> Self {
        MsgIdGen {
            node: (node & 0x3ff) as i64,
            last: AtomicU64::new(0),
        }
    }
    pub fn next(&self) -> ServerMsgId {
        let now = (crate::now_ms() - EPOCH_MS).max(0) as u64;
        let floor = now << 12;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = if prev < floor { floor } else { prev + 1 };
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let ms = (next >> 12) as i64;
                    let ctr = (next & 0xfff) as i64;
                    return ServerMsgId((ms << 22) | (self.node << 12) | ctr);
                }
                Err(p) => prev = p,
            }
        }
    }
}

/// The client's message id: a UUID the client generates (v7, time-ordered, is
/// recommended). It makes a send idempotent for 30 minutes on the fast path and
/// forever in the durable store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientMsgId(pub uuid::Uuid);

impl ClientMsgId {
    pub fn new_v7() -> Self {
        ClientMsgId(uuid::Uuid::now_v7())
    }
    /// The UUID's 16 bytes (how a store keeps it compactly).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
    pub fn from_bytes(b: &[u8]) -> Result<Self, IdError> {
        uuid::Uuid::from_slice(b)
            .map(ClientMsgId)
            .map_err(|_| IdError::ClientMsgId(format!("{} bytes, not 16", b.len())))
    }
}
string_form!(
    ClientMsgId,
    IdError,
    |s: String| uuid::Uuid::parse_str(&s)
        .map(ClientMsgId)
        .map_err(|_| IdError::ClientMsgId(s)),
    |u: uuid::Uuid| u.to_string()
);

impl TextForm for ClientMsgId {
    const EXPECTING: &'static str = "a client message id (a UUID)";
    type Error = IdError;
    fn from_text(s: &str) -> Result<Self, IdError> {
        uuid::Uuid::parse_str(s)
            .map(ClientMsgId)
            .map_err(|_| IdError::ClientMsgId(s.to_string()))
    }
}
text_serde!(ClientMsgId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_tell_when_they_were_taken() {
        let before = crate::now_ms();
        let id = MsgIdGen::new(5).next();
        let at = id.unix_ms().expect("time");
        assert!((before..=crate::now_ms()).contains(&at), "{at}");
        assert_eq!(ServerMsgId(0).unix_ms(), Some(EPOCH_MS));
        assert_eq!(ServerMsgId(-1).unix_ms(), None);
    }

    #[test]
    fn direct_conversation_is_symmetric() {
        let a = ConvId::direct(UserId(7), UserId(3));
        assert_eq!(a, ConvId::direct(UserId(3), UserId(7)));
        assert_eq!(a.as_str(), "d:3:7");
        assert_eq!(a.peer_of(UserId(3)), Some(UserId(7)));
        assert_eq!(a.peer_of(UserId(9)), None);
        assert!(ConvId::parse("d:7:3").is_err());
        let g = ConvId::group(crate::GroupId(42));
        assert_eq!(
            (g.as_str(), g.group_id()),
            ("g:42", Some(crate::GroupId(42)))
        );
        assert_eq!(ConvId::parse("g:42").unwrap(), g);
        assert!(ConvId::parse("g:0").is_err() && ConvId::parse("g:042").is_err());
        assert_eq!(a.group_id(), None);
        assert_eq!(g.peer_of(UserId(42)), None);
        assert!(ConvId::parse("x").is_err());
        // One id per conversation: no sign, no leading zero.
        for odd in ["d:03:7", "d:+3:7", "d:3:07", "g:+42", "d:-1:2", "d::2"] {
            assert!(ConvId::parse(odd).is_err(), "{odd}");
        }
        assert!(ConvId::parse("d:0:7").is_ok(), "the system user is 0");
    }

    #[test]
    fn server_ids_strictly_increase() {
        let g = MsgIdGen::new(3);
        let mut prev = g.next();
        for _ in 0..20_000 {
            let n = g.next();
            assert!(n > prev);
            prev = n;
        }
    }

    #[test]
    fn device_ids_are_validated() {
        assert!(DeviceId::new("phone-1").is_ok());
        assert!(DeviceId::new("").is_err());
        assert!(DeviceId::new("a b").is_err());
    }
}
