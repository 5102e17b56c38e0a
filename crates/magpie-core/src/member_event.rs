//! Membership changes as messages of the group's conversation
//! (docs/protocol.md §3.14, "Member events").
//!
//! Each change of a group's membership, roles, name or owner is followed by
//! one message from the system user (0) in the group's conversation, with
//! `meta.event` saying what happened. So it is sequenced, durable, pushed
//! and synced like any message: a device that was away learns of it by
//! sync, in order with the conversation. Only the server writes one: the
//! send path drops an `event` from anyone but the system user.

use crate::group::GroupRole;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};

/// What happened, and who did it (`by`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemberEvent {
    /// `users` were added by `by`.
    Joined { users: Vec<UserId>, by: UserId },
    /// `user` left.
    Left { user: UserId },
    /// `user` was removed by `by`.
    Removed { user: UserId, by: UserId },
    /// `user`'s role is now `role`, set by `by` (the owner).
    Role {
        user: UserId,
        role: GroupRole,
        by: UserId,
    },
    /// The group is now called `name`, renamed by `by`.
    Renamed { name: String, by: UserId },
    /// `from` handed the group to `to` (and is an admin now).
    Owner { from: UserId, to: UserId },
}

impl MemberEvent {
    /// The message's body: a plain sentence for a client that does not
    /// read `meta.event` (user ids, as the event names them).
    pub fn text(&self) -> String {
        let list = |us: &[UserId]| {
            let ids: Vec<String> = us.iter().map(|u| format!("user {u}")).collect();
            ids.join(", ")
        };
        match self {
            MemberEvent::Joined { users, by } => format!("user {by} added {}", list(users)),
            MemberEvent::Left { user } => format!("user {user} left"),
            MemberEvent::Removed { user, by } => format!("user {by} removed user {user}"),
            MemberEvent::Role { user, role, by } => {
                format!("user {by} made user {user} {}", role.as_str())
            }
            MemberEvent::Renamed { name, by } => format!("user {by} renamed the group {name:?}"),
            MemberEvent::Owner { from, to } => format!("user {from} handed the group to user {to}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_objects() {
        let e = MemberEvent::Role {
            user: UserId(3),
            role: GroupRole::Admin,
            by: UserId(1),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"kind":"role","user":3,"role":"admin","by":1}"#);
        assert_eq!(serde_json::from_str::<MemberEvent>(&json).unwrap(), e);
        assert_eq!(e.text(), "user 1 made user 3 admin");
    }
}
