//! The relay's frame: a small header in front of every payload, written by
//! the publishing handle and read by the subscribing one, so loss detection
//! is the same on every backend (`relay/mod.rs`).
//!
//! Layout (integers big-endian):
//! `magic u8 | flags u8 | id_len u8 | publisher id | epoch u64 | seq u64 |
//! at u64 | heartbeat_ms u32 | payload`.
//!
//! - `epoch` names one numbering of one publisher on one subject; `seq`
//!   counts that numbering's data frames from 1.
//! - A data frame carries its own `seq`; a heartbeat carries the latest
//!   data `seq` (0 before any) and no payload.
//! - `at` is the wall-clock time (ns since the Unix epoch) of the newest
//!   data frame a subscriber would have missed if this is the first frame it
//!   sees of the numbering: frame `seq - 1` for data, frame `seq` for a
//!   heartbeat; 0 when there is none.
//! - `LINGERS`: the publisher promises another frame on this subject within
//!   `heartbeat_ms`; a frame without it closes the numbering for now.

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: u8 = 0xB7;
const HEARTBEAT: u8 = 1;
const LINGERS: u8 = 2;
const FIXED: usize = 3 + 8 + 8 + 8 + 4;

/// A decoded frame; `publisher` borrows from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub heartbeat: bool,
    pub lingers: bool,
    pub publisher: &'a str,
    pub epoch: u64,
    pub seq: u64,
    pub at: u64,
    pub heartbeat_ms: u32,
    pub payload: Bytes,
}

impl Frame<'_> {
    /// The highest sequence this frame says exists but does not carry.
    pub fn unseen_to(&self) -> u64 {
        if self.heartbeat {
            self.seq
        } else {
            self.seq.saturating_sub(1)
        }
    }
}

/// Writes a frame; `publisher` is at most 255 bytes (checked at open).
pub(crate) fn encode(f: &Frame<'_>) -> Bytes {
    let id = f.publisher.as_bytes();
    let mut out = BytesMut::with_capacity(FIXED + id.len() + f.payload.len());
    let flags = if f.heartbeat { HEARTBEAT } else { 0 } | if f.lingers { LINGERS } else { 0 };
    out.put_u8(MAGIC);
    out.put_u8(flags);
    out.put_u8(id.len() as u8);
    out.put_slice(id);
    out.put_u64(f.epoch);
    out.put_u64(f.seq);
    out.put_u64(f.at);
    out.put_u32(f.heartbeat_ms);
    out.put_slice(&f.payload);
    out.freeze()
}

/// Reads a frame; `None` for bytes no relay wrote (another program on the
/// same subject), which subscribers skip.
pub(crate) fn decode(raw: &Bytes) -> Option<Frame<'_>> {
    let (&magic, rest) = raw.split_first()?;
    let (&flags, rest) = rest.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if magic != MAGIC || rest.len() < usize::from(len) + FIXED - 3 {
        return None;
    }
    let (id, rest) = rest.split_at(usize::from(len));
    let publisher = std::str::from_utf8(id).ok()?;
    let u64_at = |i: usize| u64::from_be_bytes(rest[i..i + 8].try_into().unwrap_or_default());
    let hb: [u8; 4] = rest[24..28].try_into().ok()?;
    let start = FIXED + usize::from(len);
    Some(Frame {
        heartbeat: flags & HEARTBEAT != 0,
        lingers: flags & LINGERS != 0,
        publisher,
        epoch: u64_at(0),
        seq: u64_at(8),
        at: u64_at(16),
        heartbeat_ms: u32::from_be_bytes(hb),
        payload: raw.slice(start..),
    })
}

/// Now on the wall clock, in ns since the Unix epoch (0 before it).
pub(crate) fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_bytes() {
        let f = Frame {
            heartbeat: false,
            lingers: true,
            publisher: "n1",
            epoch: 7,
            seq: 42,
            at: 123_456,
            heartbeat_ms: 500,
            payload: Bytes::from_static(b"hello"),
        };
        let raw = encode(&f);
        assert_eq!(decode(&raw), Some(f));
        let hb = Frame {
            heartbeat: true,
            lingers: false,
            payload: Bytes::new(),
            ..decode(&raw).expect("frame")
        };
        assert_eq!(decode(&encode(&hb)), Some(hb));
        assert_eq!(decode(&Bytes::from_static(b"plain text")), None);
        assert_eq!(decode(&raw.slice(..10)), None);
    }
}
