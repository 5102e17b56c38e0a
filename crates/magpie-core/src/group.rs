//! Groups: ids, member roles and the records the store keeps.
//!
//! A group's messages form one conversation `g:{id}` with its own sequence,
//! stored once (read diffusion: no per-member copy). What a member sees and
//! has read is positional:
//! - `joined_seq`: the member sees messages with `seq > joined_seq`;
//! - `read_seq`: the member has read every message with `seq <= read_seq`.
//!
//! So "has `u` read message `s`" is `read_seq(u) >= s`, a read is one write
//! whatever the group's size, and unread is `last_seq - max(read_seq,
//! joined_seq)`: no counter per member per message. Sending moves the
//! sender's own read position to the message (one replies to what one has
//! read), which keeps own messages out of the unread count.

use crate::ids::{Seq, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct GroupId(pub i64);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a member may do. Owners and admins manage the group; only the owner
/// dissolves it or changes roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRole {
    Owner,
    Admin,
    Member,
}

impl GroupRole {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::Owner => "owner",
            GroupRole::Admin => "admin",
            GroupRole::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<GroupRole> {
        match s {
            "owner" => Some(GroupRole::Owner),
            "admin" => Some(GroupRole::Admin),
            "member" => Some(GroupRole::Member),
            _ => None,
        }
    }

    /// Owners and admins manage membership and the name.
    pub fn manages(self) -> bool {
        matches!(self, GroupRole::Owner | GroupRole::Admin)
    }
}

/// A group as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub id: GroupId,
    pub name: String,
    pub owner: UserId,
    pub created_at: i64,
    /// Current members (maintained with every join and leave).
    pub members: i64,
    /// Grows by one with every join and leave: two reads with the same
    /// version saw the same members (docs/protocol.md, groups).
    #[serde(default)]
    pub member_version: i64,
    /// The newest sequence of the group's conversation.
    pub last_seq: Seq,
    /// Messages a new member sees from before joining (0: from the join on).
    pub history: i64,
    pub dissolved: bool,
}

/// A group's membership as the transaction that accepted a message saw it
/// (`MessageStore::accept`): a member list read at this `version` or later
/// names no one who had left before the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStamp {
    pub version: i64,
    pub members: i64,
}

/// One member of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub user: UserId,
    pub role: GroupRole,
    pub muted: bool,
    /// Messages with a sequence above this are visible to the member.
    pub joined_seq: Seq,
    /// Every message up to this sequence has been read by the member.
    pub read_seq: Seq,
    pub joined_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_rank() {
        for r in [GroupRole::Owner, GroupRole::Admin, GroupRole::Member] {
            assert_eq!(GroupRole::parse(r.as_str()), Some(r));
        }
        assert!(GroupRole::Admin.manages() && !GroupRole::Member.manages());
        assert_eq!(GroupRole::parse("king"), None);
    }
}
