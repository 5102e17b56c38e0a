//! Live rooms: an audience that joins and leaves freely (not members), and
//! messages that are not stored, only kept in a short recent buffer by each
//! node and broadcast like super-group messages. Under overload ordinary
//! messages are shed; messages from or to a VIP never are.

use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// A room name: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn valid_room(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// One live-room message as the audience receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessage {
    pub room: String,
    /// Unique per message (a server id, as a string like `server_id`).
    pub id: String,
    pub from: UserId,
    /// Addressed to one user in the room (a reply, a gift), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
    pub body: String,
    /// From or to a VIP: never shed.
    pub vip: bool,
    pub sent_at: i64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn room_names() {
        assert!(super::valid_room("live-1.main_room"));
        assert!(
            !super::valid_room("")
                && !super::valid_room("a b")
                && !super::valid_room(&"x".repeat(65))
        );
    }
}
