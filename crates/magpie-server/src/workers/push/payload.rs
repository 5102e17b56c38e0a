//! What one webhook call carries and how it is signed (docs/protocol.md,
//! "Offline push webhook"). Pure: no I/O.
//!
//! The signature covers `"<timestamp>.<body>"` with HMAC-SHA256 under
//! `push.secret`, so a receiver that checks it and refuses stale
//! timestamps knows the body came from Magpie, unchanged and recent.

use hmac::{Hmac, Mac};
use magpie_core::{ConvId, DeviceId, Message, Seq, UserId};
use serde::Serialize;
use sha2::Sha256;

/// Longest `preview`, in characters (not bytes: never cuts a character).
pub const PREVIEW_CHARS: usize = 100;

/// One call: a user, one conversation, the messages coalesced into it.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// Unique per call, for the relay's de-duplication: a retry of the
    /// same call carries the same id.
    pub id: String,
    pub user: UserId,
    /// The user's devices that did not opt out (`offline_push: false`).
    pub devices: Vec<DeviceId>,
    /// Whether the user's other devices (no settings of their own) may be
    /// notified: the user default's `offline_push`.
    pub others: bool,
    pub conv: ConvId,
    /// Messages this call stands for (at least 1).
    pub count: u32,
    pub last: Last,
    /// Whether one of the coalesced messages mentions the user.
    pub mentioned: bool,
}

/// The latest message of a call.
#[derive(Debug, Clone, Serialize)]
pub struct Last {
    pub seq: Seq,
    pub from: UserId,
    /// The sender's username (empty if it could not be read).
    pub from_name: String,
    pub preview: String,
    pub sent_at: i64,
}

impl Last {
    pub fn of(m: &Message, from_name: String) -> Last {
        Last {
            seq: m.seq,
            from: m.from,
            from_name,
            preview: preview(&m.body),
            sent_at: m.sent_at,
        }
    }
}

/// `body` cut to `PREVIEW_CHARS` characters.
pub fn preview(body: &str) -> String {
    match body.char_indices().nth(PREVIEW_CHARS) {
        Some((at, _)) => body[..at].to_string(),
        None => body.to_string(),
    }
}

/// The `X-Magpie-Signature` value: `sha256=<hex of HMAC-SHA256(secret,
/// "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_cuts_characters_not_bytes() {
        let long: String = "é".repeat(150);
        assert_eq!(preview(&long).chars().count(), PREVIEW_CHARS);
        assert_eq!(preview("short"), "short");
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // What is signed is "<timestamp>.<body>", nothing else.
        let sig = signature(b"Jefe", 0, b"");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        let what = signature(b"Jefe", 12, b"ab");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"12.ab");
        assert_eq!(
            what,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(what, signature(b"other", 12, b"ab"));
    }
}
